"""Profiles: named choices of image and resources, in the shape of KubeSpawner's ``profile_list``.

One list (``c.ProfileCatalog.profile_list``, in the Berth config file the hub, the service and the
``berth`` command read) feeds both places a user picks from:

* the **spawn form** (and ``user_options``: ``{"profile": "gpu"}`` through the REST API) — the
  server's image and resources; the ``default`` profile applies when the user names none;
* the **sidebar's kernel presets** (and the kernelspecs made from them) — each profile for
  kernels becomes a preset of the same slug, with its ``kernel_image``.

An entry::

    {
        "display_name": "GPU (half a T4)",       # required
        "slug": "gpu",                          # default: from display_name
        "description": "For deep learning labs",
        "default": False,                       # at most one
        "image": "berth/singleuser:3.11",       # the server image (servers)
        "kernel_image": "berth/python:3.11",    # the kernel image (presets); default: the service's
        "resources": {"cpu": 2, "mem": "8G", "gpu": 0.5},   # any kind of the resource registry
        "groups": ["ml-lab"],                   # visible to these hub groups only (default: everyone)
        "for": ["server", "kernel"],            # where it is offered (default: both)
    }

KubeSpawner's own keys are read too: ``kubespawner_override`` with ``image``, ``cpu_limit`` /
``cpu_guarantee``, ``mem_limit`` / ``mem_guarantee`` and ``extra_resource_limits``'s
``nvidia.com/gpu``. Any other key is refused, naming the entry and the key. A profile's resources
are checked against the user's policy like any request (a chosen profile over a limit is refused
naming the limit; the implied default profile is clamped). Pure functions, tested without a hub.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from traitlets import List, TraitError, validate
from traitlets.config import LoggingConfigurable

from .errors import RequestError
from .resources import Preset, Resources

KEYS = ("display_name", "slug", "description", "default", "image", "kernel_image", "resources", "groups", "for")
KUBESPAWNER_OVERRIDE = {"image": "image", "cpu_limit": "cpu", "cpu_guarantee": "cpu", "mem_limit": "mem"}
KUBESPAWNER_OVERRIDE["mem_guarantee"] = "mem"
USES = ("server", "kernel")


@dataclass(frozen=True)
class Profile:
    """One validated profile."""

    slug: str
    display_name: str
    description: str = ""
    default: bool = False
    image: str | None = None
    kernel_image: str | None = None
    request: Mapping[str, Any] = field(default_factory=dict)  #: the resources asked for, as given (validated)
    groups: tuple[str, ...] = ()  #: visible to these groups only; () everyone
    uses: tuple[str, ...] = USES

    @property
    def resources(self) -> Resources:
        """The profile's resources over the registry's defaults (for display and presets)."""
        return Resources.parse(dict(self.request))

    def visible_to(self, groups: Iterable[str]) -> bool:
        return not self.groups or bool(set(self.groups) & set(groups))

    def to_json(self) -> dict:
        return {
            "slug": self.slug,
            "display_name": self.display_name,
            "description": self.description,
            "default": self.default,
            "image": self.image,
            "kernel_image": self.kernel_image,
            "resources": dict(self.request),
            "groups": list(self.groups),
            "for": list(self.uses),
        }


def slugify(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:63] or "profile"


def _override(where: str, data: Mapping) -> tuple[str | None, dict]:
    image, request = None, {}
    for key, value in data.items():
        if key == "extra_resource_limits":
            if not isinstance(value, Mapping) or set(value) - {"nvidia.com/gpu"}:
                raise RequestError(
                    f"{where}.kubespawner_override.{key}", 'only {"nvidia.com/gpu": N} has a meaning here'
                )
            request["gpu"] = value["nvidia.com/gpu"]
        elif key in KUBESPAWNER_OVERRIDE:
            name = KUBESPAWNER_OVERRIDE[key]
            if name == "image":
                image = value
            elif key.endswith("_limit") or name not in request:  # a limit wins over a guarantee (Berth reserves it)
                request[name] = value
        else:
            raise RequestError(
                f"{where}.kubespawner_override.{key}",
                f"not a setting Berth reads from a profile; known: {', '.join([*KUBESPAWNER_OVERRIDE, 'extra_resource_limits'])}",
            )
    return image, request


def parse_profile(data: Any, index: int = 0) -> Profile:
    """One ``profile_list`` entry → :class:`Profile` (a :class:`RequestError` names the entry and the key)."""
    where = f"profile_list[{index}]"
    if not isinstance(data, Mapping):
        raise RequestError(where, 'expected an object such as {"display_name": "Small", "resources": {"cpu": 1}}')
    data = dict(data)
    image, request = _override(where, data.pop("kubespawner_override", None) or {})
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        raise RequestError(f"{where}.{unknown[0]}", f"unknown profile key; known keys are {', '.join(KEYS)}")
    display = data.get("display_name")
    if not isinstance(display, str) or not display.strip():
        raise RequestError(f"{where}.display_name", "required: the name the form and the sidebar show")
    slug = data.get("slug") or slugify(display)
    if not isinstance(slug, str) or not re.fullmatch(r"[a-z0-9][a-z0-9_.-]{0,62}", slug):
        raise RequestError(f"{where}.slug", f"{slug!r}: use lower-case letters, digits, '.', '_' or '-' (at most 63)")
    resources = data.get("resources") or {}
    if not isinstance(resources, Mapping):
        raise RequestError(f"{where}.resources", 'expected an object such as {"cpu": 2, "mem": "4G"}')
    request.update(resources)
    try:
        Resources.parse(request)  # validates every kind and value
    except RequestError as e:
        raise RequestError(f"{where}.resources", e.message) from None
    groups = data.get("groups") or []
    uses = data.get("for") or list(USES)
    for key, value, allowed in (("groups", groups, None), ("for", uses, USES)):
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise RequestError(f"{where}.{key}", "expected a list of names")
        if allowed and set(value) - set(allowed):
            raise RequestError(f"{where}.{key}", f"expected some of {', '.join(allowed)}")
    image = data.get("image", image)
    for key, value in (("image", image), ("kernel_image", data.get("kernel_image"))):
        if value is not None and (not isinstance(value, str) or not value):
            raise RequestError(f"{where}.{key}", "expected an image reference such as berth/python:3.11")
    return Profile(
        slug=slug,
        display_name=display.strip(),
        description=str(data.get("description") or ""),
        default=bool(data.get("default", False)),
        image=image,
        kernel_image=data.get("kernel_image"),
        request=dict(request),
        groups=tuple(groups),
        uses=tuple(uses),
    )


def parse_profile_list(entries: Sequence[Any]) -> tuple[Profile, ...]:
    """Every entry validated; slugs unique; at most one default."""
    profiles = tuple(parse_profile(e, i) for i, e in enumerate(entries or ()))
    seen: set[str] = set()
    for p in profiles:
        if p.slug in seen:
            raise RequestError("profile_list", f"two profiles have the slug {p.slug!r}; give each its own")
        seen.add(p.slug)
    defaults = [p.slug for p in profiles if p.default]
    if len(defaults) > 1:
        raise RequestError("profile_list", f"more than one default profile ({', '.join(defaults)}); mark one")
    return profiles


def for_user(profiles: Iterable[Profile], groups: Iterable[str], use: str) -> list[Profile]:
    """The profiles ``use`` ("server" or "kernel") offers to a member of ``groups``."""
    groups = list(groups)
    return [p for p in profiles if use in p.uses and p.visible_to(groups)]


def choose(profiles: Sequence[Profile], slug: str | None) -> Profile | None:
    """The profile named ``slug`` among those offered; the default one (or ``None``) when no slug is given."""
    if not slug:
        return next((p for p in profiles if p.default), None)
    for p in profiles:
        if p.slug == slug:
            return p
    offered = ", ".join(p.slug for p in profiles) or "none are offered to you"
    raise RequestError("profile", f"{slug!r} is not a profile you can choose; yours: {offered}")


def as_preset(profile: Profile) -> Preset:
    """A kernel profile as the sidebar's preset (the same slug; its ``kernel_image``)."""
    return Preset(
        name=profile.slug,
        display_name=profile.display_name,
        resources=profile.resources,
        image=profile.kernel_image,
        description=profile.description,
    )


class ProfileCatalog(LoggingConfigurable):
    """The deployment's profiles (``service.profiles``): the spawn form's and the sidebar's presets."""

    profile_list = List(
        config=True,
        help="Profiles offered in the spawn form and, as presets, in the sidebar, in the shape of "
        "KubeSpawner's profile_list: [{display_name, slug, description, default, image, kernel_image, "
        "resources: {cpu, mem, gpu, ...}, groups: [...], for: ['server', 'kernel']}] (docs/admin-hub.md).",
    )

    @validate("profile_list")
    def _check(self, proposal):
        try:
            parse_profile_list(proposal.value)
        except RequestError as e:
            raise TraitError(f"c.ProfileCatalog.{e.message}") from None
        return proposal.value

    @property
    def profiles(self) -> tuple[Profile, ...]:
        return parse_profile_list(self.profile_list)

    def for_user(self, groups: Iterable[str], use: str) -> list[Profile]:
        return for_user(self.profiles, groups, use)

    def kernel_presets(self) -> dict[str, Preset]:
        """Every kernel profile as a preset, by slug (what ``BerthService.presets`` adds them to)."""
        return {p.slug: as_preset(p) for p in self.profiles if "kernel" in p.uses}

    def preset_visible(self, name: str, groups: Iterable[str]) -> bool:
        """Whether preset ``name`` is shown to a member of ``groups`` (presets that are no profile: always)."""
        profile = next((p for p in self.profiles if p.slug == name and "kernel" in p.uses), None)
        return profile is None or profile.visible_to(groups)


__all__ = [
    "Profile",
    "ProfileCatalog",
    "as_preset",
    "choose",
    "for_user",
    "parse_profile",
    "parse_profile_list",
]

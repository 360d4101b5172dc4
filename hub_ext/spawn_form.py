"""The spawn form and the server options pipeline, as pure functions.

A user's server is asked for either with the hub's spawn form or as JSON
``user_options`` through the REST API (``POST /hub/api/users/NAME/server``). Both go
through the same pipeline (kubespawner's profile habit: fill defaults → validate →
apply), tested without a hub:

1. :func:`options_from_form` turns the form's ``{name: [strings]}`` into
   ``user_options`` (the shape the REST API takes directly);
2. :func:`resolve_options` fills what is missing from the defaults, refuses unknown or
   malformed fields (:class:`RequestError` naming the field and the accepted form) and
   checks the request against the policy's per-server limits with the check admission
   makes (``EffectivePolicy.check``: a :class:`PolicyError` naming the limit, its value,
   where it was set and by how much it is exceeded; a default over a limit is clamped), and a
   GPU share against this host's devices (:func:`.spawn_form_gpu.check_gpu`: none here,
   not a multiple of the quantum, more devices than there are);
3. the spawner applies the resulting :class:`ServerOptions` (image, resources, folders).

Totals across the user's running kernels and servers are checked by admission, which
sees the ledger; the host's room decides whether the spawn starts at once or waits.
:func:`render_form` draws the form from a :class:`FormContext`: image versions, CPU,
memory, disk, GPU share and folders, each with the limit of the user's policy beside it (the
GPU control, bounded by the policy and the devices' free shares, is in :mod:`.spawn_form_gpu`;
the disk field, offered where the engine holds a disk limit, in :mod:`.spawn_form_disk`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from jinja2 import Environment
from markupsafe import Markup

from jupyter_berth.errors import RequestError
from jupyter_berth.policies import EffectivePolicy
from jupyter_berth.profiles import Profile, choose
from jupyter_berth.resources import ALIASES, Resources, format_bytes, resource_kinds
from jupyter_berth.resources import KINDS as RESOURCE_KINDS

from .spawn_form_disk import disk_number
from .spawn_form_fair import budget_lines, group_lines
from .spawn_form_gpu import GpuOffer, check_gpu, host_can_give, render_gpu_field
from .usage_templates import default_environment


class _OptionFields(Mapping):
    """Fields ``user_options`` may carry (a form's fields have the same names): the image, every
    resource kind of the registry (``jupyter_berth.resources.KINDS``) and the folders."""

    def _items(self) -> dict[str, str]:
        return {
            "profile": f"a profile's slug (see the spawn form), or {CUSTOM!r} for none",
            "image": "the server image, one of those offered (see the spawn form)",
            **{k.name: k.accepts for k in resource_kinds()},
            "folders": 'a list of folder names to mount, such as ["datasets"]',
        }

    def __getitem__(self, key):
        return self._items()[key]

    def __iter__(self):
        return iter(self._items())

    def __len__(self):
        return len(self._items())


OPTION_FIELDS = _OptionFields()
#: Accepted spellings of the same fields (the registry's aliases).
OPTION_ALIASES = ALIASES


#: The form's choice of no profile (the image and resource fields as they are).
CUSTOM = "custom"
#: The form's fields in GiB (a bare number there is that many GiB; JSON may give any size).
GIB_FIELDS = ("mem", "disk")


@dataclass(frozen=True)
class ImageChoice:
    """A server image the form offers."""

    ref: str
    display_name: str = ""


@dataclass(frozen=True)
class FolderChoice:
    """A folder the user may mount: its reference (``alice/data``, ``@class-a/course``) and mode."""

    reference: str
    name: str
    mode: str = "rw"


@dataclass(frozen=True)
class FormContext:
    """Everything the form and the validation need to know about one user."""

    policy: EffectivePolicy
    images: Sequence[ImageChoice]
    default_image: str
    defaults: Resources  #: the server's request when the user asks for nothing
    remaining: Mapping[str, float | None] = field(default_factory=dict)  #: cpu/mem/gpu left under the totals
    folders: Sequence[FolderChoice] = ()
    gpu: GpuOffer | None = None  #: this host's GPUs and their free shares (None: no GPU)
    hide_missing_gpu: bool = False  #: leave the GPU line out of the form when there is no GPU
    notice: str | None = None  #: why the previous server went away, told once in the form
    profiles: Sequence[Profile] = ()  #: the server profiles offered to this user (c.ProfileCatalog.profile_list)
    group_totals: Mapping[str, Mapping] = field(default_factory=dict)  #: policy_summary's group_totals
    budgets: Sequence[Mapping] = ()  #: fair.my_budget's budgets: each with its limits, remaining, resets_at
    #: how this hub's engine holds servers to a disk limit (``engine_info()["disk"]``); None: no disk field
    disk: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class ServerOptions:
    """A validated request for one server."""

    image: str
    resources: Resources
    folders: tuple[str, ...] = ()
    profile: str | None = None  #: the profile's slug, when one was chosen (or the default applied)

    def to_json(self) -> dict:
        r = self.resources
        return {
            "image": self.image,
            "cpu": r.cpu,
            "mem": format_bytes(r.mem),
            "gpu": r.gpu,
            "disk": format_bytes(r.disk),
            "folders": list(self.folders),
            "profile": self.profile,
        }


# ---- 1. form → user_options -----------------------------------------------------------------
def options_from_form(formdata: Mapping[str, Sequence[str]]) -> dict:
    """``{name: [strings]}`` from the spawn form → ``user_options`` (empty fields left out).

    Folders come as one checkbox per folder (``folders=[a, b]``); the memory and disk fields
    are in GiB (``"0.5"`` → ``"0.5G"``). Values stay strings; they are parsed, with errors
    naming the field, by :func:`resolve_options`.
    """
    options: dict[str, Any] = {}
    profile = [v for v in formdata.get("profile", []) if isinstance(v, str) and v.strip()]
    chosen = profile[0].strip() if profile else None
    for name, values in formdata.items():
        if chosen and chosen != CUSTOM and (name == "image" or name in _KIND_NAMES()):
            continue  # a profile decides the image and resources; the fields below it are the custom choice
        if name.startswith("_"):  # the form's own fields (e.g. JupyterHub's ``_xsrf``), not server options
            continue
        values = [v.strip() for v in values if isinstance(v, str)]
        if name == "folders":
            options["folders"] = [v for v in values if v]
        elif values and values[0]:
            options[name] = memory_option(values[0]) if name in GIB_FIELDS else values[0]
    return options


# ---- 2. fill defaults → validate ---------------------------------------------------------------
def _folders(value: Any, ctx: FormContext) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value):
        raise RequestError("folders", f"expected {OPTION_FIELDS['folders']}")
    known = {f.reference for f in ctx.folders} | {f.name for f in ctx.folders}
    for name in value:
        if name not in known:
            offered = ", ".join(f.reference for f in ctx.folders) or "none"
            raise RequestError(
                "folders", f"{name!r} is not a folder you can mount; yours and those shared with you: {offered}"
            )
    return tuple(dict.fromkeys(value))


def _KIND_NAMES() -> set[str]:
    return {k.name for k in resource_kinds()} | set(OPTION_ALIASES)


def _image(value: Any, ctx: FormContext, default: str | None = None, also: str | None = None) -> str:
    if value is None or value == "":
        return default or ctx.default_image
    if not isinstance(value, str):
        raise RequestError("image", f"expected {OPTION_FIELDS['image']}")
    offered = [i.ref for i in ctx.images] + ([also] if also else [])
    if value not in offered:
        raise RequestError(
            "image", f"{value!r} is not offered; choose one of {', '.join(offered) or 'none (ask an admin)'}"
        )
    return value  # whether the policy allows it: EffectivePolicy.check, with the resources


def check_limits(request: Resources, policy: EffectivePolicy) -> None:
    """Refuse a server request over a per-server limit: the policy's own check, as admission makes it."""
    policy.check(request, explicit=True, subject="server")


def resolve_options(user_options: Mapping[str, Any] | None, ctx: FormContext) -> ServerOptions:
    """Fill defaults, validate, check the per-server limits; see the module doc."""
    if user_options is None:
        user_options = {}
    if not isinstance(user_options, Mapping):
        raise RequestError("user_options", 'expected a JSON object such as {"cpu": 0.5, "mem": "512M"}')
    options = {}
    for key, value in user_options.items():
        name = OPTION_ALIASES.get(key, key)
        if name not in OPTION_FIELDS:
            raise RequestError(key, f"unknown server option; known options are {', '.join(OPTION_FIELDS)}")
        options[name] = value
    slug = options.get("profile")
    if slug is not None and not isinstance(slug, str):
        raise RequestError("profile", f"expected {OPTION_FIELDS['profile']}")
    profile = None if slug == CUSTOM else choose(ctx.profiles, slug)  # the default one when none is named
    image = _image(options.get("image"), ctx, profile.image if profile else None, profile.image if profile else None)
    values = {}
    if profile is not None:  # its resources: asked for when chosen (refused over a limit), defaults when implied
        for name, value in profile.request.items():
            kind = RESOURCE_KINDS[ALIASES.get(name, name)]
            values[kind.name] = kind.parse(value, f"profile {profile.slug}: {kind.name}")
    explicit_profile = set(values) if slug else set()
    if not slug:
        ctx = FormContext(**{**ctx.__dict__, "defaults": ctx.defaults.replace(**values)})
        values = {}
    for kind in resource_kinds():
        value = options.get(kind.name)
        if value is None or value == "":
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise RequestError(kind.name, f"expected {OPTION_FIELDS[kind.name]}")
        values[kind.name] = kind.parse(value, kind.name)
    defaults = ctx.defaults
    if "gpu" not in values and not host_can_give(min(defaults.gpu, ctx.policy.max_gpu), ctx.gpu):
        defaults = defaults.replace(gpu=0.0)  # the admin's default GPU, on a host that has none (of that kind)
    resources = defaults.replace(**values)
    if resources.shm > resources.mem:
        resources = resources.replace(shm=min(resources.shm, resources.mem // 2))
    # The one policy check (admission makes the same): what the user typed over a limit is refused,
    # a default over it is clamped (the admin's default, not the user's ask).
    resources = ctx.policy.check(resources, explicit=set(values) | explicit_profile, image=image, subject="server")
    if resources.shm > resources.mem:
        resources = resources.replace(shm=min(resources.shm, resources.mem // 2))
    check_gpu(resources.gpu, ctx.gpu)
    return ServerOptions(
        image=image,
        resources=resources,
        folders=_folders(options.get("folders"), ctx),
        profile=profile.slug if profile is not None else None,
    )


# ---- the form ----------------------------------------------------------------------------------
def _limit_words(value: float | None, fmt) -> str:
    return "no limit" if value is None or (isinstance(value, float) and math.isinf(value)) else f"at most {fmt(value)}"


def form_view(ctx: FormContext) -> dict:
    """What ``templates/spawn_form.html`` shows, as plain values (the template escapes them)."""
    p, d = ctx.policy, ctx.defaults
    left = ctx.remaining or {}
    cpu_hint = f"Cores for your server: {_limit_words(p.max_cpu, lambda v: f'{v:g}')} per server or kernel"
    if left.get("cpu") is not None:
        cpu_hint += f"; {left['cpu']:g} left of your total"
    mem_hint = f"Memory for your server in GiB: {_limit_words(p.max_mem, format_bytes)}"
    if left.get("mem") is not None:
        mem_hint += f"; {format_bytes(left['mem'])} left of your total"
    default_profile = next((x.slug for x in ctx.profiles if x.default), None)
    gpu = render_gpu_field(ctx.gpu, p, left.get("gpu"), d.gpu, hide_missing=ctx.hide_missing_gpu)
    return {
        "notice": ctx.notice,
        "profiles": [
            {
                "slug": x.slug,
                "display_name": x.display_name,
                "description": x.description,
                "summary": " · ".join(filter(None, [x.resources.describe() if x.request else "", x.image or ""])),
                "checked": x.slug == default_profile,
            }
            for x in ctx.profiles
        ],
        "custom_checked": default_profile is None,
        "images": [
            {"ref": i.ref, "label": i.display_name or i.ref, "selected": i.ref == ctx.default_image} for i in ctx.images
        ],
        "numbers": [
            {
                "name": "cpu",
                "label": "CPU (cores)",
                "value": f"{d.cpu:g}",
                "hint": cpu_hint,
                "step": "0.05",
                "min": "0.05",
                "max": None if math.isinf(p.max_cpu) else f"{p.max_cpu:g}",
            },
            {
                "name": "mem",
                "label": "Memory (GiB)",
                "value": f"{d.mem / 2**30:g}",
                "hint": mem_hint,
                "step": "0.125",
                "min": "0.125",
                "max": None if math.isinf(p.max_mem) else f"{p.max_mem / 2**30:g}",
            },
            *filter(None, [disk_number(ctx.disk, p, left.get("disk"), d.disk)]),
        ],
        "gpu_field": Markup(gpu) if gpu else "",  # built (and escaped) by spawn_form_gpu
        "folders": [{"reference": f.reference, "name": f.name, "mode": f.mode} for f in ctx.folders],
        "group_lines": group_lines(ctx.group_totals),
        "budget_lines": budget_lines(ctx.budgets),
    }


def render_form(ctx: FormContext, templates: Environment | None = None) -> str:
    """The HTML of the spawn form from ``spawn_form.html`` (an admin's in ``c.BerthHubService.template_paths``
    first: :mod:`.usage_templates`); the hub wraps it in its ``<form>`` with a Start button."""
    env = templates if templates is not None else default_environment()
    return env.get_template("spawn_form.html").render(**form_view(ctx))


def memory_option(value: Any) -> Any:
    """The form's memory and disk fields are in GiB (a bare number); JSON may give any size such as ``"512M"``."""
    if isinstance(value, str) and value.strip().replace(".", "", 1).isdigit():
        return f"{value.strip()}G"
    return value


__all__ = [
    "FolderChoice",
    "FormContext",
    "ImageChoice",
    "OPTION_FIELDS",
    "ServerOptions",
    "check_limits",
    "form_view",
    "memory_option",
    "options_from_form",
    "render_form",
    "resolve_options",
]

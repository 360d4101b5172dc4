"""The image catalog: which kernel images are offered, from the engine's images, their labels and the admin's decisions.

A kernel image is one the engine holds with the label ``io.jupyter.berth.kind=kernel``
(set by ``berth images bootstrap`` and inherited by images built on top of it)
whose reference matches the admin's ``offered_images`` patterns. Its other labels
describe it (display name, language, version, frameworks, minimum resources, GPU).

What an admin decided about each reference lives in the ledger (see
:mod:`jupyter_berth.images.state`): ``offered``, ``hidden`` or ``retired``, the
default, pinned aliases. :func:`build_view` joins the two into a
:class:`CatalogView`: the list of offered images (what users may start) that
also knows the hidden, retired and absent ones, so that :func:`find` can say
"berth/python:3.10 is retired; use berth/python:3.11" instead of "unknown".

Everything here is pure (no engine, no database): the service gathers the inputs.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from ..errors import NotFoundError, RequestError
from ..resources import parse_memory
from ..runtime.labels import PREFIX

# Docker's reference grammar (distribution/reference), slightly simplified.
_DOMAIN = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]{1,5})?"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_DIGEST = r"sha256:[0-9a-f]{64}"
_REF_RE = re.compile(
    rf"^(?:(?P<domain>{_DOMAIN})/)?(?P<path>{_COMPONENT}(?:/{_COMPONENT})*)(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?$"
)
_IMAGE_ID_RE = re.compile(rf"^{_DIGEST}$")
MAX_REF_LENGTH = 255
#: What notebooks and admins may give as a digest: an image id, or a registry's ``name@sha256:…``.
DIGEST_FORM = (
    "an image id such as sha256:0c22… (64 hex digits) or a registry digest such as 127.0.0.1:5000/berth/python@sha256:…"
)

#: Environment answers of :func:`resolve_environment`.
AVAILABLE, RETIRED, REPLACED, UNKNOWN = "available", "retired", "replaced", "unknown"


# -- references ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Ref:
    """A parsed image reference: ``[domain/]path[:tag][@digest]``."""

    domain: str | None
    path: str
    tag: str | None
    digest: str | None

    @property
    def repository(self) -> str:
        return f"{self.domain}/{self.path}" if self.domain else self.path

    @property
    def local(self) -> str:
        """``name:tag`` without the registry: how a pulled image is offered locally."""
        return f"{self.path}:{self.tag or 'latest'}"

    def __str__(self) -> str:
        out = self.repository
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out


def parse_ref(ref: Any, field_name: str = "image") -> Ref:
    """Parse an image reference or raise :class:`RequestError` naming the field and the accepted form."""
    if not isinstance(ref, str) or not ref or len(ref) > MAX_REF_LENGTH:
        raise RequestError(
            field_name, f"{str(ref)[:80]!r} is not a valid image reference; expected name:tag such as berth/python:3.11"
        )
    m = _REF_RE.match(ref)
    if not m:
        raise RequestError(
            field_name,
            f"{ref[:80]!r} is not a valid image reference; expected name:tag such as berth/python:3.11 "
            "(lower-case name components, a tag of letters, digits, '.', '_' or '-')",
        )
    domain, path = m.group("domain"), m.group("path")
    if domain and not ("." in domain or ":" in domain or domain == "localhost" or domain != domain.lower()):
        path, domain = (
            f"{domain}/{path}",
            None,
        )  # Docker's rule: the first component is a registry only if it looks like a host
    return Ref(domain, path, m.group("tag"), m.group("digest"))


def validate_ref(ref: Any, field_name: str = "image", *, tag_required: bool = False) -> str:
    """``ref`` when it is a valid image reference (``tag_required``: ``name:tag``, no digest)."""
    parsed = parse_ref(ref, field_name)
    if tag_required and (parsed.tag is None or parsed.digest is not None):
        raise RequestError(
            field_name, f"{ref!r} needs a tag and no digest; expected name:tag such as berth/python:3.11"
        )
    return ref


def normalise_ref(ref: str) -> str:
    """``berth/python`` → ``berth/python:latest`` (Docker's meaning); others unchanged."""
    parsed = parse_ref(ref)
    return ref if parsed.tag or parsed.digest else f"{ref}:latest"


def validate_digest(digest: Any, field_name: str = "digest") -> str:
    """An image id (``sha256:…``) or a registry digest (``name@sha256:…``), else :class:`RequestError`."""
    if isinstance(digest, str) and (
        _IMAGE_ID_RE.match(digest)
        or ("@" in digest and len(digest) <= MAX_REF_LENGTH and _REF_RE.match(digest) and parse_ref(digest).digest)
    ):
        return digest
    raise RequestError(field_name, f"{str(digest)[:80]!r} is not a digest; expected {DIGEST_FORM}")


def matches(ref: str, patterns: Iterable[str]) -> bool:
    """True when ``ref`` matches one of the admin's ``offered_images`` glob patterns."""
    return any(fnmatch.fnmatchcase(ref, p) for p in patterns)


def version_key(tag: str) -> tuple[tuple[int, ...], str]:
    """``"3.11-extra"`` → ``((3, 11), "extra")``: the numbers of the version and its flavour."""
    head, _, flavour = (tag or "").partition("-")
    return tuple(int(n) for n in re.findall(r"\d+", head)), flavour


# -- images ------------------------------------------------------------------------------


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("true", "yes", "1", "optional", "required")


@dataclass(frozen=True)
class ImageInfo:
    """One image reference of the catalog, as users and admins see it."""

    ref: str  #: name:tag as offered
    id: str  #: engine image id (sha256:…); "" when the image is not on this host
    digest: str | None  #: registry digest when pushed/pulled, else the image id
    labels: dict = field(default_factory=dict, hash=False)  #: io.jupyter.berth.* labels by short name
    size: int = 0
    created: str = ""
    repo_digests: tuple[str, ...] = ()
    state: str = "offered"  #: offered, hidden or retired
    default: bool = False  #: the image of kernels that name none
    alias_of: str | None = None  #: for a pinned alias: the reference it was pinned from
    replacement: str | None = None  #: for a retired image: the version an admin named instead
    source: str | None = None  #: the registry reference it was pulled from
    present: bool = True  #: False: known to the catalog but no longer on this host
    updated_at: datetime | None = None
    updated_by: str | None = None

    @property
    def parsed(self) -> Ref:
        return parse_ref(self.ref)

    @property
    def repository(self) -> str:
        return self.parsed.repository

    @property
    def version(self) -> str:
        return self.labels.get("version") or self.parsed.tag or "latest"

    @property
    def display_name(self) -> str:
        return self.labels.get("display_name") or self.ref

    @property
    def offered(self) -> bool:
        return self.present and self.state == "offered"

    def has_digest(self, digest: str) -> bool:
        """True when ``digest`` (image id, ``name@sha256:…`` or the bare manifest digest) names this image."""
        if not digest or not self.present:
            return False
        manifests = {d.partition("@")[2] for d in self.repo_digests}
        return (
            digest in (self.id, self.digest)
            or digest in self.repo_digests
            or digest.partition("@")[2] in manifests
            or digest in manifests
        )

    def min_resources(self) -> dict:
        out: dict[str, Any] = {"cpu": None, "mem": None}
        try:
            out["cpu"] = float(self.labels["min_cpu"]) if self.labels.get("min_cpu") else None
        except ValueError:
            pass
        try:
            out["mem"] = (
                parse_memory(self.labels["min_memory"], "min_memory") if self.labels.get("min_memory") else None
            )
        except RequestError:
            pass
        return out

    def to_json(self) -> dict:
        frameworks = [f.strip() for f in (self.labels.get("frameworks") or "").split(",") if f.strip()]
        return {
            "ref": self.ref,
            "name": self.repository,
            "version": self.version,
            "id": self.id or None,
            "digest": self.digest,
            "display_name": self.display_name,
            "language": self.labels.get("language") or None,
            "language_version": self.labels.get("python_version") or None,
            "frameworks": frameworks,
            "min_resources": self.min_resources(),
            "gpu": _truthy(self.labels.get("gpu")),
            "size": self.size,
            "created": self.created or None,
            "state": self.state,
            "default": self.default,
            "alias_of": self.alias_of,
            "replacement": self.replacement,
            "source": self.source,
            "present": self.present,
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
            "updated_by": self.updated_by,
            "labels": dict(self.labels),
        }


def image_info_from_docker(ref: str, attrs: dict) -> ImageInfo:
    """An :class:`ImageInfo` from ``docker image inspect`` attributes (labels by short name)."""
    labels = {
        k[len(PREFIX) :]: v
        for k, v in ((attrs.get("Config") or {}).get("Labels") or {}).items()
        if k.startswith(PREFIX)
    }
    digests = tuple(attrs.get("RepoDigests") or ())
    return ImageInfo(
        ref=ref,
        id=attrs.get("Id", ""),
        digest=digests[0] if digests else attrs.get("Id"),
        labels=labels,
        size=attrs.get("Size", 0),
        created=attrs.get("Created", ""),
        repo_digests=digests,
    )


def offered(images: list[ImageInfo], patterns: list[str]) -> list[ImageInfo]:
    """Kernel images whose reference matches ``patterns`` (ignores the admin's decisions)."""
    return [i for i in images if i.labels.get("kind") == "kernel" and matches(i.ref, patterns)]


# -- the catalog as the service sees it ------------------------------------------------------


class ImageRetiredError(NotFoundError):
    """A retired image was asked for; names the nearest offered version (HTTP 404)."""

    def __init__(self, ref: str, nearest: str | None):
        self.ref, self.nearest = ref, nearest
        if nearest:
            message = f"{ref} is retired; use {nearest}"
        else:
            message = f"{ref} is retired and no other version is offered; ask an admin to offer one"
        super().__init__(message)

    def to_json(self) -> dict:
        return {"message": self.message, "image": self.ref, "retired": True, "nearest": self.nearest}


class CatalogView(list):
    """The offered images (a list, what users may start), plus every reference the catalog knows.

    ``entries`` holds all of them by reference (offered, hidden, retired, absent),
    ``default_ref`` the default image when it is offered.
    """

    def __init__(
        self,
        offered_images: Iterable[ImageInfo] = (),
        entries: Mapping[str, ImageInfo] | None = None,
        default_ref: str | None = None,
    ):
        super().__init__(offered_images)
        self.entries: dict[str, ImageInfo] = dict(entries or {i.ref: i for i in self})
        self.default_ref = default_ref

    def get(self, ref: str) -> ImageInfo | None:
        return self.entries.get(ref)

    def nearest(self, ref: str) -> ImageInfo | None:
        """The offered version closest to ``ref``: the admin's replacement, else the same repository's
        nearest version (same flavour first, newer before older), else the same language's default or
        newest, else the default."""
        entry = self.entries.get(ref)
        if entry is not None and entry.replacement:
            chosen = next((i for i in self if i.ref == entry.replacement), None)
            if chosen is not None:
                return chosen
        try:
            wanted = parse_ref(ref)
        except RequestError:
            return None
        nums, flavour = version_key(wanted.tag or "")
        same_repo = [i for i in self if i.repository == wanted.repository and i.ref != ref]
        real = [i for i in same_repo if not i.alias_of] or same_repo
        if real:

            def key(i: ImageInfo):
                inums, iflavour = version_key(i.parsed.tag or "")
                common = 0
                for a, b in zip(nums, inums):
                    if a != b:
                        break
                    common += 1
                diff = abs(inums[common] - nums[common]) if common < min(len(nums), len(inums)) else 0
                return (iflavour != flavour, -common, inums < nums, diff, bool(iflavour), i.ref)

            return min(real, key=key)
        language = entry.labels.get("language") if entry is not None else None
        pool = [i for i in self if language and i.labels.get("language") == language] or list(self)
        default = next((i for i in pool if i.ref == self.default_ref), None)
        if default is not None:
            return default
        return max(pool, key=lambda i: (version_key(i.parsed.tag or "")[0], i.ref)) if pool else None

    def with_digest(self, digest: str) -> list[ImageInfo]:
        """Offered images that hold exactly ``digest``."""
        return [i for i in self if i.has_digest(digest)]


def build_view(
    found: Iterable[tuple[str, dict]],
    patterns: list[str],
    states: Mapping[str, Any],
    aliases: Mapping[str, Any],
    *,
    offer_new: bool,
    configured_default: str | None,
) -> CatalogView:
    """Join the engine's kernel images with the admin's decisions.

    ``found`` is ``(reference, inspect attributes)`` per tag; ``states`` maps a reference to a record
    with ``state``, ``is_default``, ``replacement``, ``source``, ``updated_at``, ``updated_by``;
    ``aliases`` maps an alias to a record with ``digest`` (pinned image id) and ``target``. An alias
    whose engine tag holds another image than the pinned one is not offered (the service repairs it).
    """
    entries: dict[str, ImageInfo] = {}
    for ref, attrs in found:
        if not matches(ref, patterns):
            continue
        info = image_info_from_docker(ref, attrs)
        if info.labels.get("kind") != "kernel":
            continue
        entries[ref] = info
    for ref in list(states) + list(aliases):
        if ref not in entries and matches(ref, patterns):
            entries[ref] = ImageInfo(ref=ref, id="", digest=None, present=False)
    for ref, info in list(entries.items()):
        st, alias = states.get(ref), aliases.get(ref)
        state = st.state if st is not None else ("offered" if offer_new or alias is not None else "hidden")
        changes: dict[str, Any] = {"state": state}
        if st is not None:
            changes.update(
                replacement=st.replacement, source=st.source, updated_at=st.updated_at, updated_by=st.updated_by
            )
            if not info.present and st.digest:
                changes["digest"] = st.digest
        if alias is not None:
            changes.update(alias_of=alias.target or alias.digest)
            if info.present and info.id != alias.digest:
                changes["state"] = "hidden"  # drifted: the tag no longer holds the pinned image
            if not info.present:
                changes["digest"] = alias.digest
        entries[ref] = replace(info, **changes)
    chosen = next((r for r, st in states.items() if st.is_default), None)
    default_ref = next((r for r in (chosen, configured_default) if r and r in entries and entries[r].offered), None)
    if default_ref:
        entries[default_ref] = replace(entries[default_ref], default=True)
    offered_images = sorted((i for i in entries.values() if i.offered), key=lambda i: i.ref)
    return CatalogView(offered_images, dict(sorted(entries.items())), default_ref)


def find(images: list[ImageInfo], ref: str) -> ImageInfo:
    """The offered image ``ref``; a retired one names the nearest offered version, others list the offered ones."""
    validate_ref(ref)
    ref = normalise_ref(ref)
    for i in images:
        if i.ref == ref:
            return i
    if isinstance(images, CatalogView):
        entry = images.get(ref)
        if entry is not None and entry.state == "retired":
            nearest = images.nearest(ref)
            raise ImageRetiredError(ref, nearest.ref if nearest else None)
    names = ", ".join(sorted(i.ref for i in images)) or "none (run `berth images bootstrap`)"
    raise NotFoundError(f"the image {ref!r} is not offered on this host; offered images: {names}")


def resolve_environment(view: CatalogView, image: str, digest: str | None = None) -> dict:
    """What a notebook's stored environment ``{image, digest}`` can get here.

    ``status`` is ``available`` (exactly that image, by digest when one is given; ``image`` says
    under which reference), ``retired`` (an admin retired it; ``nearest`` is offered instead),
    ``replaced`` (the reference now holds another build; ``nearest`` is that build) or
    ``unknown`` (never offered here, or hidden; ``nearest`` may still suggest one).
    """
    validate_ref(image)
    image = normalise_ref(image)
    if digest is not None:
        validate_digest(digest)
    entry = view.get(image)

    def describe(i: ImageInfo | None) -> dict | None:
        return None if i is None else {"image": i.ref, "digest": i.digest, "display_name": i.display_name}

    answer: dict[str, Any] = {"image": image, "digest": digest, "nearest": None}
    exact = [i for i in view if i.ref == image and (digest is None or i.has_digest(digest))]
    if not exact and digest is not None:
        exact = view.with_digest(digest)
        exact.sort(key=lambda i: (bool(i.alias_of), i.ref))
    if exact:
        found = exact[0]
        where = "" if found.ref == image else f" (now offered as {found.ref})"
        return {
            **answer,
            "status": AVAILABLE,
            "image": found.ref,
            "digest": found.digest,
            "display_name": found.display_name,
            "message": f"the notebook's environment {image} is available{where}",
        }
    nearest = view.nearest(image)
    answer["nearest"] = describe(nearest)
    if entry is not None and entry.state == "retired":
        message = (
            f"{image} is retired; use {nearest.ref}"
            if nearest
            else f"{image} is retired and no other version is offered"
        )
        return {**answer, "status": RETIRED, "message": message}
    if entry is not None and entry.offered:  # same reference, another digest
        answer["nearest"] = describe(entry)
        return {
            **answer,
            "status": REPLACED,
            "message": f"{image} now holds another build ({entry.digest}) than the one this notebook ran ({digest}); "
            f"the exact environment is no longer on this host",
        }
    tail = f"; the nearest offered version is {nearest.ref}" if nearest else ""
    return {**answer, "status": UNKNOWN, "message": f"{image} is not offered on this host{tail}"}

"""The image catalog: which kernel images are offered, from the engine's images and labels.

A kernel image is offered when it carries the label ``io.jupyter.berth.kind=kernel``
(set by ``berth images bootstrap`` and by images built on top of it) and its
reference matches the admin's ``offered_images`` patterns. Its other labels
describe it (display name, language, version, frameworks, minimum resources, GPU).
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

from .errors import NotFoundError, RequestError
from .runtime.labels import PREFIX

_REF_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-/:@")


@dataclass(frozen=True)
class ImageInfo:
    ref: str  #: name:tag as offered
    id: str  #: engine image id (sha256:…)
    digest: str | None  #: repo digest when pushed/pulled, else the image id
    labels: dict = field(default_factory=dict, hash=False)
    size: int = 0
    created: str = ""

    @property
    def display_name(self) -> str:
        return self.labels.get("display_name") or self.ref

    def to_json(self) -> dict:
        return {"ref": self.ref, "id": self.id, "digest": self.digest, "display_name": self.display_name,
                "size": self.size, "created": self.created, **{f"label_{k}": v for k, v in self.labels.items()}}


def validate_ref(ref: str, field_name: str = "image") -> str:
    if not isinstance(ref, str) or not ref or len(ref) > 255 or not set(ref) <= _REF_CHARS or ref.startswith(("-", "/")):
        raise RequestError(field_name, f"{ref!r} is not a valid image reference; expected name:tag such as berth/python:3.11")
    return ref


def image_info_from_docker(ref: str, attrs: dict) -> ImageInfo:
    labels = {k[len(PREFIX):]: v for k, v in ((attrs.get("Config") or {}).get("Labels") or {}).items() if k.startswith(PREFIX)}
    digests = attrs.get("RepoDigests") or []
    return ImageInfo(ref=ref, id=attrs.get("Id", ""), digest=digests[0] if digests else attrs.get("Id"),
                     labels=labels, size=attrs.get("Size", 0), created=attrs.get("Created", ""))


def offered(images: list[ImageInfo], patterns: list[str]) -> list[ImageInfo]:
    return [i for i in images if i.labels.get("kind") == "kernel" and any(fnmatch.fnmatchcase(i.ref, p) for p in patterns)]


def find(images: list[ImageInfo], ref: str) -> ImageInfo:
    validate_ref(ref)
    for i in images:
        if i.ref == ref:
            return i
    names = ", ".join(sorted(i.ref for i in images)) or "none (run `berth images bootstrap`)"
    raise NotFoundError(f"the image {ref!r} is not offered on this host; offered images: {names}")

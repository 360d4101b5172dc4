"""Kernelspecs for Berth: one per offered image version and one per preset.

This is how clients that can only pick a kernel by name (VS Code's remote
Jupyter, ``jupyter console --kernel``) get a container with resources. Names are
stable (``berth-python-3.11``, ``berth-preset-gpu-small``) so notebooks keep
finding their kernel; kernelspecs Berth wrote that are no longer offered are
removed; kernelspecs it did not write are never touched.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
from dataclasses import dataclass

from jupyter_core.paths import jupyter_data_dir

from jupyter_berth.environments.model import KERNEL_ENV, kernels_from_labels
from jupyter_berth.images.catalog import ImageInfo
from jupyter_berth.resources import Preset

PREFIX = "berth-"
MARKER = "jupyter_berth"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-")[:60]


def image_kernel_name(ref: str) -> str:
    """``berth/python:3.11`` → ``berth-python-3.11``."""
    name = ref.split("/", 1)[1] if ref.startswith("berth/") else ref
    return PREFIX + _slug(name)


def preset_kernel_name(preset: str) -> str:
    return PREFIX + "preset-" + _slug(preset)


def kernelspec_for(base_name: str, labels: dict, kernel: str | None = None) -> str:
    """The Berth kernelspec of an image's (or preset's) kernel ``kernel``: ``base_name`` for an image built
    FROM Berth's base, ``<base_name>-<kernel>`` for one inspected when offered (its default kernel if none)."""
    kernels = kernels_from_labels(labels)
    if not kernels:
        return base_name
    names = [k["name"] for k in kernels]
    chosen = kernel if kernel in names else ("python3" if "python3" in names else names[0])
    if kernel and kernel not in names:
        from jupyter_berth.errors import NotFoundError

        raise NotFoundError(f"the image has no kernel {kernel!r}; it offers: {', '.join(names)}")
    return f"{base_name}-{_slug(chosen)}"


@dataclass(frozen=True)
class SpecPlan:
    name: str
    spec: dict


def _spec(display_name: str, language: str, config: dict, description: str, env: dict | None = None, **marker) -> dict:
    return {
        "argv": ["berth-kernel", "-f", "{connection_file}"],
        "display_name": display_name,
        "language": language,
        "interrupt_mode": "signal",
        "env": dict(env or {}),
        "metadata": {
            "kernel_provisioner": {"provisioner_name": "berth", "config": config},
            MARKER: {"managed": True, "description": description, **config, **marker},
            "debugger": True,
        },
    }


def plan(images: list[ImageInfo], presets: list[Preset], default_image: str) -> list[SpecPlan]:
    """The kernelspecs that should exist for these images and presets.

    ``images`` are the offered ones only: hidden and retired versions get no kernelspec (and
    :func:`sync` removes the ones they had). The default image's kernelspec says so in its
    ``jupyter_berth`` metadata (``"default": true``), an alias's names what it is pinned to.
    """
    out = []
    for img in images:
        labels = img.labels
        display = labels.get("display_name") or img.ref
        marker = {"default": True} if img.ref == default_image else {}
        if getattr(img, "alias_of", None):
            marker["alias_of"] = img.alias_of
        kernels = kernels_from_labels(labels)
        if kernels:  # an image inspected when offered: one kernelspec per kernel it holds
            for k in kernels:
                out.append(
                    SpecPlan(
                        f"{image_kernel_name(img.ref)}-{_slug(k['name'])}",
                        _kernel_spec(k, display, {"image": img.ref}, f"{img.ref}: {_describe(k)}", marker),
                    )
                )
            continue
        out.append(
            SpecPlan(
                image_kernel_name(img.ref),
                _spec(
                    f"{display} (Berth)",
                    labels.get("language", "python"),
                    {"image": img.ref},
                    f"{img.ref}: container kernel with your default resources",
                    **marker,
                ),
            )
        )
    known = {i.ref: i for i in images}
    for p in presets:
        image = p.image or default_image
        if image not in known:
            continue  # a preset whose image is not offered is not offered either
        label = known[image].labels.get("display_name") or image
        description = p.description or f"{p.name}: {p.resources.describe()}"
        kernels = kernels_from_labels(known[image].labels)
        if kernels:
            for k in kernels:
                out.append(
                    SpecPlan(
                        f"{preset_kernel_name(p.name)}-{_slug(k['name'])}",
                        _kernel_spec(
                            k, f"{label} · {p.display_name}", {"preset": p.name, "image": image}, description, {}
                        ),
                    )
                )
            continue
        out.append(
            SpecPlan(
                preset_kernel_name(p.name),
                _spec(
                    f"{label} · {p.display_name}",
                    known[image].labels.get("language", "python"),
                    {"preset": p.name, "image": image},
                    description,
                ),
            )
        )
    return out


def _describe(kernel: dict) -> str:
    """``R 4.2.2 (IRkernel 1.3.2)``."""
    head = f"{kernel.get('language', '')} {kernel.get('language_version', '')}".strip()
    frameworks = kernel.get("frameworks") or {}
    tail = ", ".join(f"{n} {v}" for n, v in sorted(frameworks.items()))
    return f"{head} ({tail})" if tail else head


def _kernel_spec(kernel: dict, where: str, config: dict, description: str, marker: dict) -> dict:
    """The Berth kernelspec of one kernel inside an image: its language, and its name for the service."""
    return _spec(
        f"{kernel.get('display_name') or kernel['name']} · {where} (Berth)",
        kernel.get("language") or "unknown",
        config,
        description,
        env={KERNEL_ENV: kernel["name"]},
        kernel=kernel["name"],
        language_version=kernel.get("language_version") or "",
        frameworks=dict(kernel.get("frameworks") or {}),
        **marker,
    )


def is_managed(spec_dir: str) -> bool:
    try:
        with open(os.path.join(spec_dir, "kernel.json")) as f:
            return bool(json.load(f).get("metadata", {}).get(MARKER, {}).get("managed"))
    except (OSError, ValueError):
        return False


def sync(plans: list[SpecPlan], kernels_dir: str | None = None) -> dict:
    """Write the planned kernelspecs, remove stale Berth ones; returns what changed."""
    kernels_dir = kernels_dir or os.path.join(jupyter_data_dir(), "kernels")
    os.makedirs(kernels_dir, exist_ok=True)
    wanted = {p.name: p.spec for p in plans}
    written, unchanged, removed = [], [], []
    for name, spec in wanted.items():
        d = os.path.join(kernels_dir, name)
        path = os.path.join(d, "kernel.json")
        text = json.dumps(spec, indent=2, sort_keys=True)
        try:
            with open(path) as f:
                if f.read() == text:
                    unchanged.append(name)
                    continue
        except OSError:
            pass
        os.makedirs(d, exist_ok=True)
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, path)
        written.append(name)
    for name in sorted(os.listdir(kernels_dir)):
        d = os.path.join(kernels_dir, name)
        if name.startswith(PREFIX) and name not in wanted and is_managed(d):
            shutil.rmtree(d)
            removed.append(name)
    return {"dir": kernels_dir, "written": written, "unchanged": unchanged, "removed": removed}


async def sync_from_service(service, kernels_dir: str | None = None) -> dict:
    images = await service.images.catalog_view()
    return sync(plan(images, service.preset_list, service.default_image), kernels_dir)


@dataclass(frozen=True)
class ListedImage:
    """An offered image as ``GET berth/api/images`` lists it: what :func:`plan` reads."""

    ref: str
    labels: dict
    alias_of: str | None = None


def plan_from_listing(images: dict, presets: dict) -> list[SpecPlan]:
    """:func:`plan` from the REST listings (``GET berth/api/images`` and ``GET berth/api/presets``).

    Hub mode: the user's server has no catalog of its own; the hub's Berth service lists what
    is offered to this user.
    """
    offered = [
        ListedImage(ref=i["ref"], labels=dict(i.get("labels") or {}), alias_of=i.get("alias_of"))
        for i in images.get("images", [])
        if i.get("state", "offered") == "offered" and i.get("ref")
    ]
    default = images.get("default") or (offered[0].ref if offered else "")
    parsed = []
    for p in presets.get("presets", []):
        data = {
            **(p.get("resources") or {}),
            "display_name": p.get("display_name"),
            "image": p.get("image"),
            "description": p.get("description") or "",
        }
        parsed.append(Preset.parse(p["name"], data))
    return plan(offered, parsed, default)  # type: ignore[arg-type]


async def sync_from_remote(remote, kernels_dir: str | None = None, images: dict | None = None) -> dict:
    """Hub mode: the kernelspecs for what the hub's Berth service offers this server's user.

    ``images``: a ``GET berth/api/images`` answer already in hand (else it is asked for).
    """
    if images is None:
        images = await remote.call("GET", "berth/api/images")
    presets = await remote.call("GET", "berth/api/presets")
    return await asyncio.to_thread(sync, plan_from_listing(images or {}, presets or {}), kernels_dir)


def kernelspec_for_answer(images: list, answer: dict, kernel: str | None, language: str | None) -> str | None:
    """The Berth kernelspec that reopens a notebook's environment (see ``catalog.resolve_environment``):
    on the image the answer offers (exactly it, else the nearest), the recorded ``kernel`` inside it, else
    one in the same ``language``; ``None`` when that image has neither."""
    ref = answer.get("image") if answer.get("status") == "available" else (answer.get("nearest") or {}).get("image")
    info = next((i for i in images if i.ref == ref), None)
    if info is None:
        return None
    base = image_kernel_name(info.ref)
    kernels = kernels_from_labels(info.labels)
    if not kernels:  # an image built FROM Berth's base: one kernel, in its label's language
        same = not language or language.lower() == (info.labels.get("language") or "python").lower()
        return base if same else None
    chosen = next((k for k in kernels if kernel and k["name"] == kernel), None) or next(
        (k for k in kernels if language and str(k.get("language", "")).lower() == language.lower()), None
    )
    return f"{base}-{_slug(chosen['name'])}" if chosen else None

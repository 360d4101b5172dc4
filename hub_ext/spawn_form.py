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
memory, GPU share and folders, each with the limit of the user's policy beside it (the
GPU control, bounded by the policy and the devices' free shares, is in :mod:`.spawn_form_gpu`).
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from jupyter_berth.errors import RequestError
from jupyter_berth.policies import EffectivePolicy
from jupyter_berth.resources import ALIASES, Resources, format_bytes, resource_kinds

from .spawn_form_gpu import GpuOffer, check_gpu, host_can_give, render_gpu_field


class _OptionFields(Mapping):
    """Fields ``user_options`` may carry (a form's fields have the same names): the image, every
    resource kind of the registry (``jupyter_berth.resources.KINDS``) and the folders."""

    def _items(self) -> dict[str, str]:
        return {
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


@dataclass(frozen=True)
class ServerOptions:
    """A validated request for one server."""

    image: str
    resources: Resources
    folders: tuple[str, ...] = ()

    def to_json(self) -> dict:
        r = self.resources
        return {
            "image": self.image,
            "cpu": r.cpu,
            "mem": format_bytes(r.mem),
            "gpu": r.gpu,
            "folders": list(self.folders),
        }


# ---- 1. form → user_options -----------------------------------------------------------------
def options_from_form(formdata: Mapping[str, Sequence[str]]) -> dict:
    """``{name: [strings]}`` from the spawn form → ``user_options`` (empty fields left out).

    Folders come as one checkbox per folder (``folders=[a, b]``); the memory field is in
    GiB (``"0.5"`` → ``"0.5G"``). Values stay strings; they are parsed, with errors naming
    the field, by :func:`resolve_options`.
    """
    options: dict[str, Any] = {}
    for name, values in formdata.items():
        if name.startswith("_"):  # the form's own fields (e.g. JupyterHub's ``_xsrf``), not server options
            continue
        values = [v.strip() for v in values if isinstance(v, str)]
        if name == "folders":
            options["folders"] = [v for v in values if v]
        elif values and values[0]:
            options[name] = memory_option(values[0]) if name == "mem" else values[0]
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


def _image(value: Any, ctx: FormContext) -> str:
    if value is None or value == "":
        return ctx.default_image
    if not isinstance(value, str):
        raise RequestError("image", f"expected {OPTION_FIELDS['image']}")
    offered = [i.ref for i in ctx.images]
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
    image = _image(options.get("image"), ctx)
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
    resources = ctx.policy.check(resources, explicit=set(values), image=image, subject="server")
    if resources.shm > resources.mem:
        resources = resources.replace(shm=min(resources.shm, resources.mem // 2))
    check_gpu(resources.gpu, ctx.gpu)
    return ServerOptions(image=image, resources=resources, folders=_folders(options.get("folders"), ctx))


# ---- the form ----------------------------------------------------------------------------------
def _limit_words(value: float | None, fmt) -> str:
    return "no limit" if value is None or (isinstance(value, float) and math.isinf(value)) else f"at most {fmt(value)}"


def _number_input(
    name: str,
    label: str,
    value: str,
    hint: str,
    *,
    step: str = "any",
    min_value: str = "0",
    max_value: str | None = None,
) -> str:
    bound = f' max="{html.escape(max_value)}"' if max_value else ""
    return (
        f'<div class="form-group berth-field">\n  <label for="berth-{name}">{html.escape(label)}</label>\n'
        f'  <input type="number" class="form-control" id="berth-{name}" name="{name}" value="{html.escape(value)}" '
        f'step="{step}" min="{min_value}"{bound} aria-describedby="berth-{name}-hint">\n'
        f'  <small id="berth-{name}-hint" class="form-text text-muted">{html.escape(hint)}</small>\n</div>'
    )


def render_form(ctx: FormContext) -> str:
    """The HTML of the spawn form (the hub wraps it in its ``<form>`` with a Start button)."""
    p, d = ctx.policy, ctx.defaults
    parts = ['<div class="berth-spawn-form">']
    if ctx.notice:
        parts.append(f'<div class="alert alert-warning" role="status">{html.escape(ctx.notice)}</div>')
    options = "\n".join(
        f'    <option value="{html.escape(i.ref)}"{" selected" if i.ref == ctx.default_image else ""}>'
        f"{html.escape(i.display_name or i.ref)} ({html.escape(i.ref)})</option>"
        for i in ctx.images
    )
    parts.append(
        f'<div class="form-group berth-field">\n  <label for="berth-image">Image version</label>\n'
        f'  <select class="form-control" id="berth-image" name="image">\n{options}\n  </select>\n</div>'
    )
    left = ctx.remaining or {}
    cpu_hint = f"Cores for your server: {_limit_words(p.max_cpu, lambda v: f'{v:g}')} per server or kernel"
    if left.get("cpu") is not None:
        cpu_hint += f"; {left['cpu']:g} left of your total"
    mem_max_gib = None if math.isinf(p.max_mem) else p.max_mem / 2**30
    mem_hint = f"Memory for your server in GiB: {_limit_words(p.max_mem, format_bytes)}"
    if left.get("mem") is not None:
        mem_hint += f"; {format_bytes(left['mem'])} left of your total"
    parts.append(
        _number_input(
            "cpu",
            "CPU (cores)",
            f"{d.cpu:g}",
            cpu_hint,
            step="0.05",
            min_value="0.05",
            max_value=None if math.isinf(p.max_cpu) else f"{p.max_cpu:g}",
        )
    )
    parts.append(
        _number_input(
            "mem",
            "Memory (GiB)",
            f"{d.mem / 2**30:g}",
            mem_hint,
            step="0.125",
            min_value="0.125",
            max_value=None if mem_max_gib is None else f"{mem_max_gib:g}",
        )
    )
    gpu = render_gpu_field(ctx.gpu, p, left.get("gpu"), d.gpu, hide_missing=ctx.hide_missing_gpu)
    if gpu:
        parts.append(gpu)
    if ctx.folders:
        boxes = "\n".join(
            f'  <div class="checkbox"><label><input type="checkbox" name="folders" value="{html.escape(f.reference)}"> '
            f'{html.escape(f.reference)} <small class="text-muted">({"read-only" if f.mode == "ro" else "read-write"}, '
            f"at ~/folders/{html.escape(f.name)})</small></label></div>"
            for f in ctx.folders
        )
        parts.append(
            f'<fieldset class="form-group berth-field">\n  <legend>Folders to mount</legend>\n{boxes}\n</fieldset>'
        )
    parts.append(
        '<p class="text-muted berth-note">Your kernels run in containers of their own, with the resources '
        "you pick in JupyterLab; they count toward the same totals as this server. When the host is full, "
        "your server waits in a queue and this page shows your place.</p>"
    )
    parts.append("</div>")
    return "\n".join(parts)


def memory_option(value: Any) -> Any:
    """The form's memory field is in GiB (a bare number); JSON may give any size such as ``"512M"``."""
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
    "memory_option",
    "options_from_form",
    "render_form",
    "resolve_options",
]

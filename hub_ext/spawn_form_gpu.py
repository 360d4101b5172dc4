"""The spawn form's GPU control and the GPU check of the options pipeline, as pure functions.

The hub's Berth service is the one authority on GPUs: its ``gpu_summary()`` (the answer
of ``GET berth/api/gpus``: the devices, declared or found by NVML, the free share of each
from the ledger's live grants, the quantum) becomes a :class:`GpuOffer`. With the user's
policy:

* :func:`gpu_bounds` — what the form offers: fractions in steps of the quantum, from 0 up
  to the smallest of the policy's ``max_gpu``, what is left of ``total_gpu`` and the
  largest free share on a device that takes fractions; whole devices up to the smallest
  of ``max_gpu``, what is left of ``total_gpu`` and the number of devices entirely free;
* :func:`render_gpu_field` — the control: a list of those choices (a number input with
  step = quantum when the quantum is so fine that the list would be long), and every
  device with its free share (``GPU 0 · T4 (16 GiB) · declared · 0.75 of 1.0 free``).
  With no device: "no NVIDIA GPU on this host", or nothing when the admin hides it;
* :func:`check_gpu` — the server-side check of any request, from the form or JSON:
  refuses what this host could never give (a GPU where there is none, a fraction that is
  not a multiple of the quantum, more devices than there are, a fraction where no device
  takes fractions) by asking the same allocator admission uses, with nothing in use. A
  request that is only too big for what is free *now* is left to admission, which queues it.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from jupyter_berth.errors import BerthError, CapacityError
from jupyter_berth.gpu import allocator
from jupyter_berth.gpu.inventory import NO_GPU, GpuDevice
from jupyter_berth.policies import EffectivePolicy
from jupyter_berth.resources import format_bytes

UNITS = allocator.UNITS
#: Above this many fraction choices the form shows a number input (step = quantum) instead of a list.
MAX_LISTED_FRACTIONS = 40
_DEVICE_FIELDS = {f.name for f in fields(GpuDevice)}


def share_words(units: int) -> str:
    """10000 → ``"1.0"``, 7500 → ``"0.75"`` (shares as the form shows them)."""
    text = allocator.format_share(units)
    return text if "." in text else f"{text}.0"


def _units(value: float) -> int:
    """A share (policy value, ledger sum) as allocator units, tolerant of float noise."""
    return max(0, round(float(value) * UNITS))


@dataclass(frozen=True)
class GpuOffer:
    """This host's GPUs and their free shares, as the Berth service reports them."""

    devices: tuple[GpuDevice, ...] = ()  #: devices on this host (other Swarm nodes' are left out)
    free: Mapping[str, float] = field(default_factory=dict)  #: uuid → free share
    quantum: float = 0.05
    placement: str = "pack"
    shareable: frozenset[str] | None = None  #: uuids that take fractions (None: all but MIG-enabled)
    source: str = "none"  #: ``nvml``, ``declared`` or ``none``
    message: str = NO_GPU  #: the inventory's one line (why there is none, when there is none)

    @classmethod
    def from_summary(
        cls, summary: Mapping[str, Any], *, shareable: Iterable[str] | None = None, node: str | None = None
    ) -> GpuOffer:
        """From ``service.gpus.gpu_summary()`` (the shape of ``GET berth/api/gpus``)."""
        devices = tuple(
            GpuDevice(**{k: v for k, v in d.items() if k in _DEVICE_FIELDS}) for d in summary.get("devices") or ()
        )
        devices = tuple(d for d in devices if d.node in (None, node))
        return cls(
            devices=devices,
            free={d.uuid: float(summary.get("free", {}).get(d.uuid, 0.0)) for d in devices},
            quantum=float(summary.get("quantum") or 0.05),
            placement=summary.get("policy") or "pack",
            shareable=frozenset(shareable) if shareable is not None else None,
            source=summary.get("source") or "none",
            message=summary.get("message") or NO_GPU,
        )

    def takes_fractions(self, device: GpuDevice) -> bool:
        return (not device.mig_mode) if self.shareable is None else device.uuid in self.shareable

    def free_units(self, device: GpuDevice) -> int:
        return min(UNITS, _units(self.free.get(device.uuid, 0.0)))

    def device_label(self, device: GpuDevice) -> str:
        """``GPU 0 · Tesla T4 (16 GiB) · declared · 0.75 of 1.0 free``."""
        parts = [f"GPU {device.index}", f"{device.name} ({format_bytes(device.memory_bytes)})"]
        if device.declared:
            parts.append("declared")
        if not self.takes_fractions(device):
            parts.append("whole only")
        parts.append(f"{share_words(self.free_units(device))} of 1.0 free")
        return " · ".join(parts)


@dataclass(frozen=True)
class GpuBounds:
    """How much GPU the form offers one user, and why not more."""

    quantum_units: int
    fraction_max_units: int  #: the largest fraction offered (0: none)
    whole_max: int  #: the most whole devices offered (0: none)
    reasons: tuple[str, ...]  #: what bounds the offer, in words

    def choices(self) -> list[float]:
        """0, then every fraction in quantum steps, then every whole count."""
        q = self.quantum_units
        fractions = [k * q / UNITS for k in range(1, self.fraction_max_units // q + 1)]
        return [0.0] + fractions + [float(n) for n in range(1, self.whole_max + 1)]

    @property
    def listed(self) -> bool:
        return self.fraction_max_units // self.quantum_units <= MAX_LISTED_FRACTIONS


def gpu_bounds(offer: GpuOffer, policy: EffectivePolicy, remaining: float | None) -> GpuBounds:
    """The fractions and whole counts one user may pick now (see the module doc)."""
    q = allocator.to_units(offer.quantum, "gpu_quantum")
    caps, reasons = [], []
    limit = policy.max_gpu
    if limit is not None and not math.isinf(limit):
        caps.append(_units(limit))
        reasons.append(
            f"your policy allows at most {limit:g} GPU per server "
            f"(max_gpu, set by {policy.sources.get('max_gpu', 'policy')})"
        )
    if remaining is not None and not math.isinf(remaining):
        caps.append(_units(remaining))
        reasons.append(
            f"{share_words(_units(remaining))} is left of your total "
            f"(total_gpu, set by {policy.sources.get('total_gpu', 'policy')})"
        )
    cap = min(caps) if caps else math.inf
    sharing = [d for d in offer.devices if offer.takes_fractions(d)]
    most_free = max((offer.free_units(d) for d in sharing), default=0)
    top = min(cap, most_free, UNITS - 1)
    top -= top % q
    by_node: dict[str | None, int] = {}
    for d in offer.devices:
        if offer.free_units(d) == UNITS and allocator.takes_whole_grants(d):
            by_node[d.node] = by_node.get(d.node, 0) + 1
    free_whole = max(by_node.values(), default=0)
    whole = int(min(cap // UNITS if caps else math.inf, free_whole))
    if sharing:
        reasons.append(f"the most free on a device that takes fractions is {share_words(most_free)}")
    else:
        reasons.append("no device here takes fractions")
    if cap >= UNITS:
        reasons.append(f"{free_whole} device{'s are' if free_whole != 1 else ' is'} entirely free")
    return GpuBounds(quantum_units=q, fraction_max_units=int(top), whole_max=whole, reasons=tuple(reasons))


def choice_words(value: float, offer: GpuOffer) -> str:
    """``No GPU``, ``0.25 of a GPU (4 GiB of 16 GiB)``, ``1 whole GPU``, ``2 whole GPUs``."""
    if value == 0:
        return "No GPU"
    if value >= 1:
        n = int(value)
        return f"{n} whole GPU{'s' if n != 1 else ''}"
    sizes = {d.memory_bytes for d in offer.devices if offer.takes_fractions(d)}
    words = f"{allocator.format_share(_units(value))} of a GPU"
    if len(sizes) == 1:
        (size,) = sizes
        words += f" ({format_bytes(int(size * value))} of {format_bytes(size)})"
    return words


def render_gpu_field(
    offer: GpuOffer | None,
    policy: EffectivePolicy,
    remaining: float | None,
    default: float,
    *,
    hide_missing: bool = False,
) -> str:
    """The form's GPU control (an empty string when there is no GPU and the admin hides that)."""
    e = html.escape
    if offer is None or not offer.devices:
        if hide_missing:
            return ""
        message = offer.message if offer is not None else NO_GPU
        return f'<p class="berth-field berth-gpu text-muted">GPU: none ({e(message)}).</p>'
    devices = "\n".join(f"    <li>{e(offer.device_label(d))}</li>" for d in offer.devices)
    device_list = f'  <ul class="berth-gpu-devices text-muted">\n{devices}\n  </ul>'
    if not policy.max_gpu:
        source = policy.sources.get("max_gpu", "policy")
        return (
            f'<div class="berth-field berth-gpu">\n  <p class="text-muted">GPU: none (your policy allows no GPU: '
            f"max_gpu is 0, set by {e(source)}).</p>\n{device_list}\n</div>"
        )
    bounds = gpu_bounds(offer, policy, remaining)
    choices = bounds.choices()
    hint = "Bounded now by: " + "; ".join(bounds.reasons) + "."
    if len(choices) == 1:
        hint = "No GPU share you may have is free right now (" + "; ".join(bounds.reasons) + ")."
    if bounds.listed:
        chosen = default if any(abs(default - c) < 1e-9 for c in choices) else 0.0
        options = "\n".join(
            f'    <option value="{allocator.format_share(_units(c))}"{" selected" if abs(c - chosen) < 1e-9 else ""}>'
            f"{e(choice_words(c, offer))}</option>"
            for c in choices
        )
        control = (
            f'  <select class="form-control" id="berth-gpu" name="gpu" aria-describedby="berth-gpu-hint">\n'
            f"{options}\n  </select>"
        )
    else:
        top = choices[-1]
        value = default if 0 <= default <= top else 0.0
        control = (
            f'  <input type="number" class="form-control" id="berth-gpu" name="gpu" '
            f'value="{allocator.format_share(_units(value))}" step="{allocator.format_share(bounds.quantum_units)}" '
            f'min="0" max="{allocator.format_share(_units(top))}" aria-describedby="berth-gpu-hint">'
        )
    steps = f"A share of one GPU in steps of {allocator.format_share(bounds.quantum_units)}" + (
        ", or whole GPUs" if bounds.whole_max else ""
    )
    return (
        f'<div class="form-group berth-field berth-gpu">\n  <label for="berth-gpu">GPU</label>\n{control}\n'
        f'  <small id="berth-gpu-hint" class="form-text text-muted">{e(steps)}. {e(hint)}</small>\n'
        f"{device_list}\n</div>"
    )


def check_gpu(gpu: float, offer: GpuOffer | None) -> None:
    """Refuse a GPU request this host could never give (see the module doc); 0 always passes."""
    if not gpu:
        return
    offer = offer or GpuOffer()
    try:
        allocator.assign(
            list(offer.devices),
            {},
            gpu,
            offer.placement,
            offer.quantum,
            set(offer.shareable) if offer.shareable is not None else None,
        )
    except allocator.GpuCapacityError as e:
        raise CapacityError(f"gpu: {e.message}", resource="gpu", never_fits=True, log_message=e.log_message) from None


def host_can_give(gpu: float, offer: GpuOffer | None) -> bool:
    """Whether :func:`check_gpu` passes (used to drop an admin's default GPU on a host without one)."""
    try:
        check_gpu(gpu, offer)
    except BerthError:  # a RequestError or a CapacityError: either way, not on this host
        return False
    return True


__all__ = [
    "GpuBounds",
    "GpuOffer",
    "MAX_LISTED_FRACTIONS",
    "check_gpu",
    "choice_words",
    "gpu_bounds",
    "host_can_give",
    "render_gpu_field",
    "share_words",
]

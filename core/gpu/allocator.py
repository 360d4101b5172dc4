"""The GPU fraction allocator: which device(s) a GPU request gets (pure functions).

Every device has 1.0 share. A request is either

* a **fraction** (0 < gpu < 1): it must be a multiple of the configured quantum
  (default 0.05) and goes to exactly ONE device that has that much share free
  and takes fractions (is *shareable*); or
* a **whole count** N ≥ 1: N devices that are entirely free (nothing of them in
  use), all on the same node when devices carry node names.

Placement policy for fractions: ``pack`` picks the device with the *least* free
share that still fits (partly used devices fill first, whole devices stay free
for whole requests); ``spread`` picks the one with the *most* free share (less
contention per kernel). Ties go to the lowest index. Whole requests prefer
devices that are not shareable (they cannot serve fractions anyway), then low
indices. A MIG-enabled GPU is never granted whole: it runs work only in its MIG
instances (NVIDIA's MIG user guide), so the kernel would get a device it cannot
compute on; declare the instances (``MIG-…`` UUIDs) instead.

Shares are counted in integer units of 1/10000 of a device, so repeated
assign/release (0.1 + 0.2 …) never drifts past 1.0. Refusals raise
:class:`~jupyter_berth.errors.CapacityError` with ``never_fits=True`` when this
host could never satisfy the request (admission should refuse at once rather
than queue it).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from ..errors import CapacityError, RequestError
from .inventory import GpuDevice

#: Shares are integers in these units (1 device = UNITS); matches resources.GPU_DECIMALS.
UNITS = 10_000
Policy = Literal["pack", "spread"]
POLICIES = ("pack", "spread")


@dataclass(frozen=True)
class GpuShare:
    """A part of one device given to one kernel or server."""

    uuid: str
    share: float  #: 1.0 for a whole device
    node: str | None = None

    def to_dict(self) -> dict:
        out: dict[str, Any] = {"uuid": self.uuid, "share": self.share}
        if self.node is not None:
            out["node"] = self.node
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | GpuShare) -> GpuShare:
        if isinstance(data, GpuShare):
            return data
        return cls(uuid=data["uuid"], share=float(data["share"]), node=data.get("node"))


class GpuCapacityError(CapacityError):
    """No device (set) can take the request; ``never_fits`` if this host never could."""

    def __init__(self, message: str, *, never_fits: bool = False, **kw):
        super().__init__(message, resource="gpu", never_fits=never_fits, **kw)


# ---------------------------------------------------------------------------
# exact share arithmetic


def to_units(value: float | int | str | Decimal, field: str = "gpu") -> int:
    """A share as integer units; refuses more precision than 1/UNITS.

    ``0.3`` → 3000 exactly (``Decimal(str(0.3))``, not ``0.3 * 10000``).
    """
    try:
        exact = Decimal(str(value)) * UNITS
    except ArithmeticError:
        raise RequestError(field, f"{value!r} is not a number of GPUs") from None
    if not exact.is_finite() or exact != exact.to_integral_value():
        raise RequestError(field, f"{value!r} has more than {len(str(UNITS)) - 1} decimal places; round it")
    return int(exact)


def _used_units(value: float) -> int:
    """Units in use from a ledger sum; tolerant of float noise (0.1 + 0.2)."""
    return max(0, round(float(value) * UNITS))


def from_units(units: int) -> float:
    return units / UNITS


def format_share(units: int) -> str:
    """3500 → ``"0.35"``, 10000 → ``"1"``."""
    return f"{Decimal(units) / UNITS:f}".rstrip("0").rstrip(".") if units % UNITS else str(units // UNITS)


def free_shares(devices: Iterable[GpuDevice], used: Mapping[str, float]) -> dict[str, float]:
    """Free share per device uuid (0.0 when fully used or over-used)."""
    return {d.uuid: from_units(max(0, UNITS - _used_units(used.get(d.uuid, 0.0)))) for d in devices}


def used_by_device(grants: Iterable[Iterable[GpuShare | Mapping[str, Any]]]) -> dict[str, float]:
    """Sum the shares of live grants per device, exactly (what admission passes as ``used``)."""
    totals: dict[str, int] = {}
    for grant in grants:
        for item in grant or ():
            share = GpuShare.from_dict(item)
            totals[share.uuid] = totals.get(share.uuid, 0) + _used_units(share.share)
    return {uuid: from_units(units) for uuid, units in totals.items()}


def _check_quantum(quantum: float) -> int:
    units = to_units(quantum, "gpu_quantum")
    if not 0 < units <= UNITS:
        raise RequestError("gpu_quantum", f"{quantum!r} must be more than 0 and at most 1 (such as 0.05 or 0.25)")
    return units


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"


# ---------------------------------------------------------------------------
# assignment


def assign(
    devices: list[GpuDevice],
    used: Mapping[str, float],
    request: float,
    policy: Policy = "pack",
    quantum: float = 0.05,
    shareable: set[str] | None = None,
) -> list[GpuShare]:
    """Choose the device share(s) for a GPU request (see module doc).

    ``used`` maps device uuid → share already granted (uuids of devices not in
    ``devices`` are ignored). ``shareable`` lists the uuids that may take
    fractions; ``None`` means every device that is not in MIG mode.
    """
    if policy not in POLICIES:
        raise RequestError("gpu_policy", f"{policy!r} is not a placement policy; use 'pack' or 'spread'")
    quantum_units = _check_quantum(quantum)
    if isinstance(request, bool) or not isinstance(request, (int, float, Decimal, str)):
        raise RequestError("gpu", f"{request!r} is not a number of GPUs")
    if isinstance(request, float) and not math.isfinite(request):
        raise RequestError("gpu", f"{request!r} is not a number of GPUs")
    want = to_units(request)
    if want < 0:
        raise RequestError("gpu", f"{request!r} is negative; ask for 0, a fraction such as 0.25, or a whole number")
    if want == 0:
        return []
    if want > UNITS and want % UNITS:
        raise RequestError(
            "gpu", f"{request!r} is more than one GPU but not a whole number; ask for 1, 2, … or a fraction below 1"
        )
    if not devices:
        raise GpuCapacityError(
            f"asked for {format_share(want)} GPU but there is no GPU on this host; ask for no GPU (gpu: 0)",
            never_fits=True,
        )
    if want < UNITS:
        return [_assign_fraction(devices, used, want, policy, quantum_units, shareable)]
    return _assign_whole(devices, used, want // UNITS, policy, shareable)


def is_shareable(device: GpuDevice, shareable: set[str] | None) -> bool:
    """Whether fractions of ``device`` may be granted: the admin's list, else every non-MIG device."""
    if shareable is None:
        return not device.mig_mode
    return device.uuid in shareable


def takes_whole_grants(device: GpuDevice) -> bool:
    """Whether ``device`` may be granted whole: not a MIG-enabled parent (its work runs only in its instances)."""
    return not device.mig_mode


def _assign_fraction(
    devices: list[GpuDevice],
    used: Mapping[str, float],
    want: int,
    policy: Policy,
    quantum_units: int,
    shareable: set[str] | None,
) -> GpuShare:
    asked = format_share(want)
    if want % quantum_units:
        lower = want - want % quantum_units
        upper = lower + quantum_units
        options = [format_share(u) for u in (lower, upper) if 0 < u <= UNITS]
        raise RequestError(
            "gpu",
            f"{asked} is not a multiple of the {format_share(quantum_units)} quantum; ask for {' or '.join(options)}",
        )
    candidates = [d for d in devices if is_shareable(d, shareable)]
    if not candidates:
        raise GpuCapacityError(
            f"asked for {asked} GPU but no GPU on this host takes fractions (its {_plural(len(devices), 'device')} "
            "are handed out whole only); ask for a whole GPU (gpu: 1)",
            never_fits=True,
        )
    free = {d.uuid: max(0, UNITS - _used_units(used.get(d.uuid, 0.0))) for d in candidates}
    fitting = [d for d in candidates if free[d.uuid] >= want]
    if not fitting:
        most = max(free.values())
        wait = "wait until other kernels on the GPUs stop"
        todo = (
            f"ask for {format_share(most - most % quantum_units)} or less, or {wait}" if most >= quantum_units else wait
        )
        raise GpuCapacityError(f"asked for {asked} GPU but the most free on any device is {format_share(most)}; {todo}")
    if policy == "pack":
        chosen = min(fitting, key=lambda d: (free[d.uuid], d.node or "", d.index))
    else:
        chosen = min(fitting, key=lambda d: (-free[d.uuid], d.node or "", d.index))
    return GpuShare(uuid=chosen.uuid, share=from_units(want), node=chosen.node)


def _assign_whole(
    devices: list[GpuDevice],
    used: Mapping[str, float],
    count: int,
    policy: Policy,
    shareable: set[str] | None,
) -> list[GpuShare]:
    what = f"{count} whole GPU{'s' if count != 1 else ''}"
    eligible = [d for d in devices if takes_whole_grants(d)]
    if not eligible:
        raise GpuCapacityError(
            f"asked for {what} but every GPU on this host has MIG enabled, and a MIG-enabled GPU runs work only "
            "in its MIG instances; ask the admin to declare the instances (MIG-… UUIDs) in c.GpuManager.devices",
            never_fits=True,
        )
    by_node: dict[str | None, list[GpuDevice]] = {}
    for d in eligible:
        by_node.setdefault(d.node, []).append(d)
    largest = max(len(group) for group in by_node.values())
    if count > largest:
        where = "this host has only" if len(by_node) == 1 else "no node has more than"
        raise GpuCapacityError(f"asked for {what} but {where} {largest}; ask for {largest} or fewer", never_fits=True)
    free_by_node = {
        node: [d for d in group if _used_units(used.get(d.uuid, 0.0)) == 0] for node, group in by_node.items()
    }
    fitting = {node: group for node, group in free_by_node.items() if len(group) >= count}
    if not fitting:
        most = max(len(group) for group in free_by_node.values())
        free_words = "none is" if most == 0 else ("only 1 is" if most == 1 else f"only {most} are")
        where = "" if len(by_node) == 1 else " on any one node"
        raise GpuCapacityError(
            f"asked for {what} but {free_words} entirely free{where} (the others are used whole or in part); "
            "wait until other kernels on the GPUs stop, or ask for fewer"
        )
    # pack: the node with the fewest free whole devices that still fits; spread: the most.
    sign = 1 if policy == "pack" else -1
    node = min(fitting, key=lambda n: (sign * len(fitting[n]), n or ""))
    chosen = sorted(fitting[node], key=lambda d: (is_shareable(d, shareable), d.index))[:count]
    return [GpuShare(uuid=d.uuid, share=1.0, node=d.node) for d in sorted(chosen, key=lambda d: d.index)]


def make_gpu_assigner(
    devices: list[GpuDevice],
    policy: Policy = "pack",
    quantum: float = 0.05,
    shareable: set[str] | None = None,
) -> Callable[[Mapping[str, float], Any], list[dict]]:
    """A callable ``(used, request) -> [{"uuid", "share"}, …]`` for admission.

    ``request`` is a :class:`~jupyter_berth.resources.Resources` (its ``gpu``
    field is read) or a plain number. Config is validated here, once, so a bad
    policy or quantum stops start-up rather than the first GPU request.
    """
    if policy not in POLICIES:
        raise RequestError("gpu_policy", f"{policy!r} is not a placement policy; use 'pack' or 'spread'")
    _check_quantum(quantum)
    known = {d.uuid for d in devices}
    if shareable is not None:
        unknown = sorted(set(shareable) - known)
        if unknown:
            raise RequestError(
                "gpu_shareable", f"{unknown[0]!r} is not a known device; known: {', '.join(sorted(known)) or 'none'}"
            )
        shareable = set(shareable)
    devices = list(devices)

    def gpu_assigner(used: Mapping[str, float], request: Any) -> list[dict]:
        gpu = getattr(request, "gpu", request)
        return [s.to_dict() for s in assign(devices, used, gpu, policy, quantum, shareable)]

    return gpu_assigner

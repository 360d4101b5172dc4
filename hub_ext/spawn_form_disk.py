"""The spawn form's disk field: offered where this hub's engine holds servers to a disk limit.

How the limit holds is the engine's (``GET berth/api/info`` → ``disk``, :meth:`BerthService.engine_info`):
``enforced`` (a write over it fails), ``measured`` (checked at sampling rounds; over it, the server is
warned, then stopped after a grace period: :mod:`jupyter_berth.disk_enforcement`) or ``none`` (Swarm
tasks: no field, since nothing would hold it). The field is in GiB, as the memory field; its bounds are
the policy's ``max_disk`` and what is left of ``total_disk``, the same as the sidebar's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from jupyter_berth.policies import EffectivePolicy
from jupyter_berth.resources import MIN_DISK, format_bytes
from jupyter_berth.runtime.disk_mode import ENFORCED, MEASURED

#: The field's step and least value, in GiB: the least disk size a server may ask for.
STEP = f"{MIN_DISK / 2**30:g}"


def _duration(seconds: float) -> str:
    return f"{seconds:g} s" if seconds < 90 else f"{seconds / 60:.3g} min"


def how_it_holds(disk: Mapping[str, Any]) -> str:
    """In words, how a server is held to its disk limit on this hub."""
    if disk.get("mode") == ENFORCED:
        return "held by the engine: a write over it fails"
    interval, grace = disk.get("interval_s"), disk.get("grace_s") or 0
    if not interval:
        return "not checked on this hub (usage sampling is off)"
    then = f"stopped {_duration(grace)} later" if grace else "then stopped"
    return f"checked every {_duration(interval)}; over it, your server is warned, {then}"


def disk_number(disk: Mapping[str, Any] | None, policy: EffectivePolicy, left, default: int) -> dict | None:
    """The form's disk field (as ``form_view``'s numbers), or ``None`` where no disk limit holds."""
    if not disk or disk.get("mode") not in (ENFORCED, MEASURED):
        return None
    most = policy.max_disk
    bound = "no limit" if math.isinf(most) else f"at most {format_bytes(most)}"
    hint = f"Disk your server may write (besides your home and folders) in GiB: {bound}"
    if left is not None:
        hint += f"; {format_bytes(left)} left of your total"
    value = min(default, most) if not math.isinf(most) else default
    return {
        "name": "disk",
        "label": "Disk (GiB)",
        "value": f"{value / 2**30:g}",
        "hint": f"{hint}. {how_it_holds(disk).capitalize()}.",
        "step": STEP,
        "min": STEP,
        "max": None if math.isinf(most) else f"{most / 2**30:g}",
    }


__all__ = ["disk_number", "how_it_holds"]

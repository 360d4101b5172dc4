"""Idle by utilization: a kernel that holds CPU or a GPU share and computes (almost) nothing.

Beside the message-based ``idle_timeout`` (no message for N seconds), a policy may set::

    "idle_cpu": {"below": 5, "for": "30m"}   # average CPU use below 5 % of the allotted cores for 30 min
    "idle_gpu": {"below": 1, "for": "1h"}    # its GPU device(s) below 1 % utilization for an hour

``below`` is a percentage (0–100); ``for`` is seconds or a duration (``90s``, ``30m``,
``2h``). CPU use is read from the usage samples in the ledger (cgroup CPU time; the
average over the last ``for`` seconds, so it survives a service restart). GPU
utilization is NVML's per-device reading, taken each sampling round (a declared
device carries a fixed ``utilization`` reading, for tests and devices NVML cannot
read; none → the rule never fires); a kernel is idle once every reading for ``for``
seconds was below. A shared device's reading is the device's, all its kernels'.

When groups set a rule, the more generous wins (the lower ``below`` and the longer
``for``); a user's own replaces the groups'. A culled kernel ends with the reason
``culled``, as with ``idle_timeout``; its usage record's message names the rule
(``idle_cpu: …``) and what was measured, and the user reads the same words.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import RequestError

_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(s|sec|m|min|h|d)?\s*$")
_UNIT = {None: 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}


def parse_duration(value: Any, where: str) -> float:
    if isinstance(value, bool):
        raise RequestError(where, f"{value!r} is not a duration; expected seconds or 90s, 30m, 2h")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        m = _DURATION.match(str(value))
        if not m:
            raise RequestError(where, f"{value!r} is not a duration; expected seconds or 90s, 30m, 2h")
        seconds = float(m.group(1)) * _UNIT[m.group(2)]
    if seconds <= 0:
        raise RequestError(where, f"{value!r} must be longer than 0")
    return seconds


def fmt_duration(seconds: float) -> str:
    if seconds % 3600 == 0:
        return f"{seconds / 3600:g} h"
    if seconds % 60 == 0:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"


@dataclass(frozen=True)
class IdleRule:
    """Utilization below ``below`` percent for ``period`` seconds."""

    below: float
    period: float

    @classmethod
    def parse(cls, data: Mapping[str, Any] | None, where: str) -> IdleRule | None:
        if data is None:
            return None
        if not isinstance(data, Mapping) or set(data) - {"below", "for"} or not {"below", "for"} <= set(data):
            raise RequestError(where, "expected {'below': PERCENT, 'for': DURATION} such as {'below': 5, 'for': '30m'}")
        below = data["below"]
        if isinstance(below, bool) or not isinstance(below, (int, float)) or not 0 < below <= 100:
            raise RequestError(f"{where}.below", f"{below!r} is not a percentage; expected more than 0, up to 100")
        return cls(float(below), parse_duration(data["for"], f"{where}.for"))

    def merged(self, other: IdleRule) -> IdleRule:
        """The more generous of two groups' rules."""
        return IdleRule(min(self.below, other.below), max(self.period, other.period))

    def to_json(self) -> dict:
        return {"below": self.below, "for": self.period}

    def describe(self, name: str) -> str:
        return f"the {name} rule: below {self.below:g} % for {fmt_duration(self.period)}"

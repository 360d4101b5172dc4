"""Budgets per period: CPU-hours, memory GiB-hours and GPU share-hours.

A policy's ``budget`` gives each member (or one user) an amount per period; a
group policy's ``group_budget`` gives the group as a whole one amount, shared by
all its members::

    group_policies = {"class-a": {
        "budget": {"cpu_hours": 20, "gpu_hours": 2, "period": {"name": "autumn-2026",
                                                              "start": "2026-09-01", "end": "2027-01-01"}},
        "group_budget": {"cpu_hours": 800, "period": "month"},
    }}

What is charged is what a kernel or server *holds* (its allotted CPU, memory in
GiB, GPU share) times the hours it held it, inside the period: the same
"allotted" figures as the usage report, so a budget reads like a bill.

``period`` is ``"month"`` (calendar months, UTC; the default), or a term
``{"name", "start", "end"}`` with ISO dates (UTC midnight; ``end`` exclusive).
Outside its term a budget has nothing to give.

``min_run`` (seconds, default 600) is the shortest run a start must be able to
pay for: admission refuses a start when what is left cannot cover the request
for that long. ``warn_before`` (seconds, default 600): a running kernel whose
owner's holdings would use up what is left within that time is warned once;
when nothing is left, the service stops it (end reason ``budget``).

When groups set ``budget``, the larger amount of each kind wins and the period
of the first of those groups by name applies; a user's own ``budget`` replaces
the groups'. ``group_budget`` is never merged: each group's applies to its
members together (group policies only).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from datetime import date, datetime, timezone
from typing import Any

from .errors import RequestError

#: The amounts a budget may set, with the words and the unit a message uses.
AMOUNTS = {
    "cpu_hours": ("CPU-hours", "cpu"),
    "mem_gib_hours": ("memory GiB-hours", "mem"),
    "gpu_hours": ("GPU share-hours", "gpu"),
}
DEFAULT_MIN_RUN = 600
DEFAULT_WARN_BEFORE = 600
GiB = 1024**3


@dataclass(frozen=True)
class Period:
    """``month`` (calendar, UTC) or a named term ``[start, end)``."""

    kind: str = "month"  #: "month" or "term"
    name: str | None = None
    start: date | None = None
    end: date | None = None

    @classmethod
    def parse(cls, value: Any, where: str) -> Period:
        if value in (None, "month"):
            return cls()
        if not isinstance(value, Mapping):
            raise RequestError(where, f"{value!r} is not a period; expected 'month' or {{'name', 'start', 'end'}}")
        try:
            start = date.fromisoformat(str(value["start"]))
            end = date.fromisoformat(str(value["end"]))
        except (KeyError, ValueError) as e:
            raise RequestError(where, f"a term needs 'start' and 'end' as ISO dates such as 2026-09-01 ({e})") from None
        if end <= start:
            raise RequestError(where, f"the term ends ({end}) before it starts ({start})")
        return cls("term", str(value.get("name") or f"{start}..{end}"), start, end)

    def window(self, now: datetime) -> tuple[datetime, datetime, str]:
        """``(start, end, label)`` of the period that holds ``now`` (a term: its dates, even when ``now`` is outside)."""
        if self.kind == "term":
            start = datetime(self.start.year, self.start.month, self.start.day, tzinfo=timezone.utc)
            end = datetime(self.end.year, self.end.month, self.end.day, tzinfo=timezone.utc)
            return start, end, self.name
        start = datetime(now.year, now.month, 1, tzinfo=timezone.utc)
        end = datetime(now.year + (now.month == 12), now.month % 12 + 1, 1, tzinfo=timezone.utc)
        return start, end, f"{now.year}-{now.month:02d}"

    def to_json(self) -> Any:
        if self.kind == "month":
            return "month"
        return {"name": self.name, "start": self.start.isoformat(), "end": self.end.isoformat()}


@dataclass(frozen=True)
class Budget:
    """Amounts per period; ``None`` = that kind is not budgeted."""

    cpu_hours: float | None = None
    mem_gib_hours: float | None = None
    gpu_hours: float | None = None
    period: Period = Period()
    min_run: float = DEFAULT_MIN_RUN  #: seconds a start must be able to pay for
    warn_before: float = DEFAULT_WARN_BEFORE  #: seconds before running out that a running kernel is warned

    @classmethod
    def parse(cls, data: Mapping[str, Any] | None, where: str) -> Budget | None:
        if data is None:
            return None
        if not isinstance(data, Mapping):
            raise RequestError(where, "expected a mapping such as {'cpu_hours': 20, 'period': 'month'}")
        known = [f.name for f in fields(cls)]
        values: dict[str, Any] = {}
        for name, value in data.items():
            if name not in known:
                raise RequestError(f"{where}.{name}", f"unknown budget field; known: {', '.join(known)}")
            if name == "period":
                values[name] = Period.parse(value, f"{where}.period")
                continue
            if value is None or value == "unlimited":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or math.isnan(value):
                raise RequestError(f"{where}.{name}", f"{value!r} must be a number ≥ 0")
            values[name] = float(value)
        return cls(**values)

    def amounts(self) -> dict[str, float]:
        """The budgeted kinds: ``{"cpu_hours": 20.0, ...}``."""
        return {k: getattr(self, k) for k in AMOUNTS if getattr(self, k) is not None}

    def merged(self, other: Budget) -> Budget:
        """The more generous of two group budgets, amount by amount (this one's period)."""
        more = {
            k: max(v for v in (getattr(self, k), getattr(other, k)) if v is not None)
            for k in AMOUNTS
            if getattr(self, k) is not None or getattr(other, k) is not None
        }
        return replace(self, **more, min_run=min(self.min_run, other.min_run))

    def to_json(self) -> dict:
        out: dict[str, Any] = dict(self.amounts())
        out["period"] = self.period.to_json()
        out["min_run"] = self.min_run
        out["warn_before"] = self.warn_before
        return out


def charge_rate(cpu: float, mem: int, gpu: float) -> dict[str, float]:
    """What holding ``cpu``, ``mem`` bytes and ``gpu`` share costs per hour, per budgeted kind."""
    return {"cpu_hours": cpu, "mem_gib_hours": mem / GiB, "gpu_hours": gpu}


def fmt_amount(kind: str, value: float, *, down: bool = False) -> str:
    """``"1.5 CPU-hours"``; ``down`` rounds down (what is left never reads as more than it is)."""
    shown = math.floor(value * 100 + 1e-6) / 100 if down else round(value, 2)
    return f"{shown:g} {AMOUNTS[kind][0]}"


def fmt_duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:g} h"
    return f"{seconds / 60:g} min"

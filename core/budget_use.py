"""How much of each budget is used, and the admission check, read from the ledger.

Use in a period is summed from the released allocations' ``usage_records`` and the
live ``allocations`` (held until now), each clipped to the period: one truth for
usage, nothing to keep in step. Admission calls :func:`check` inside its write
transaction, after its locks (the owner's, and the advisory lock of each group
with a ``group_budget``: see :mod:`jupyter_berth.group_admission`), so two starts
cannot both spend the last of a budget.
"""

from __future__ import annotations

import math
import time
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone

from sqlalchemy import select
from sqlalchemy.orm import Session

from .budgets import AMOUNTS, Budget, charge_rate, fmt_amount, fmt_duration
from .errors import PolicyError
from .ledger.models import LIVE_STATES, AllocationRow, UsageRecordRow
from .live_sums import live_sums
from .resources import Resources


@dataclass
class BudgetStatus:
    """One budget (a user's or a group's) in its current period."""

    scope: str  #: "user" or "group"
    name: str  #: the user or group
    source: str  #: who set it ("group class-a", "user ada", "default")
    period: str  #: label: "2026-12" or the term's name
    start: datetime
    end: datetime  #: when it resets (a month) or ends (a term)
    budget: Budget
    used: dict[str, float] = field(default_factory=dict)
    rate: dict[str, float] = field(default_factory=dict)  #: what the live allocations cost per hour now

    def remaining(self, now: datetime) -> dict[str, float]:
        """What is left of each budgeted amount (nothing outside a term's dates)."""
        active = self.start <= now < self.end
        return {k: max(v - self.used.get(k, 0.0), 0.0) if active else 0.0 for k, v in self.budget.amounts().items()}

    def rule(self, kind: str) -> str:
        return f"{self.scope}:{self.name}:{kind}"

    def whose(self) -> str:
        return "your" if self.scope == "user" else f"group {self.name}'s"

    def resets(self, now: datetime) -> str:
        when = self.end.strftime("%Y-%m-%d %H:%M UTC")
        if self.budget.period.kind == "month":
            return f"it resets on {when}"
        if now < self.start:
            return f"the term {self.period} starts on {self.start.strftime('%Y-%m-%d')}"
        return f"the term {self.period} ends on {when}; ask an admin for more"

    def to_json(self, now: datetime) -> dict:
        return {
            "scope": self.scope,
            "name": self.name,
            "set_by": self.source,
            "period": self.period,
            "start": self.start.isoformat(),
            "resets_at": self.end.isoformat(),
            "limits": self.budget.amounts(),
            "used": {k: round(self.used.get(k, 0.0), 4) for k in self.budget.amounts()},
            "remaining": {k: math.floor(v * 10000) / 10000 for k, v in self.remaining(now).items()},
            "rate_per_hour": {k: round(self.rate.get(k, 0.0), 4) for k in self.budget.amounts()},
        }


def _overlap_hours(start: datetime, end: datetime, w0: datetime, w1: datetime) -> float:
    return max((min(end, w1) - max(start, w0)).total_seconds(), 0.0) / 3600


#: How long a cached sum of released records is extended incrementally before it is recounted in full.
#: Incremental reads take the records with a larger id; on PostgreSQL ids are drawn before commit, so a
#: record may become visible after a larger one: the recount bounds how long it can be missed.
RECOUNT_SECONDS = 60.0
_released_cache: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _released_use(s: Session, w0: datetime, w1: datetime, owner: str | None, group: str | None) -> dict[str, float]:
    """What released allocations (usage records) of ``owner`` or ``group`` held in ``[w0, w1)``.

    Cached per database, scope and window, and extended with the records added since (by id, a
    primary-key range): admission calls this under its lock for every start, and a term is long.
    """
    cache = _released_cache.setdefault(s.get_bind(), {})
    key = (owner, group, w0, w1)
    entry = cache.get(key)
    if entry is None or time.monotonic() - entry["at"] > RECOUNT_SECONDS:
        entry = {"at": time.monotonic(), "max_id": 0, "used": dict.fromkeys(AMOUNTS, 0.0)}
        rec = _RECORDS.where(UsageRecordRow.ended_at > w0, UsageRecordRow.started_at < w1)
        if owner is not None:
            rec = rec.where(UsageRecordRow.owner == owner)
    else:
        rec = _RECORDS.where(UsageRecordRow.id > entry["max_id"])
    used = dict(entry["used"])
    max_id = entry["max_id"]
    for rid, rowner, cpu, mem, gpu, started, ended, groups in s.execute(rec):
        max_id = max(max_id, rid)
        if (owner is not None and rowner != owner) or (group is not None and group not in (groups or ())):
            continue
        hours = _overlap_hours(started, ended, w0, w1)
        if hours <= 0:
            continue
        for k, v in charge_rate(cpu, mem, gpu).items():
            used[k] += v * hours
    cache[key] = {"at": entry["at"], "max_id": max_id, "used": used}
    return dict(used)  # the caller adds the live allocations to its copy


_RECORDS = select(
    UsageRecordRow.id, UsageRecordRow.owner, UsageRecordRow.cpu, UsageRecordRow.mem, UsageRecordRow.gpu,
    UsageRecordRow.started_at, UsageRecordRow.ended_at, UsageRecordRow.groups,
)  # fmt: skip


def use_in_window(
    s: Session, w0: datetime, w1: datetime, now: datetime, *, owner: str | None = None, group: str | None = None
) -> tuple[dict[str, float], dict[str, float]]:
    """``(used, rate)``: what ``owner``'s (or ``group``'s members') allocations held in ``[w0, w1)`` up to
    ``now``, per budgeted kind, and what their live allocations cost per hour now."""
    used = _released_use(s, w0, w1, owner, group)
    live = live_sums(s, owner=owner, group=group, now=min(now, w1), w0=w0)
    for k, v in charge_rate(live.cpu_s, live.mem_s, live.gpu_s).items():
        used[k] += v / 3600
    return used, charge_rate(live.cpu, live.mem, live.gpu)


def statuses(s: Session, policy, now: datetime | None = None) -> list[BudgetStatus]:
    """Every budget that applies to ``policy``'s user: their own, then each group's, with use so far."""
    now = now or datetime.now(timezone.utc)
    out = []
    found: list[tuple[str, str, str, Budget]] = []
    if policy.budget is not None and policy.budget.amounts():
        found.append(("user", policy.user, (policy.sources or {}).get("budget", "policy"), policy.budget))
    for g, b in sorted(policy.group_budgets.items()):
        if b.amounts():
            found.append(("group", g, f"group {g}", b))
    for scope, name, source, budget in found:
        w0, w1, label = budget.period.window(now)
        used, rate = use_in_window(
            s, w0, w1, now, owner=name if scope == "user" else None, group=name if scope == "group" else None
        )
        out.append(BudgetStatus(scope, name, source, label, w0, w1, budget, used, rate))
    return out


def budget_groups(policy) -> Iterable[str]:
    """The groups whose advisory lock a reservation takes for budgets."""
    return policy.group_budgets.keys()


def check(s: Session, policy, request: Resources, kind: str, now: datetime | None = None) -> None:
    """Refuse (:class:`PolicyError`) a start that what is left cannot pay for during ``min_run``."""
    if policy.budget is None and not policy.group_budgets:
        return
    now = now or datetime.now(timezone.utc)
    cost = charge_rate(request.cpu, request.mem, request.gpu)
    for st in statuses(s, policy, now):
        left = st.remaining(now)
        for k, limit in st.budget.amounts().items():
            need = cost[k] * st.budget.min_run / 3600
            if need <= 0 or left[k] + 1e-9 >= need:
                continue
            what = "CPU" if k == "cpu_hours" else ("memory" if k == "mem_gib_hours" else "GPU share")
            raise PolicyError(
                f"{k}: {st.whose()} budget of {fmt_amount(k, limit)} for {st.period} has {fmt_amount(k, left[k], down=True)} "
                f"left (set by {st.source}); this {kind}'s {what} needs {fmt_amount(k, need)} for a minimum run of "
                f"{fmt_duration(st.budget.min_run)}; {st.resets(now)}",
                limit=f"budget.{k}" if st.scope == "user" else f"group_budget.{k}",
            )


def known_members(s: Session, since: datetime) -> dict[str, tuple[str, ...]]:
    """``{user: groups}`` of everyone with a live allocation or a usage record ending after ``since``
    (their groups as last recorded): whose budgets ``berth budgets`` and the metrics list."""
    found: dict[str, tuple[datetime, tuple[str, ...]]] = {}
    recs = select(UsageRecordRow.owner, UsageRecordRow.groups, UsageRecordRow.ended_at).where(
        UsageRecordRow.ended_at > since
    )
    live = select(AllocationRow.owner, AllocationRow.groups, AllocationRow.created_at).where(
        AllocationRow.state.in_(LIVE_STATES)
    )
    for owner, groups, at in [*s.execute(recs), *s.execute(live)]:
        if owner not in found or at >= found[owner][0]:
            found[owner] = (at, tuple(groups or ()))
    return {owner: groups for owner, (_, groups) in sorted(found.items())}

"""Budgets on running kernels: warn when one is about to run out, stop kernels when it has.

:func:`enforce` runs after every usage-sampling round (the service's sampler loop).
For each owner with live kernels on this service's hosts and a budget (their own
or a group's ``group_budget``):

- when what is left of an amount is used up, each of the owner's kernels that
  draws on it is stopped with end reason ``budget``; its usage record and a
  ``stopped`` notice say which rule (``user:ada:cpu_hours``), what the budget was
  and when it resets;
- when the owner's live holdings would use it up within ``warn_before``, each
  such kernel gets one ``warned`` notice per rule and period (the sidebar and
  ``GET berth/api/budget`` show it).

Notices are rows of ``budget_notices`` (migration 0006); a unique key makes
"once" hold across restarts and concurrent services.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta, timezone

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from . import budget_use
from .budgets import charge_rate, fmt_amount, fmt_duration
from .errors import NotFoundError
from .ledger.models_budgets import BudgetNoticeRow

#: End reason of a kernel stopped because a budget ran out.
BUDGET_REASON = "budget"


def record_notice(ledger, allocation_id: str, owner: str, rule: str, period: str, action: str, message: str) -> bool:
    """Store a notice once; False when this allocation already had it (same rule, period and action)."""
    try:
        with ledger.transaction() as s:
            s.add(
                BudgetNoticeRow(
                    allocation_id=allocation_id, owner=owner, rule=rule, period=period, action=action, message=message
                )
            )
        return True
    except IntegrityError:
        return False


def notices(ledger, owner: str, since: datetime | None = None) -> list[dict]:
    """``owner``'s notices since ``since`` (default: the last 31 days), newest first."""
    since = since or datetime.now(timezone.utc) - timedelta(days=31)
    with ledger.reading() as s:
        rows = s.scalars(
            select(BudgetNoticeRow)
            .where(BudgetNoticeRow.owner == owner, BudgetNoticeRow.at >= since)
            .order_by(BudgetNoticeRow.at.desc(), BudgetNoticeRow.id.desc())
        )
        return [
            {
                "allocation_id": r.allocation_id,
                "rule": r.rule,
                "period": r.period,
                "action": r.action,
                "message": r.message,
                "at": r.at.isoformat(),
            }
            for r in rows
        ]


def _statuses(ledger, policy, now):
    with ledger.reading() as s:
        return budget_use.statuses(s, policy, now)


async def enforce(service, now: datetime | None = None) -> list[tuple[str, str, str]]:
    """Warn and stop as the module doc says; returns ``[(action, kernel id, rule), ...]`` for this round."""
    now = now or datetime.now(timezone.utc)
    kernels = [a for a in await service._live_here() if a.kind == "kernel"]
    by_owner = defaultdict(list)
    for a in kernels:
        by_owner[(a.owner, tuple(a.groups or ()))].append(a)
    done: list[tuple[str, str, str]] = []
    for (owner, groups), allocs in by_owner.items():
        policy = await service.policy_for(owner, groups)
        if policy.budget is None and not policy.group_budgets:
            continue
        stopped: set[str] = set()
        for st in await service._db(_statuses, service.ledger, policy, now):
            left = st.remaining(now)
            for kind, limit in st.budget.amounts().items():
                drawing = [a for a in allocs if a.id not in stopped and charge_rate(a.cpu, a.mem, a.gpu)[kind] > 0]
                if not drawing:
                    continue
                rule = st.rule(kind)
                if left[kind] <= 1e-9:
                    message = (
                        f"{kind}: {st.whose()} budget of {fmt_amount(kind, limit)} for {st.period} is used up "
                        f"(set by {st.source}), so the kernel was stopped; {st.resets(now)}"
                    )
                    for a in drawing:
                        await service._db(
                            record_notice, service.ledger, a.id, owner, rule, st.period, "stopped", message
                        )
                        try:
                            await service.stop_kernel(owner, a.subject, BUDGET_REASON, message=message)
                        except NotFoundError:
                            continue  # it ended meanwhile
                        service.log.warning("Stopped kernel %s of %s: %s", a.subject, owner, message)
                        stopped.add(a.id)
                        done.append(("stopped", a.subject, rule))
                    continue
                rate = st.rate.get(kind, 0.0)
                seconds_left = left[kind] / rate * 3600 if rate > 0 else float("inf")
                if seconds_left > st.budget.warn_before:
                    continue
                message = (
                    f"{kind}: {st.whose()} budget for {st.period} has {fmt_amount(kind, left[kind], down=True)} left "
                    f"(set by {st.source}); at what your kernels hold now it runs out in about "
                    f"{fmt_duration(round(seconds_left / 60) * 60 or 60)}, then they are stopped; {st.resets(now)}"
                )
                for a in drawing:
                    if await service._db(
                        record_notice, service.ledger, a.id, owner, rule, st.period, "warned", message
                    ):
                        service.log.info("Warned %s about kernel %s: %s", owner, a.subject, message)
                        done.append(("warned", a.subject, rule))
    return done


async def my_budget(service, user: str, groups=()) -> dict:
    """What a user reads: each budget that applies to them with its use and what is left, and their notices."""
    now = datetime.now(timezone.utc)
    policy = await service.policy_for(user, groups)
    sts = await service._db(_statuses, service.ledger, policy, now)
    return {
        "user": user,
        "budgets": [st.to_json(now) for st in sts],
        "notices": await service._db(notices, service.ledger, user),
    }

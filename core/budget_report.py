"""Budgets against use for everyone: the rows of ``berth budgets`` and the Prometheus gauges.

Whose budgets: every user with a live allocation or a usage record in the last
year (with the groups they last had), plus every user with a user policy; each
group's shared ``group_budget`` appears once. Async: it resolves policies through
the service (config and stored policies alike).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily

from . import budget_use

#: How far back ``berth budgets`` looks for users (a term is at most this long).
LOOKBACK = timedelta(days=366)


def _members(ledger, since):
    with ledger.reading() as s:
        return budget_use.known_members(s, since)


def _statuses(ledger, policy, now):
    with ledger.reading() as s:
        return budget_use.statuses(s, policy, now)


async def all_budgets(
    service, now: datetime | None = None, *, user: str | None = None, group: str | None = None
) -> list[dict]:
    """Every budget in its current period with use and what is left (``BudgetStatus.to_json``), one per
    user or group, sorted by scope and name; ``user``/``group`` keep only that one."""
    now = now or datetime.now(timezone.utc)
    stored_default, stored_groups, stored_users = await service._db(service.ledger.get_policies)
    specs = [service.default_policy, stored_default or {}, *service.group_policies.values(), *stored_groups.values()]
    specs += [*service.user_policies.values(), *stored_users.values()]
    if not any(spec.get("budget") or spec.get("group_budget") for spec in specs):
        return []  # nothing to report: skip the per-user work (a scrape stays cheap)
    members = await service._db(_members, service.ledger, now - LOOKBACK)
    for name in [*service.user_policies, *stored_users]:
        members.setdefault(name, ())
    seen: dict[tuple[str, str], dict] = {}
    for name, groups in members.items():
        policy = await service.policy_for(name, groups)
        if policy.budget is None and not policy.group_budgets:
            continue
        for st in await service._db(_statuses, service.ledger, policy, now):
            seen.setdefault((st.scope, st.name), st.to_json(now))
    rows = [seen[k] for k in sorted(seen)]
    if user is not None:
        rows = [r for r in rows if r["scope"] == "user" and r["name"] == user]
    if group is not None:
        rows = [r for r in rows if r["scope"] == "group" and r["name"] == group]
    return rows


def exposition(rows: list[dict]) -> str:
    """``berth_budget_limit``, ``berth_budget_used`` and ``berth_budget_remaining`` gauges per ``scope``,
    ``name``, ``kind`` (``cpu_hours``, ``mem_gib_hours``, ``gpu_hours``) and ``period``."""
    families = {
        key: GaugeMetricFamily(f"berth_budget_{key}", help_, labels=["scope", "name", "kind", "period"])
        for key, help_ in (
            ("limit", "A budget's amount for its period (hours of CPU cores, memory GiB or GPU share)."),
            ("used", "What was held against the budget so far in its period."),
            ("remaining", "What is left of the budget in its period."),
        )
    }
    for r in rows:
        for kind, limit in r["limits"].items():
            labels = [r["scope"], r["name"], kind, r["period"]]
            families["limit"].add_metric(labels, limit)
            families["used"].add_metric(labels, r["used"][kind])
            families["remaining"].add_metric(labels, r["remaining"][kind])

    class _Collector:
        def collect(self):
            yield from families.values()

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector())
    return generate_latest(registry).decode()

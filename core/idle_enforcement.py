"""Culling by utilization after each sampling round (the rules: :mod:`jupyter_berth.idle_rules`).

:func:`enforce` looks at every running kernel on this service's hosts whose
owner's policy sets ``idle_cpu`` or ``idle_gpu``:

- CPU: the average use between the newest usage sample and the newest one at
  least ``for`` seconds older (from the ledger), as a percentage of the allotted
  cores; a kernel younger than ``for``, or without samples that far back, is left;
- GPU: the utilization of the kernel's device(s) (the highest if several), read
  each round; the time since it went below is kept in the service's memory (a
  restart starts the count again: it may cull later, never wrongly).

A kernel found idle is stopped with the end reason ``culled``; the message in its
usage record (what the user reads) names the rule and what was measured.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from .errors import NotFoundError
from .gpu import inventory
from .idle_rules import fmt_duration
from .ledger.models import RUNNING, UsageSampleRow

CULLED = "culled"


def cpu_utilization(ledger, allocation_id: str, cpu: float, now: datetime, period: float) -> float | None:
    """Average CPU use in percent of ``cpu`` cores over at least the last ``period`` seconds, or None."""
    since = now - timedelta(seconds=period)

    def newest(s, before):
        stmt = (
            select(UsageSampleRow.at, UsageSampleRow.cpu_seconds)
            .where(UsageSampleRow.allocation_id == allocation_id, UsageSampleRow.at <= before)
            .order_by(UsageSampleRow.at.desc())
            .limit(1)
        )
        return s.execute(stmt).first()

    with ledger.reading() as s:
        last, first = newest(s, now), newest(s, since)
    if last is None or first is None or cpu <= 0:
        return None
    span = (last.at - first.at).total_seconds()
    if span < period:
        return None
    return max(last.cpu_seconds - first.cpu_seconds, 0.0) / (span * cpu) * 100


async def gpu_utilization(service, devices) -> float | None:
    """The highest utilization (percent) of ``devices`` (``[{"uuid", "share"}]``), or None when any is unknown."""
    uuids = [d["uuid"] for d in devices or ()]
    if not uuids:
        return None
    declared = {
        u: d
        for u, d in (service.gpus.gpu_inventory.by_uuid() if service.gpus.gpu_inventory else {}).items()
        if d.declared
    }
    readings = []
    measured = await inventory.device_metrics_async([u for u in uuids if u not in declared])
    for u in uuids:
        value = declared[u].declared_utilization if u in declared else measured.get(u, {}).get("utilization_percent")
        if value is None:
            return None
        readings.append(float(value))
    return max(readings)


async def enforce(service, now: datetime | None = None) -> list[tuple[str, str, str]]:
    """Cull idle kernels as the module doc says; returns ``[("culled", kernel id, rule), ...]``."""
    now = now or datetime.now(timezone.utc)
    below_since: dict[str, datetime] = service.__dict__.setdefault("_gpu_idle_since", {})
    running = [a for a in await service._live_here() if a.kind == "kernel" and a.state == RUNNING and a.container_id]
    for gone in set(below_since) - {a.id for a in running}:
        del below_since[gone]
    policies: dict = {}
    done: list[tuple[str, str, str]] = []
    for a in running:
        key = (a.owner, tuple(a.groups or ()))
        if key not in policies:
            policies[key] = await service.policy_for(*key)
        policy = policies[key]
        message = None
        rule = policy.idle_cpu
        if rule is not None:
            pct = await service._db(cpu_utilization, service.ledger, a.id, a.cpu, now, rule.period)
            if pct is not None and pct < rule.below:
                message = (
                    f"idle_cpu: the kernel used {pct:.1f} % of its {a.cpu:g} CPU over the last "
                    f"{fmt_duration(rule.period)} ({rule.describe('idle_cpu')}, set by "
                    f"{policy.sources.get('idle_cpu', 'policy')}), so it was stopped to free them; start a new one "
                    "when you need it"
                )
                name = "idle_cpu"
        rule = policy.idle_gpu
        if message is None and rule is not None and a.gpu > 0:
            pct = await gpu_utilization(service, a.gpu_devices)
            if pct is None or pct >= rule.below:
                below_since.pop(a.id, None)
            else:
                since = below_since.setdefault(a.id, now)
                if (now - since).total_seconds() >= rule.period:
                    message = (
                        f"idle_gpu: the kernel's GPU was {pct:g} % busy or less for {fmt_duration(rule.period)} "
                        f"({rule.describe('idle_gpu')}, set by {policy.sources.get('idle_gpu', 'policy')}), so it "
                        f"was stopped to free its {a.gpu:g} GPU share; start a new one when you need it"
                    )
                    name = "idle_gpu"
        if message is None:
            continue
        try:
            await service.stop_kernel(a.owner, a.subject, CULLED, message=message)
        except NotFoundError:
            continue
        below_since.pop(a.id, None)
        service.log.info("Culled kernel %s of %s: %s", a.subject, a.owner, message)
        done.append((CULLED, a.subject, name))
    return done

"""Reconciling the ledger (truth for admission) with the engine (truth for what runs).

On start, and whenever asked, the service compares its live allocations with the
containers that carry Berth labels:

* a container whose allocation is live in the ledger is **adopted** (marked
  running if it was only reserved);
* a live allocation whose container is gone (or exited) is **released**, so
  nothing leaks;
* a labelled container the ledger has no live record of is a **stray**: it is
  stopped and removed.

Containers are matched to allocations by their ``allocation`` label or by the
container id the ledger recorded: a warm-pool container adopted by a kernel keeps
its pool labels (labels cannot change on a running container), so only the ledger
knows which allocation it serves. An unadopted pool container belongs to the
running pool when ``pool_keeps(container)`` says so, and is a stray of an earlier
run otherwise.

:func:`plan` is pure so it can be tested without an engine; :func:`run` applies it
for a service.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from .runtime.labels import parse_labels

#: A reserved allocation younger than this may still be starting its container.
STARTING_GRACE = timedelta(seconds=120)


@dataclass
class ReconcilePlan:
    adopt: list[tuple[object, object]] = field(default_factory=list)  #: (allocation, container)
    release: list[tuple[object, str]] = field(default_factory=list)  #: (allocation, reason)
    stop: list[object] = field(default_factory=list)  #: containers

    def summary(self) -> str:
        return f"adopted {len(self.adopt)}, released {len(self.release)}, stopped {len(self.stop)} stray"


def _aware(dt: datetime | None) -> datetime | None:
    if dt is not None and dt.tzinfo is None:
        return dt.replace(tzinfo=timezone.utc)
    return dt


def plan(
    allocations: Iterable,
    containers: Iterable,
    now: datetime | None = None,
    pool_keeps: Callable[[object], bool] | None = None,
) -> ReconcilePlan:
    """Decide what to adopt, release and stop. ``allocations`` are live ledger rows.

    ``pool_keeps`` answers, for an unadopted warm-pool container, whether the running
    pool owns it (``None``: no pool runs, every unadopted pool container is a stray).
    """
    now = now or datetime.now(timezone.utc)
    allocations = list(allocations)
    by_container = {a.container_id: a.id for a in allocations if getattr(a, "container_id", None)}
    by_alloc: dict[str, object] = {}
    result = ReconcilePlan()
    for c in containers:
        labels = parse_labels(c.labels)
        alloc_id = labels.get("allocation") or by_container.get(c.id)
        if alloc_id:
            by_alloc[alloc_id] = c
        elif labels.get("kind") == "pool" and not (pool_keeps is not None and pool_keeps(c)):
            result.stop.append(c)
    live_ids = set()
    for a in allocations:
        live_ids.add(a.id)
        c = by_alloc.get(a.id)
        if c is not None and c.running:
            result.adopt.append((a, c))
        elif c is not None:
            reason = "oom" if getattr(c, "oom_killed", False) else "exited"
            result.release.append((a, reason))
            result.stop.append(c)
        elif a.state == "reserved" and now - _aware(a.created_at) < STARTING_GRACE:
            continue  # its container is probably being created right now
        else:
            result.release.append((a, "lost"))
    for alloc_id, c in by_alloc.items():
        if alloc_id not in live_ids:
            result.stop.append(c)
    return result


async def run(s) -> ReconcilePlan:
    """Plan against ``s``'s live allocations and labelled containers, then adopt, release and remove."""
    allocations = await s._live_here()
    containers = await s.runtime.list({"site": s.site_id})
    result = plan(allocations, containers, pool_keeps=s._pool.keeps if s._pool is not None else None)
    for alloc, container in result.adopt:
        if alloc.state != "running":
            await s._db(s.ledger.mark_running, alloc.id, container.id)
    for alloc, why in result.release:
        await s._finish(alloc, why, stop=True, now=True)
    for container in result.stop:
        s.log.warning("Removing stray Berth container %s (%s): no live allocation", container.name, container.id[:12])
        await s.runtime.remove(container.id)
    s.log.info("Reconciled with the engine: %s", result.summary())
    return result

"""Reconciling the ledger (truth for admission) with the engine (truth for what runs).

On start, and whenever asked, the service compares its live allocations with the
containers that carry Berth labels:

* a container whose allocation is live in the ledger is **adopted** (marked
  running if it was only reserved);
* a live allocation whose container is gone (or exited) is **released**, so
  nothing leaks;
* a labelled container the ledger has no live record of is a **stray**: it is
  stopped and removed (warm-pool containers are left to the pool).

:func:`plan` is pure so it can be tested without an engine; the service applies
the plan.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Iterable

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


def plan(allocations: Iterable, containers: Iterable, now: datetime | None = None) -> ReconcilePlan:
    """Decide what to adopt, release and stop. ``allocations`` are live ledger rows."""
    now = now or datetime.now(timezone.utc)
    by_alloc: dict[str, object] = {}
    result = ReconcilePlan()
    for c in containers:
        labels = parse_labels(c.labels)
        if labels.get("kind") == "pool":
            continue
        alloc_id = labels.get("allocation")
        if alloc_id:
            by_alloc[alloc_id] = c
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

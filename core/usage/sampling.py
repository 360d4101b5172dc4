"""Writing a round of usage samples to the ledger in one transaction.

The sampler (:meth:`UsageTracker.sample_all`) reads every running container's
cgroup counters, then hands the whole round to :func:`record_samples`: one
transaction updates each allocation's running figures (CPU seconds, memory, its
peak, when sampled) and inserts the sample rows in one ``executemany``. One
commit per round, rather than one per container, keeps the sampler's cost flat
as kernels are added (see ``docs/benchmarks.md``).
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import insert, select

from ..ledger.models import RELEASED, AllocationRow, UsageSampleRow
from ..runtime.base import ContainerUsage


def record_samples(ledger, samples: Iterable[tuple[str, ContainerUsage]]) -> int:
    """Store ``(allocation id, usage)`` samples; returns how many were stored.

    The same rules as :meth:`Ledger.record_sample`: an allocation already
    released (or gone) gets nothing; the memory peak only grows (the larger of
    the stored peak, the sampled use and the engine's own high-water mark).
    Blocking: call from a thread.
    """
    samples = [(aid, u) for aid, u in samples if u is not None]
    if not samples:
        return 0
    with ledger.transaction() as s:
        stmt = select(AllocationRow).where(AllocationRow.id.in_({aid for aid, _ in samples})).with_for_update()
        rows = {row.id: row for row in s.scalars(stmt)}
        new = []
        for aid, usage in samples:
            row = rows.get(aid)
            if row is None or row.state == RELEASED:
                continue
            row.cpu_seconds = float(usage.cpu_seconds)
            row.mem_bytes = int(usage.mem_bytes)
            row.mem_peak_bytes = max(row.mem_peak_bytes or 0, int(usage.mem_bytes), int(usage.mem_peak_bytes or 0))
            row.sampled_at = usage.at
            new.append(
                {
                    "allocation_id": aid,
                    "at": usage.at,
                    "cpu_seconds": float(usage.cpu_seconds),
                    "mem_bytes": int(usage.mem_bytes),
                    "pids": usage.pids,
                }
            )
        if new:
            s.execute(insert(UsageSampleRow), new)
        return len(new)

"""Group-wide totals in admission's transaction: lock the groups, sum their live use, check.

The rules are in :mod:`jupyter_berth.group_totals`; this module is the part that
reads the ledger, called by :meth:`jupyter_berth.admission.Admission.reserve`
inside its one write transaction, after the owner's lock and totals.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from .group_totals import EPS, GroupTotals, total_error
from .ledger.models import LIVE_STATES, AllocationRow
from .ledger.records import Usage
from .resources import Resources

#: First key of the PostgreSQL advisory lock taken per group (the second is ``hashtext(group)``).
GROUP_LOCK_CLASS = 0x6267  # "bg"


def lock_groups(s: Session, groups: Iterable[str]) -> None:
    """Take the advisory lock of each group, in name order (PostgreSQL; SQLite holds its write lock)."""
    if s.get_bind().dialect.name != "postgresql":
        return
    for g in sorted(set(groups)):
        s.execute(
            text("SELECT pg_advisory_xact_lock(CAST(:cls AS integer), hashtext(:g))"),
            {"cls": GROUP_LOCK_CLASS, "g": g},
        )


def group_usage(s: Session, groups: Iterable[str]) -> dict[str, Usage]:
    """Live use of each group: the sum of the live allocations reserved under it.

    Summed in Python from the ``groups`` JSON, the same way on every database.
    """
    wanted = set(groups)
    sums = {g: [0.0, 0, 0.0, 0, 0] for g in wanted}
    if not wanted:
        return {}
    stmt = select(
        AllocationRow.groups, AllocationRow.cpu, AllocationRow.mem, AllocationRow.gpu, AllocationRow.kind
    ).where(AllocationRow.state.in_(LIVE_STATES))
    for member_of, cpu, mem, gpu, kind in s.execute(stmt):
        for g in wanted.intersection(member_of or ()):
            acc = sums[g]
            acc[0] += cpu
            acc[1] += mem
            acc[2] += gpu
            acc[3 if kind == "kernel" else 4] += 1
    return {
        g: Usage(cpu=float(c), mem=int(m), gpu=round(float(gp), 4), kernels=int(k), servers=int(sv))
        for g, (c, m, gp, k, sv) in sums.items()
    }


def check(s: Session, totals: Mapping[str, GroupTotals], request: Resources, kind: str) -> None:
    """Refuse (:class:`CapacityError`) when ``request`` would take a group over one of its totals.

    Call inside admission's transaction after :func:`lock_groups`.
    """
    if not totals:
        return
    used = group_usage(s, totals)
    asks = {"cpu": request.cpu, "mem": request.mem, "gpu": request.gpu, "kernels": 0, "servers": 0}
    asks["kernels" if kind == "kernel" else "servers"] = 1
    for g, caps in totals.items():
        in_use = used[g]
        for res, asked in asks.items():
            limit = getattr(caps, res)
            if limit is None or asked <= 0:
                continue
            now = getattr(in_use, res)
            if now + asked <= limit * (1 + EPS) + EPS:
                continue
            raise total_error(g, res, limit, now, asked, kind)

"""Sums over live allocations, computed inside a caller's transaction.

Admission calls these after taking its locks, so the sums it checks are the
ones it commits against; the :class:`~jupyter_berth.ledger.Ledger` calls them
for its read-only reports.
"""

from __future__ import annotations

from sqlalchemy import case, func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from .models import LIVE_STATES, AllocationRow
from .records import Usage


def totalled_kinds() -> list:
    """The resource kinds with a policy total and a column in the allocations table (summed here)."""
    from ..resources import resource_kinds

    return [
        k
        for k in resource_kinds()
        if k.total_limit and isinstance(getattr(AllocationRow, k.name, None), InstrumentedAttribute)
    ]


def live_usage(session: Session, *, owner: str | None = None, node: str | None = None) -> Usage:
    """Sum the live allocations of ``owner`` and/or on ``node`` inside ``session``'s transaction.

    Every resource kind with a policy total (the registry's ``total_limit``) is summed.
    """
    kinds = totalled_kinds()
    is_kernel = case((AllocationRow.kind == "kernel", 1), else_=0)
    stmt = select(
        func.coalesce(func.sum(is_kernel), 0),
        func.count(),
        *(func.coalesce(func.sum(getattr(AllocationRow, k.name)), 0) for k in kinds),
    ).where(AllocationRow.state.in_(LIVE_STATES))
    if owner is not None:
        stmt = stmt.where(AllocationRow.owner == owner)
    if node is not None:
        stmt = stmt.where(AllocationRow.node == node)
    kernels, count, *sums = session.execute(stmt).one()
    totals = {k.name: (int(v) if k.whole else float(v)) for k, v in zip(kinds, sums)}
    own = {n: totals.pop(n) for n in ("cpu", "mem", "gpu") if n in totals}
    return Usage(**own, kernels=int(kernels), servers=int(count) - int(kernels), extra=tuple(sorted(totals.items())))


def usage_by_node(session: Session, nodes: list[str] | None = None) -> dict[str, Usage]:
    """Live usage per node (nodes without live allocations are absent)."""
    is_kernel = case((AllocationRow.kind == "kernel", 1), else_=0)
    stmt = (
        select(
            AllocationRow.node,
            func.sum(AllocationRow.cpu),
            func.sum(AllocationRow.mem),
            func.sum(AllocationRow.gpu),
            func.sum(is_kernel),
            func.count(),
        )
        .where(AllocationRow.state.in_(LIVE_STATES))
        .group_by(AllocationRow.node)
    )
    if nodes is not None:
        stmt = stmt.where(AllocationRow.node.in_(nodes))
    return {
        name: Usage(cpu=float(cpu), mem=int(mem), gpu=float(gpu), kernels=int(k), servers=int(n) - int(k))
        for name, cpu, mem, gpu, k, n in session.execute(stmt)
    }


def gpu_shares_in_use(session: Session, node: str | None = None) -> dict[str, float]:
    """Share of each GPU device (by uuid) held by live allocations (on ``node``, if given).

    Summed in Python from the ``gpu_devices`` JSON, the same way on every database;
    shares are rounded to 4 decimals (``resources.GPU_DECIMALS``) so sums do not drift.
    """
    stmt = select(AllocationRow.gpu_devices).where(
        AllocationRow.state.in_(LIVE_STATES), AllocationRow.gpu > 0, AllocationRow.gpu_devices.is_not(None)
    )
    if node is not None:
        stmt = stmt.where(AllocationRow.node == node)
    used: dict[str, float] = {}
    for devices in session.scalars(stmt):
        for d in devices or ():
            used[d["uuid"]] = round(used.get(d["uuid"], 0.0) + float(d["share"]), 4)
    return used

"""Sums over the live allocations of one user or one group, in SQL, inside a caller's transaction.

Group totals and budgets are checked under admission's lock on every start, so their
sums are one aggregate query each (no rows travel to Python): what the live
allocations hold (CPU, memory, GPU, kernels, servers), and, for a budget's window,
what they have cost since the later of their start and the window's start
(core-, byte- and share-seconds). Group membership is read from the ``groups`` JSON
list with the database's own JSON functions (``json_each`` on SQLite,
``json_array_elements_text`` on PostgreSQL), as the usage reports do.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.orm import Session

from .ledger.models import LIVE_STATES
from .ledger.totals import KERNEL_KINDS, totalled_kinds
from .usage.sql import Dialect

_STATES = ", ".join(f"'{state}'" for state in LIVE_STATES)
_KERNELS = ", ".join(f"'{kind}'" for kind in KERNEL_KINDS)  # a batch job runs a kernel too


@dataclass(frozen=True)
class LiveSums:
    cpu: float = 0.0
    mem: int = 0
    gpu: float = 0.0
    kernels: int = 0
    servers: int = 0
    #: cost since ``w0`` (when asked): core-seconds, byte-seconds, share-seconds
    cpu_s: float = 0.0
    mem_s: float = 0.0
    gpu_s: float = 0.0
    #: what they hold of every resource kind the ledger totals (``totalled_kinds``: cpu, mem, gpu, …)
    held: tuple[tuple[str, float], ...] = ()


_cache: dict[tuple, object] = {}


def _statement(dialect: str, by_group: bool, window: bool, kinds: tuple[str, ...]):
    key = (dialect, by_group, window, kinds)
    if key not in _cache:
        d = Dialect(dialect)
        since = d.greatest(d.epoch("COALESCE(a.started_at, a.created_at)"), ":w0")
        held = d.greatest("0.0", f":now - {since}")
        cost = (
            f", COALESCE(SUM(a.cpu * {held}), 0.0), COALESCE(SUM(a.mem * {held}), 0.0), "
            f"COALESCE(SUM(a.gpu * {held}), 0.0)"
            if window
            else ", 0.0, 0.0, 0.0"
        )
        scope = (
            f"EXISTS (SELECT 1 FROM {d.groups_of('a.groups', 'gf')} WHERE gf.value = :name)"
            if by_group
            else "a.owner = :name"
        )
        held = "".join(f", COALESCE(SUM(a.{name}), 0)" for name in kinds)  # column names from the registry
        _cache[key] = text(
            "SELECT COALESCE(SUM(a.cpu), 0.0), COALESCE(SUM(a.mem), 0), COALESCE(SUM(a.gpu), 0.0), "
            f"COALESCE(SUM(CASE WHEN a.kind IN ({_KERNELS}) THEN 1 ELSE 0 END), 0), "
            "COALESCE(SUM(CASE WHEN a.kind = 'server' THEN 1 ELSE 0 END), 0)"
            f"{cost}{held} FROM allocations a WHERE a.state IN ({_STATES}) AND {scope}"
        )
    return _cache[key]


def live_sums(
    s: Session, *, owner: str | None = None, group: str | None = None, now: datetime | None = None,
    w0: datetime | None = None,
) -> LiveSums:  # fmt: skip
    """The live allocations of ``owner`` or of ``group``'s members: what they hold and (with ``now``
    and ``w0``) what they cost since ``w0``."""
    window = now is not None and w0 is not None
    kinds = totalled_kinds()
    stmt = _statement(s.get_bind().dialect.name, group is not None, window, tuple(k.name for k in kinds))
    params = {"name": group if group is not None else owner}
    if window:
        params.update(now=now.timestamp(), w0=w0.timestamp())
    cpu, mem, gpu, kernels, servers, cpu_s, mem_s, gpu_s, *held = s.execute(stmt, params).one()
    return LiveSums(
        float(cpu), int(mem), round(float(gpu), 4), int(kernels), int(servers),
        float(cpu_s), float(mem_s), float(gpu_s),
        tuple((k.name, int(v) if k.whole else round(float(v), 4)) for k, v in zip(kinds, held)),
    )  # fmt: skip

"""Group-wide totals in admission's transaction: lock the groups, sum their live use, check.

The rules are in :mod:`jupyter_berth.group_totals`; this module is the part that
reads the ledger, called by :meth:`jupyter_berth.admission.Admission.reserve`
inside its one write transaction, after the owner's lock and totals.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sqlalchemy import text
from sqlalchemy.orm import Session

from .group_totals import EPS, GroupTotals, total_error, total_names
from .ledger.records import Usage
from .ledger.totals import KERNEL_KINDS
from .live_sums import live_sums
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
    """Live use of each group, of every resource kind the ledger totals and of kernels and servers: the sum
    of the live allocations reserved under it (one query per group)."""
    out = {}
    for g in sorted(set(groups)):
        t = live_sums(s, group=g)
        held = dict(t.held)
        own = {n: held.pop(n) for n in ("cpu", "mem", "gpu") if n in held}
        out[g] = Usage(**own, kernels=t.kernels, servers=t.servers, extra=tuple(sorted(held.items())))
    return out


def _in_use(usage: Usage, name: str) -> float:
    """What ``usage`` holds of ``name``: a resource kind or a count (``kernels``, ``servers``)."""
    return getattr(usage, name) if name in ("kernels", "servers") else usage.get(name)


def check(s: Session, totals: Mapping[str, GroupTotals], request: Resources, kind: str) -> None:
    """Refuse (:class:`CapacityError`) when ``request`` would take a group over one of its totals.

    Call inside admission's transaction after :func:`lock_groups`.
    """
    if not totals:
        return
    used = group_usage(s, totals)
    asks = {name: getattr(request, name) for name in total_names() if name not in ("kernels", "servers")}
    asks.update(kernels=0, servers=0)
    asks["kernels" if kind in KERNEL_KINDS else "servers"] = 1  # a batch job counts as a kernel
    for g, caps in totals.items():
        in_use = used[g]
        for res, asked in asks.items():
            limit = caps.get(res)
            if limit is None or asked <= 0:
                continue
            now = _in_use(in_use, res)
            if now + asked <= limit * (1 + EPS) + EPS:
                continue
            raise total_error(g, res, limit, now, asked, kind)


def totals_summary(ledger, totals: Mapping[str, GroupTotals]) -> dict[str, dict]:
    """``{group: {"totals", "in_use", "remaining"}}`` for the sidebar and the usage page (a read; no lock).

    ``remaining`` is ``None`` for a resource the group does not cap. Blocking: call from a thread.
    """
    if not totals:
        return {}
    with ledger.reading() as s:
        used = group_usage(s, totals)
    out = {}
    for g, caps in totals.items():
        in_use = {k: _in_use(used[g], k) for k in total_names()}
        out[g] = {
            "totals": caps.to_json(),
            "in_use": in_use,
            "remaining": {k: None if caps.get(k) is None else max(caps.get(k) - v, 0) for k, v in in_use.items()},
        }
    return out


def narrow(remaining: dict, groups: Mapping[str, dict]) -> dict:
    """The user's ``remaining`` (cpu, mem, gpu, kernels) narrowed by what their groups have left."""
    out = dict(remaining)
    for summary in groups.values():
        for k in out:
            left = summary["remaining"].get(k)
            if left is not None:
                out[k] = left if out[k] is None else min(out[k], left)
    return out

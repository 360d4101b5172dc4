"""Group-wide totals: what all members of a group may hold together, at once.

A group policy's ordinary fields apply to each member (``total_cpu: 2`` lets every
student hold 2 CPUs). ``group_totals`` caps the group as a whole::

    group_policies = {"class-a": {"total_cpu": 2, "group_totals": {"cpu": 16, "mem": "32G", "gpu": 1,
                                                                   "kernels": 60, "servers": 40}}}

The members' live allocations together may hold at most 16 CPUs, 32 GiB, one GPU
share, 60 kernels and 40 servers. An allocation counts towards every group it
was reserved under (``allocations.groups``, recorded at reservation), so a user in
two groups with totals needs room in both. Only group policies may set
``group_totals``: a default or user policy that sets it is refused (it would mean
nothing there).

Admission calls :func:`jupyter_berth.group_admission.lock_groups` and
:func:`~jupyter_berth.group_admission.check` inside its one write
transaction, after the user's own totals (see :mod:`jupyter_berth.admission`):
on PostgreSQL each group with totals gets a transaction-scoped advisory lock
(class :data:`GROUP_LOCK_CLASS`, in name order, after the owner's lock, so the
order is the same in every transaction and they cannot deadlock); on SQLite the
transaction's ``BEGIN IMMEDIATE`` already serialises every reservation.
A full group total is "full right now" (:class:`CapacityError`, ``never_fits``
only when the request alone is larger than the total), so the hub's server queue
waits for it like for a full host.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from .errors import CapacityError, RequestError
from .resources import KINDS

EPS = 1e-9

#: The counts a group total may cap beside the resource kinds (those come from the registry).
_COUNTS = {
    "kernels": lambda v: f"{v:g} kernel{'s' if v != 1 else ''}",
    "servers": lambda v: f"{v:g} server{'s' if v != 1 else ''}",
}


def total_kinds() -> list:
    """The resource kinds a group total may cap: those of the registry with a policy total that the ledger
    sums (``ledger.totals.totalled_kinds``: cpu, mem and gpu today), so a kind registered with a
    ``total_limit`` and an allocations column is capped per group with nothing else to change."""
    from .ledger.totals import totalled_kinds

    return totalled_kinds()


def total_names() -> tuple[str, ...]:
    """What ``group_totals`` may name: the registry's totalled kinds, then ``kernels`` and ``servers``."""
    return (*(k.name for k in total_kinds()), *_COUNTS)


def _fmt(res: str):
    """How a value of ``res`` reads: the resource kind's own format (``resources.KINDS``), or a count."""
    return KINDS[res].format if res in KINDS else _COUNTS[res]


class GroupTotals:
    """The most a group's members may hold together, per resource kind or count (absent = no cap).

    ``GroupTotals(cpu=16, mem=32 * GiB, kernels=60)``; read one with :meth:`get` (``None``: no cap) or as
    an attribute (``totals.cpu``). The names are :func:`total_names`, from the resource registry.
    """

    __slots__ = ("_limits",)

    def __init__(self, **limits: float | None):
        known = total_names()
        unknown = sorted(set(limits) - set(known))
        if unknown:
            raise TypeError(f"unknown group total {unknown[0]!r}; known: {', '.join(known)}")
        object.__setattr__(self, "_limits", tuple((n, limits[n]) for n in known if limits.get(n) is not None))

    @classmethod
    def parse(cls, data: Mapping[str, Any] | None, where: str = "group_totals") -> GroupTotals | None:
        if data is None:
            return None
        if not isinstance(data, Mapping):
            raise RequestError(where, "expected a mapping such as {'cpu': 16, 'mem': '32G', 'gpu': 1, 'kernels': 60}")
        known = total_names()
        values: dict[str, float] = {}
        for name, value in data.items():
            if name not in known:
                raise RequestError(f"{where}.{name}", f"unknown group total; known: {', '.join(known)}")
            if value is None or value == "unlimited" or (isinstance(value, float) and math.isinf(value)):
                continue
            if name in KINDS:  # parsed as the registry parses that kind (cpu, mem, gpu, …)
                kind = KINDS[name]
                values[name] = kind.value(0 if value in (0, "0") else kind.parse(value, f"{where}.{name}"))
            else:
                if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or value != int(value):
                    raise RequestError(f"{where}.{name}", f"{value!r} must be a whole number ≥ 0 (or 'unlimited')")
                values[name] = int(value)
        return cls(**values)

    def get(self, name: str) -> float | None:
        """The cap on ``name`` (a resource kind or a count); ``None`` when the group does not cap it."""
        return dict(self._limits).get(name)

    def __getattr__(self, name: str):
        if name.startswith("_") or name not in total_names():
            raise AttributeError(name)
        return self.get(name)

    def __setattr__(self, name, value):
        raise AttributeError("GroupTotals is immutable")

    def to_json(self) -> dict:
        return dict(self._limits)

    def __bool__(self) -> bool:
        return bool(self._limits)

    def __eq__(self, other) -> bool:
        return isinstance(other, GroupTotals) and self._limits == other._limits

    def __hash__(self) -> int:
        return hash(self._limits)

    def __repr__(self) -> str:
        return f"GroupTotals({', '.join(f'{n}={v!r}' for n, v in self._limits)})"


def total_error(group: str, res: str, limit: float, in_use: float, asked: float, kind: str) -> CapacityError:
    """The refusal: names the group, its total, what the group holds and what to do."""
    fmt = _fmt(res)
    where = f"group_totals.{res} of group {group}"
    if asked > limit * (1 + EPS) + EPS:
        return CapacityError(
            f"{res}: this {kind} asks for {fmt(asked)} but group {group} may hold only {fmt(limit)} in all "
            f"({where}); ask for {fmt(limit)} or less",
            resource=f"group:{group}:{res}",
            never_fits=True,
        )
    room = max(limit - in_use, 0.0)
    if res in KINDS and room > EPS:
        shown = KINDS[res].value(room) if KINDS[res].whole else round(room, 4)
        advice = f"wait until a member of {group} stops a kernel or server, or ask for {fmt(shown)} or less"
    else:
        advice = f"wait until a member of {group} stops a {kind if res in ('kernels', 'servers') else 'kernel'}"
    return CapacityError(
        f"{res}: group {group} is using {fmt(in_use)} of its group total of {fmt(limit)} ({where}); "
        f"this {kind} would bring it to {fmt(in_use + asked)}; {advice}",
        resource=f"group:{group}:{res}",
        never_fits=False,
    )

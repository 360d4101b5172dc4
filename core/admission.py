"""Admission: check a request against the user's policy and the hosts' room, and reserve it.

:meth:`Admission.reserve` does everything in ONE write transaction, so two
requests arriving together can never both take the last CPU:

1. lock: on SQLite the transaction began with ``BEGIN IMMEDIATE`` and holds
   the database's write lock; on PostgreSQL it takes a transaction-scoped
   advisory lock on the owner (so a user's totals are checked one request at a
   time even across hosts), then ``SELECT … FOR UPDATE`` on the candidate
   ``nodes`` rows in name order (a fixed order, so transactions cannot deadlock);
2. sum the owner's live allocations and check the policy's totals
   (``total_cpu``, ``total_mem``, ``total_gpu``: kernels and servers together)
   and ``max_kernels`` (kernels only) → :class:`PolicyError`; then, for each of the
   owner's groups whose policy sets ``group_totals``, take the group's advisory lock
   (PostgreSQL, class ``group_admission.GROUP_LOCK_CLASS``, in name order) and check
   the members' live use together against it → :class:`CapacityError` naming the
   group (:mod:`jupyter_berth.group_admission`); then the user's ``budget`` and each
   group's ``group_budget`` (those groups are locked too): a start that what is left
   cannot pay for during the budget's ``min_run`` → :class:`PolicyError`
   (:mod:`jupyter_berth.budget_use`);
3. pick a host: the one asked for, or the first (by name) whose live
   allocations plus the request fit its CPU and memory → :class:`CapacityError`
   (``never_fits=True`` when no host could ever hold the request, so the hub
   refuses instead of queueing);
4. assign GPU devices on that host through ``gpu_assigner`` (same transaction);
5. insert the allocation as ``reserved``.

If anything fails the transaction rolls back and nothing is reserved.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping

from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from . import fair_admission, start_queue
from .errors import CapacityError, ConflictError, NotFoundError, PolicyError, RequestError
from .ledger import Allocation, Ledger, Node, Usage, live_usage, usage_by_node
from .ledger.models import KINDS, RESERVED, AllocationRow, NodeRow
from .ledger.totals import KERNEL_KINDS, gpu_shares_in_use
from .policies import EffectivePolicy
from .resources import KINDS as RESOURCE_KINDS
from .resources import Resources, format_bytes, resource_kinds

#: ``gpu_assigner(session, node, request) -> [{"uuid": ..., "share": ...}, ...]``; raise
#: :class:`CapacityError` (or return an empty list) when the node has no room.
GpuAssigner = Callable[[Session, Node, Resources], "list[dict]"]
#: First key of the PostgreSQL advisory lock taken per owner (the second is ``hashtext(owner)``).
USER_LOCK_CLASS = 0x6265  # "be"
#: Slack for float sums of CPU and GPU shares.
EPS = 1e-9

#: Host placement speaks of the kinds a host's capacity holds (words and formats from the registry).
_WORD = {name: RESOURCE_KINDS[name].word for name in ("cpu", "mem", "gpu")}
_FORMAT = {name: RESOURCE_KINDS[name].format for name in ("cpu", "mem", "gpu")}


def share_assigner(assign: Callable[[Mapping[str, float], Resources], list[dict]]) -> GpuAssigner:
    """Adapt a ``(shares in use by device uuid, request) -> [{"uuid", "share"}]`` allocator
    (``jupyter_berth.gpu.make_gpu_assigner``) to the ``gpu_assigner`` hook.

    The shares in use are summed from the live allocations inside the reservation's
    transaction, after its locks, so two reservations never split the same share.
    Device uuids are unique across hosts; a result naming another host's device
    (``"node"`` set and different) counts as "no room on this host".
    """

    def assigner(session: Session, node: Node, request: Resources) -> list[dict]:
        shares = assign(gpu_shares_in_use(session), request)
        if any(s.get("node") not in (None, node.name) for s in shares):
            raise capacity_error(f"gpu: host {node.name} has no {request.gpu:g} GPU free", "gpu", False)
        return shares

    return assigner


def capacity_error(message: str, resource: str, never_fits: bool) -> CapacityError:
    """A :class:`CapacityError` with ``never_fits`` set (True: no host could ever hold it)."""
    return CapacityError(message, resource=resource, never_fits=never_fits)


def check_totals(usage: Usage, policy: EffectivePolicy, request: Resources, kind: str) -> None:
    """Refuse a request that would bring the owner's live ``usage`` over a total of the policy.

    ``max_kernels`` for kernels, and every registered resource kind's ``total_limit``
    (``total_cpu``, ``total_mem``, ``total_gpu``, …) for kernels and servers together.
    """
    sources: Mapping[str, str] = policy.sources or {}
    stop = "stop a kernel" if usage.kernels else "stop a server"
    if kind in KERNEL_KINDS and usage.kernels + 1 > policy.max_kernels:  # a batch job runs a kernel too
        source = sources.get("max_kernels", "policy")
        if policy.max_kernels == 0:
            message = f"kernels: your policy allows no kernels (max_kernels is 0, set by {source})"
        else:
            message = (
                f"kernels: you are running {usage.kernels} kernel{'s' if usage.kernels != 1 else ''}, the most "
                f"your max_kernels limit of {policy.max_kernels:g} allows (set by {source}); stop a kernel to start another"
            )
        raise PolicyError(message, limit="max_kernels")
    for res in resource_kinds():
        limit_name = res.total_limit
        if limit_name is None:
            continue
        asked, limit, in_use = getattr(request, res.name), getattr(policy, limit_name), usage.get(res.name)
        if asked <= 0 or in_use + asked <= limit * (1 + EPS) + EPS:
            continue
        fmt = res.format
        source = sources.get(limit_name, "policy")
        if limit <= 0:
            message = f"{res.name}: your policy allows no {res.word} in total ({limit_name} is 0, set by {source})"
        else:
            room = res.value(max(limit - in_use, 0.0))
            advice = f"{stop} or ask for {fmt(room)} or less" if room > EPS else f"{stop} first"
            message = (
                f"{res.name}: starting this {kind} would bring your total to {fmt(in_use + asked)}, over your "
                f"{limit_name} limit of {fmt(limit)} (set by {source}; you are using {fmt(in_use)} in "
                f"{usage.describe()}); {advice}"
            )
        raise PolicyError(message, limit=limit_name)


class Admission:
    """Atomic check-and-reserve against a :class:`~jupyter_berth.ledger.Ledger`."""

    def __init__(self, ledger: Ledger):
        self.ledger = ledger

    def reserve(
        self,
        owner: str,
        groups: Iterable[str],
        policy: EffectivePolicy,
        request: Resources,
        kind: str,
        subject: str,
        image: str,
        node: str | None = None,
        allocation_id: str | None = None,
        gpu_assigner: GpuAssigner | None = None,
        queue_id: int | None = None,
        server: str | None = None,
    ) -> Allocation:
        """Reserve ``request`` for ``owner``'s ``kind`` (``"kernel"`` or ``"server"``) named ``subject``.

        Raises :class:`PolicyError` (over a per-kernel limit, a total or
        ``max_kernels``), :class:`CapacityError` (no host has room; ``never_fits``
        tells "too large for any host" from "full right now"),
        :class:`NotFoundError` (unknown ``node``) or :class:`ConflictError`
        (``allocation_id`` already used). Nothing is reserved when it raises. ``queue_id``: the
        start-queue row this reservation is the turn of (``start_queue.gate``); ``server``: the hub server
        (named, or "" the default one) a kernel belongs to.
        """
        if kind not in KINDS:
            raise RequestError("kind", f"{kind!r} is not something to reserve for; expected one of {', '.join(KINDS)}")
        if not subject:
            raise RequestError("subject", "name the kernel or server the resources are for")
        # Per-kernel limits: the caller checked already, but a direct call must not slip past.
        policy.check(request, explicit=True, image=image, subject=kind)
        alloc_id = allocation_id or str(uuid.uuid4())
        try:
            with self.ledger.transaction() as s:
                nodes = self._lock(s, owner, node)
                self._check_totals(s, owner, policy, request, kind)
                fair_admission.check(s, policy, request, kind)  # group totals and budgets
                if kind == "kernel":  # nobody jumps the kernel start queue (servers have the hub's queue)
                    start_queue.gate(s, queue_id)
                chosen, devices = self._place(s, nodes, request, kind, asked_node=node, gpu_assigner=gpu_assigner)
                row = AllocationRow(
                    id=alloc_id,
                    owner=owner,
                    groups=sorted(set(groups)),
                    kind=kind,
                    subject=subject,
                    image=image,
                    node=chosen.name,
                    # every resource kind the allocations table has a column for (the registry's kinds)
                    **{k.name: getattr(request, k.name) for k in resource_kinds() if hasattr(AllocationRow, k.name)},
                    gpu_devices=devices,
                    state=RESERVED,
                    server=server,
                )
                s.add(row)
                s.flush()
                return Allocation.from_row(row)
        except IntegrityError:
            if self.ledger.get_allocation(alloc_id) is not None:
                raise ConflictError(f"allocation {alloc_id} already exists; use a new id") from None
            raise

    # -- steps -------------------------------------------------------------------------

    def _lock(self, s: Session, owner: str, node: str | None) -> list[NodeRow]:
        """Take the locks (see module doc) and return the candidate hosts, by name."""
        if s.get_bind().dialect.name == "postgresql":
            s.execute(
                text("SELECT pg_advisory_xact_lock(CAST(:cls AS integer), hashtext(:owner))"),
                {"cls": USER_LOCK_CLASS, "owner": owner},
            )
        if node is not None:
            row = s.scalars(select(NodeRow).where(NodeRow.name == node).with_for_update()).one_or_none()
            if row is None:
                known = ", ".join(s.scalars(select(NodeRow.name).order_by(NodeRow.name))) or "none yet"
                raise NotFoundError(f"no host named {node!r}; known hosts: {known}")
            return [row]
        return list(s.scalars(select(NodeRow).where(NodeRow.state == "ready").order_by(NodeRow.name).with_for_update()))

    def _check_totals(self, s: Session, owner: str, policy: EffectivePolicy, request: Resources, kind: str) -> None:
        check_totals(live_usage(s, owner=owner), policy, request, kind)

    def _place(
        self,
        s: Session,
        nodes: list[NodeRow],
        request: Resources,
        kind: str,
        *,
        asked_node: str | None,
        gpu_assigner: GpuAssigner | None,
    ) -> tuple[NodeRow, list[dict] | None]:
        """Choose the host and GPU devices, or raise :class:`CapacityError`."""
        if asked_node is not None and nodes[0].state != "ready":
            raise capacity_error(
                f"host {asked_node} is {nodes[0].state} and takes no new {kind}s; try again later", "node", False
            )
        if not nodes:
            others = ", ".join(f"{n.name} ({n.state})" for n in s.scalars(select(NodeRow).order_by(NodeRow.name)))
            if others:
                raise capacity_error(f"no host takes new {kind}s right now: {others}; try again later", "node", False)
            raise capacity_error(
                "no host is registered in the ledger yet (the Berth service records each host when it starts)",
                "node",
                True,
            )
        where = f"host {asked_node}" if asked_node else "the largest host"
        for res in ("cpu", "mem"):
            asked = getattr(request, res)
            biggest = max(nodes, key=lambda n: getattr(n, res))
            if asked > getattr(biggest, res) * (1 + EPS) + EPS:
                fmt = _FORMAT[res]
                holder = "" if asked_node else f" ({biggest.name})"
                raise capacity_error(
                    f"{res}: this {kind} asks for {fmt(asked)} but {where}{holder} has {fmt(getattr(biggest, res))} "
                    f"in all; ask for {fmt(getattr(biggest, res))} or less",
                    res,
                    True,
                )
        if request.gpu > 0 and gpu_assigner is None:
            raise capacity_error(
                f"gpu: this {kind} asks for {request.gpu:g} GPU but there is no GPU on this host", "gpu", True
            )
        used = usage_by_node(s, [n.name for n in nodes])
        free = {n.name: (n.cpu - used.get(n.name, Usage()).cpu, n.mem - used.get(n.name, Usage()).mem) for n in nodes}
        gpu_error: CapacityError | None = None
        for n in nodes:
            free_cpu, free_mem = free[n.name]
            if free_cpu + EPS < request.cpu or free_mem < request.mem:
                continue
            if request.gpu <= 0:
                return n, None
            try:
                devices = gpu_assigner(s, Node.from_row(n), request)
            except CapacityError as e:
                gpu_error = e
                continue
            if devices:
                return n, [dict(d) for d in devices]
            gpu_error = capacity_error(f"gpu: host {n.name} has no {request.gpu:g} GPU free", "gpu", False)
        if gpu_error is not None:
            raise gpu_error
        raise self._full_error(nodes, free, request, kind)

    @staticmethod
    def _full_error(
        nodes: list[NodeRow], free: dict[str, tuple[float, int]], request: Resources, kind: str
    ) -> CapacityError:
        """Say which resource is short right now, and the most any host has free."""
        later = "try again when a kernel stops"
        for i, res in enumerate(("cpu", "mem")):
            asked = getattr(request, res)
            fits = [name for name, f in free.items() if (f[i] + EPS if i == 0 else f[i]) >= asked]
            if fits:
                continue
            fmt = _FORMAT[res]
            best = max(free, key=lambda name: free[name][i])
            largest = max(free[best][i], 0)
            if largest <= EPS:
                message = f"{res}: no host has {fmt(asked)} free: every host's {_WORD[res]} is taken; {later}"
            else:
                message = (
                    f"{res}: no host has {fmt(asked)} free: the largest free is {fmt(largest)} on {best}; "
                    f"{later} or ask for {fmt(largest)} or less"
                )
            return capacity_error(message, res, False)
        detail = "; ".join(
            f"{name}: {_FORMAT['cpu'](max(c, 0))} and {format_bytes(max(m, 0))} free" for name, (c, m) in free.items()
        )
        return capacity_error(
            f"no host has both {_FORMAT['cpu'](request.cpu)} and {format_bytes(request.mem)} free ({detail}); {later} or ask for less",
            "cpu+mem",
            False,
        )

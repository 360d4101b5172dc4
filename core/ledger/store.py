"""The :class:`Ledger`: queries and changes of nodes, allocations, usage, policies and profiles.

Every method is synchronous, opens its own session and commits before it
returns, so one ``Ledger`` may be shared by many threads (the async service
calls it through an executor). Results are frozen dataclasses from
:mod:`.records`, never live ORM rows.

Reserving resources is not here but in :class:`jupyter_berth.admission.Admission`,
which uses :meth:`Ledger.transaction` and :mod:`.totals`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from ..errors import ConflictError, NotFoundError, RequestError
from ..policies import PolicySpec
from ..resources import Resources
from . import db
from .models import (
    LIVE_STATES,
    NODE_STATES,
    POLICY_SCOPES,
    RELEASED,
    RUNNING,
    AllocationRow,
    NodeRow,
    PolicyRow,
    ProfileRow,
    UsageRecordRow,
    UsageSampleRow,
    utcnow,
)
from .records import Allocation, Node, Profile, Usage, UsageRecord, UsageSample
from .totals import live_usage, usage_by_node

#: The name the default policy is stored under (scope ``default``).
DEFAULT_POLICY_NAME = "default"
#: Known end reasons (others are accepted; these are what the service writes).
END_REASONS = ("shutdown", "oom", "lost", "culled", "failed", "lifetime")


class Ledger:
    """The record of hosts, allocations, usage, policies and profiles.

    ``url`` defaults to ``$BERTH_DB_URL``, else ``sqlite:///<data_dir>/berth.sqlite`` (``data_dir``
    defaults to ``$BERTH_DATA_DIR`` or ``~/.local/share/jupyter-berth``). On
    start the schema revision is checked (see :func:`db.check_revision`):
    ``auto_upgrade`` creates an empty database and upgrades an SQLite one;
    otherwise :class:`db.LedgerRevisionError` says to run ``berth db upgrade``.
    """

    def __init__(
        self,
        url: str | None = None,
        data_dir: str | None = None,
        auto_upgrade: bool = True,
        engine_kwargs: Mapping[str, Any] | None = None,
    ):
        self.engine = db.make_engine(db.resolve_url(url, data_dir), **dict(engine_kwargs or {}))
        try:
            db.check_revision(self.engine, auto_upgrade=auto_upgrade)
        except BaseException:
            self.engine.dispose()
            raise
        self._writer = sessionmaker(self.engine, expire_on_commit=False)
        self._reader = sessionmaker(self.engine.execution_options(**{db.READ_ONLY: True}), expire_on_commit=False)

    # -- plumbing --------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The database, password hidden (safe to show)."""
        return db.describe_url(self.engine.url)

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self.engine.dialect.name

    def close(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A write transaction (``BEGIN IMMEDIATE`` on SQLite); commits on success, rolls back on error."""
        with self._writer.begin() as session:
            yield session

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A read-only transaction (never waits for writers on SQLite)."""
        with self._reader.begin() as session:
            yield session

    # -- nodes -----------------------------------------------------------------------

    def set_node_capacity(
        self,
        name: str,
        cpu: float,
        mem: int,
        gpu: list[Mapping[str, Any]] | None = None,
        labels: Mapping[str, Any] | None = None,
        state: str = "ready",
    ) -> Node:
        """Record (create or replace) a host's capacity, GPU inventory and labels."""
        if not name:
            raise RequestError("node", "a host needs a name")
        if not (isinstance(cpu, (int, float)) and math.isfinite(cpu) and cpu >= 0):
            raise RequestError("cpu", f"{cpu!r} is not a capacity; expected a number of cores ≥ 0")
        if not (isinstance(mem, int) and mem >= 0):
            raise RequestError("mem", f"{mem!r} is not a capacity; expected a whole number of bytes ≥ 0")
        self._check_node_state(state)
        with self.transaction() as s:
            row = s.get(NodeRow, name) or NodeRow(name=name)
            row.cpu, row.mem, row.state, row.updated_at = float(cpu), int(mem), state, utcnow()
            row.gpu = [dict(d) for d in gpu] if gpu else None
            row.labels = dict(labels or {})
            s.add(row)
            s.flush()
            return Node.from_row(row)

    def set_node_state(self, name: str, state: str) -> Node:
        """Mark a host ``ready``, ``draining`` (keeps its allocations, takes no new ones) or ``down``."""
        self._check_node_state(state)
        with self.transaction() as s:
            row = s.get(NodeRow, name)
            if row is None:
                raise NotFoundError(f"no host named {name!r} in the ledger")
            row.state, row.updated_at = state, utcnow()
            return Node.from_row(row)

    def get_node(self, name: str) -> Node | None:
        with self.reading() as s:
            row = s.get(NodeRow, name)
            return Node.from_row(row) if row else None

    def nodes(self) -> list[Node]:
        with self.reading() as s:
            return [Node.from_row(r) for r in s.scalars(select(NodeRow).order_by(NodeRow.name))]

    def node_usage(self) -> dict[str, Usage]:
        """Live usage per host."""
        with self.reading() as s:
            return usage_by_node(s)

    def user_usage(self, owner: str) -> Usage:
        """What ``owner``'s live kernels and servers hold."""
        with self.reading() as s:
            return live_usage(s, owner=owner)

    @staticmethod
    def _check_node_state(state: str) -> None:
        if state not in NODE_STATES:
            raise RequestError("state", f"{state!r} is not a host state; expected one of {', '.join(NODE_STATES)}")

    # -- allocations -------------------------------------------------------------------

    def get_allocation(self, alloc_id: str) -> Allocation | None:
        with self.reading() as s:
            row = s.get(AllocationRow, alloc_id)
            return Allocation.from_row(row) if row else None

    def live_allocations(
        self, owner: str | None = None, node: str | None = None, kind: str | None = None
    ) -> list[Allocation]:
        """Reserved and running allocations, oldest first."""
        stmt = (
            select(AllocationRow)
            .where(AllocationRow.state.in_(LIVE_STATES))
            .order_by(AllocationRow.created_at, AllocationRow.id)
        )
        if owner is not None:
            stmt = stmt.where(AllocationRow.owner == owner)
        if node is not None:
            stmt = stmt.where(AllocationRow.node == node)
        if kind is not None:
            stmt = stmt.where(AllocationRow.kind == kind)
        with self.reading() as s:
            return [Allocation.from_row(r) for r in s.scalars(stmt)]

    def _locked(self, s: Session, alloc_id: str) -> AllocationRow:
        row = s.scalars(select(AllocationRow).where(AllocationRow.id == alloc_id).with_for_update()).one_or_none()
        if row is None:
            raise NotFoundError(f"no allocation {alloc_id!r} in the ledger")
        return row

    def mark_running(self, alloc_id: str, container_id: str, image_digest: str | None = None) -> Allocation:
        """The container started: record its id and the image digest it runs."""
        with self.transaction() as s:
            row = self._locked(s, alloc_id)
            if row.state == RELEASED:
                raise ConflictError(
                    f"allocation {alloc_id} for {row.kind} {row.subject} was already released "
                    f"({row.release_reason}); start a new one"
                )
            if row.state != RUNNING:
                row.state, row.started_at = RUNNING, utcnow()
            row.container_id = container_id
            if image_digest is not None:
                row.image_digest = image_digest
            return Allocation.from_row(row)

    def record_sample(
        self,
        alloc_id: str,
        cpu_seconds: float,
        mem_bytes: int,
        pids: int | None = None,
        at: datetime | None = None,
        mem_peak_bytes: int | None = None,
    ) -> bool:
        """Store a usage sample and update the allocation's running figures and memory peak.

        ``mem_peak_bytes`` is the engine's own high-water mark, when it has one.
        Returns ``False`` (and stores nothing) if the allocation was already released.
        """
        at = at or utcnow()
        with self.transaction() as s:
            row = self._locked(s, alloc_id)
            if row.state == RELEASED:
                return False
            row.cpu_seconds = float(cpu_seconds)
            row.mem_bytes = int(mem_bytes)
            row.mem_peak_bytes = max(row.mem_peak_bytes or 0, int(mem_bytes), int(mem_peak_bytes or 0))
            row.sampled_at = at
            s.add(
                UsageSampleRow(
                    allocation_id=alloc_id, at=at, cpu_seconds=float(cpu_seconds), mem_bytes=int(mem_bytes), pids=pids
                )
            )
            return True

    def samples(self, alloc_id: str, since: datetime | None = None) -> list[UsageSample]:
        stmt = select(UsageSampleRow).where(UsageSampleRow.allocation_id == alloc_id).order_by(UsageSampleRow.at)
        if since is not None:
            stmt = stmt.where(UsageSampleRow.at >= since)
        with self.reading() as s:
            return [UsageSample.from_row(r) for r in s.scalars(stmt)]

    def prune_samples(self, before: datetime) -> int:
        """Delete samples taken before ``before``; returns how many."""
        with self.transaction() as s:
            return s.execute(delete(UsageSampleRow).where(UsageSampleRow.at < before)).rowcount

    def release(
        self,
        alloc_id: str,
        reason: str,
        exit_code: int | None = None,
        message: str | None = None,
        cpu_seconds: float | None = None,
        mem_peak_bytes: int | None = None,
    ) -> UsageRecord | None:
        """Release an allocation and write its usage record.

        Idempotent: the first call writes the record and returns it; later calls
        change nothing and return ``None``. Final totals not given fall back to the
        last sample. The record starts when the container started, or when the
        resources were reserved if it never did (they were held all the same).
        """
        if not reason or len(reason) > 32:
            raise RequestError(
                "reason", f"{reason!r} is not an end reason; expected a short word such as {', '.join(END_REASONS)}"
            )
        with self.transaction() as s:
            row = self._locked(s, alloc_id)
            if row.state == RELEASED:
                return None
            now = utcnow()
            row.state, row.released_at, row.release_reason = RELEASED, now, reason
            if cpu_seconds is not None:
                row.cpu_seconds = float(cpu_seconds)
            peak = max(row.mem_peak_bytes or 0, int(mem_peak_bytes or 0))
            row.mem_peak_bytes = peak
            record = UsageRecordRow(
                allocation_id=row.id,
                owner=row.owner,
                groups=list(row.groups or []),
                kind=row.kind,
                subject=row.subject,
                image=row.image,
                image_digest=row.image_digest,
                node=row.node,
                cpu=row.cpu,
                mem=row.mem,
                gpu=row.gpu,
                started_at=row.started_at or row.created_at,
                ended_at=now,
                cpu_seconds=row.cpu_seconds or 0.0,
                mem_peak_bytes=peak,
                end_reason=reason,
                exit_code=exit_code,
                message=message,
            )
            s.add(record)
            s.flush()
            return UsageRecord.from_row(record)

    # -- usage -------------------------------------------------------------------------

    def usage_records(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        owner: str | None = None,
        overlapping: bool = False,
    ) -> list[UsageRecord]:
        """Usage records that ended in ``[since, until)``, oldest first.

        With ``overlapping``, records whose run overlaps the window instead (for
        reports that split kernel-hours by day).
        """
        stmt = select(UsageRecordRow).order_by(UsageRecordRow.ended_at, UsageRecordRow.id)
        if since is not None:
            stmt = stmt.where(UsageRecordRow.ended_at >= since)
        if until is not None:
            column = UsageRecordRow.started_at if overlapping else UsageRecordRow.ended_at
            stmt = stmt.where(column < until)
        if owner is not None:
            stmt = stmt.where(UsageRecordRow.owner == owner)
        with self.reading() as s:
            return [UsageRecord.from_row(r) for r in s.scalars(stmt)]

    # -- policies ----------------------------------------------------------------------

    def get_policies(self) -> tuple[dict | None, dict[str, dict], dict[str, dict]]:
        """``(default, {group: spec}, {user: spec})`` as stored (raw JSON; parse with ``PolicySpec.parse``)."""
        default, groups, users = None, {}, {}
        with self.reading() as s:
            for row in s.scalars(select(PolicyRow).order_by(PolicyRow.scope, PolicyRow.name)):
                if row.scope == "default":
                    default = dict(row.spec)
                elif row.scope == "group":
                    groups[row.name] = dict(row.spec)
                else:
                    users[row.name] = dict(row.spec)
        return default, groups, users

    @staticmethod
    def _policy_key(scope: str, name: str | None) -> tuple[str, str]:
        if scope not in POLICY_SCOPES:
            raise RequestError("scope", f"{scope!r} is not a policy scope; expected one of {', '.join(POLICY_SCOPES)}")
        if scope == "default":
            return scope, DEFAULT_POLICY_NAME
        if not name:
            raise RequestError("name", f"a {scope} policy needs the {scope}'s name")
        return scope, name

    def set_policy(self, scope: str, name: str | None, spec_json: Mapping[str, Any], by: str | None = None) -> dict:
        """Store a policy (validated with ``PolicySpec.parse``; stored as given). Returns the stored JSON."""
        scope, name = self._policy_key(scope, name)
        where = "default policy" if scope == "default" else f"{scope} {name}"
        PolicySpec.parse(spec_json, where=where)  # raises RequestError naming the field
        with self.transaction() as s:
            row = s.get(PolicyRow, (scope, name)) or PolicyRow(scope=scope, name=name)
            row.spec, row.updated_at, row.updated_by = dict(spec_json), utcnow(), by
            s.add(row)
        return dict(spec_json)

    def delete_policy(self, scope: str, name: str | None = None) -> bool:
        """Delete a policy; ``False`` if there was none."""
        scope, name = self._policy_key(scope, name)
        with self.transaction() as s:
            return s.execute(delete(PolicyRow).where(PolicyRow.scope == scope, PolicyRow.name == name)).rowcount > 0

    # -- profiles ----------------------------------------------------------------------

    def get_profile(self, user: str) -> Profile | None:
        with self.reading() as s:
            row = s.get(ProfileRow, user)
            return Profile.from_row(row) if row else None

    def set_profile(self, user: str, request: Mapping[str, Any], image: str | None = None) -> Profile:
        """Store a user's default profile; the request is validated with ``Resources.parse``."""
        Resources.parse(request)
        with self.transaction() as s:
            row = s.get(ProfileRow, user) or ProfileRow(user=user)
            row.request, row.image, row.updated_at = dict(request), image, utcnow()
            s.add(row)
            s.flush()
            return Profile.from_row(row)

    def delete_profile(self, user: str) -> bool:
        with self.transaction() as s:
            return s.execute(delete(ProfileRow).where(ProfileRow.user == user)).rowcount > 0

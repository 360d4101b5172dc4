"""The ledger's tables (SQLAlchemy 2 ORM).

Six tables, created and changed only by the Alembic migrations in
``migrations/versions`` (``berth db upgrade``):

``nodes``
    One row per host: its capacity as the service measured it (CPU cores,
    memory bytes, GPU inventory), labels and state (``ready``, ``draining``,
    ``down``). Admission locks these rows on PostgreSQL.
``allocations``
    One row per kernel, server or batch-job container, from reservation to release: who
    (owner and their groups at reservation time), what (kind, subject, image),
    where (node, GPU devices) and how much (cpu, mem, pids, shm, gpu), its state
    (``reserved`` → ``running`` → ``released``) and the last sampled usage.
    Rows in ``reserved`` or ``running`` are *live*: they count against the
    node's capacity and the owner's totals.
``usage_records``
    One row per released allocation (unique ``allocation_id``): the durable
    history that usage reports read. No foreign key to ``allocations``, so
    allocations can be pruned without losing history.
``usage_samples``
    Time series of an allocation's CPU seconds, memory and process count.
``policies``
    Policy specs as JSON, keyed by ``(scope, name)``; scope is ``default``,
    ``group`` or ``user``.
``profiles``
    A user's default profile: the request (JSON) and image a kernel started
    without parameters gets.

Timestamps are stored as naive UTC (``TIMESTAMP WITHOUT TIME ZONE`` on
PostgreSQL, ISO text on SQLite) through :class:`UTCDateTime`, and always come
back as timezone-aware UTC datetimes. The declarative base and those helpers are in
:mod:`.base`, which the folder and image tables (:mod:`.models_folders`,
:mod:`.models_images`) build on too.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, UTCDateTime, utcnow

#: Allocation states; ``reserved`` and ``running`` are live.
RESERVED, RUNNING, RELEASED = "reserved", "running", "released"
LIVE_STATES = (RESERVED, RUNNING)
#: What an allocation is for.
KINDS = ("kernel", "server", "job")
#: Node states; only ``ready`` nodes receive new allocations.
NODE_STATES = ("ready", "draining", "down")
#: Policy scopes.
POLICY_SCOPES = ("default", "group", "user")


class NodeRow(Base):
    """A host and its capacity (set by the service; overcommit is the service's business)."""

    __tablename__ = "nodes"

    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    cpu: Mapped[float] = mapped_column(Float, nullable=False)
    mem: Mapped[int] = mapped_column(BigInteger, nullable=False)
    #: GPU inventory, e.g. ``[{"uuid": "GPU-…", "index": 0, "name": "A100", "memory": 42949672960}]``
    gpu: Mapped[Any | None] = mapped_column(JSON, nullable=True)
    labels: Mapped[Any] = mapped_column(JSON, nullable=False, default=dict)
    state: Mapped[str] = mapped_column(String(16), nullable=False, default="ready")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)

    __table_args__ = (
        CheckConstraint("state IN ('ready', 'draining', 'down')", name="state"),
        CheckConstraint("cpu >= 0 AND mem >= 0", name="capacity"),
    )


class AllocationRow(Base):
    """Resources held for one kernel or server, from reservation to release."""

    __tablename__ = "allocations"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner: Mapped[str] = mapped_column(String(255), nullable=False)
    groups: Mapped[Any] = mapped_column(JSON, nullable=False, default=list)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    subject: Mapped[str] = mapped_column(String(255), nullable=False)
    image: Mapped[str] = mapped_column(String(512), nullable=False)
    image_digest: Mapped[str | None] = mapped_column(String(255), nullable=True)
    node: Mapped[str] = mapped_column(String(255), ForeignKey("nodes.name"), nullable=False)
    cpu: Mapped[float] = mapped_column(Float, nullable=False)
    mem: Mapped[int] = mapped_column(BigInteger, nullable=False)
    pids: Mapped[int] = mapped_column(Integer, nullable=False)
    shm: Mapped[int] = mapped_column(BigInteger, nullable=False)
    gpu: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    #: bytes the container may write outside its volumes and folders (``None``: made before migration 0008_disk)
    disk: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    #: ``[{"uuid": "GPU-…", "share": 0.25}]`` or ``None``
    gpu_devices: Mapped[Any | None] = mapped_column(JSON, nullable=True)
    state: Mapped[str] = mapped_column(String(16), nullable=False, default=RESERVED)
    container_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    release_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    #: the hub server (its name; "" the default one) whose kernel this is; None: not started from a hub server
    server: Mapped[str | None] = mapped_column(String(255), nullable=True)
    # last sampled figures
    cpu_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    mem_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    mem_peak_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    sampled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    __table_args__ = (
        CheckConstraint("kind IN ('kernel', 'server', 'job')", name="kind"),
        CheckConstraint("state IN ('reserved', 'running', 'released')", name="state"),
        Index("ix_allocations_owner_state", "owner", "state"),
        Index("ix_allocations_node_state", "node", "state"),
    )


class UsageRecordRow(Base):
    """What one allocation used, written once when it is released."""

    __tablename__ = "usage_records"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    allocation_id: Mapped[str] = mapped_column(String(36), nullable=False, unique=True)
    owner: Mapped[str] = mapped_column(String(255), nullable=False)
    groups: Mapped[Any] = mapped_column(JSON, nullable=False, default=list)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    subject: Mapped[str] = mapped_column(String(255), nullable=False)
    image: Mapped[str] = mapped_column(String(512), nullable=False)
    image_digest: Mapped[str | None] = mapped_column(String(255), nullable=True)
    node: Mapped[str] = mapped_column(String(255), nullable=False)
    cpu: Mapped[float] = mapped_column(Float, nullable=False)
    mem: Mapped[int] = mapped_column(BigInteger, nullable=False)
    gpu: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    ended_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    cpu_seconds: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    mem_peak_bytes: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    end_reason: Mapped[str] = mapped_column(String(32), nullable=False)
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    message: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (
        Index("ix_usage_records_ended_at", "ended_at"),
        Index("ix_usage_records_owner_ended_at", "owner", "ended_at"),
        # usage reports: records overlapping a window, from either end of the history (migration 0004)
        Index("ix_usage_records_ended_at_started_at", "ended_at", "started_at"),
        Index("ix_usage_records_started_at_ended_at", "started_at", "ended_at"),
    )


class UsageSampleRow(Base):
    """One sample of a running allocation's usage."""

    __tablename__ = "usage_samples"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    allocation_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("allocations.id", ondelete="CASCADE"), nullable=False
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    cpu_seconds: Mapped[float] = mapped_column(Float, nullable=False)
    mem_bytes: Mapped[int] = mapped_column(BigInteger, nullable=False)
    pids: Mapped[int | None] = mapped_column(Integer, nullable=True)

    __table_args__ = (
        Index("ix_usage_samples_allocation_id_at", "allocation_id", "at"),
        # a culled kernel's idle time in usage reports (migration 0004)
        Index("ix_usage_samples_allocation_id_cpu_seconds", "allocation_id", "cpu_seconds", "at"),
    )


class PolicyRow(Base):
    """A policy spec (raw JSON, validated on write) for the default, a group or a user."""

    __tablename__ = "policies"

    scope: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    spec: Mapped[Any] = mapped_column(JSON, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    updated_by: Mapped[str | None] = mapped_column(String(255), nullable=True)

    __table_args__ = (CheckConstraint("scope IN ('default', 'group', 'user')", name="scope"),)


class ProfileRow(Base):
    """A user's default profile: what a kernel started without parameters gets."""

    __tablename__ = "profiles"

    user: Mapped[str] = mapped_column(String(255), primary_key=True)
    request: Mapped[Any] = mapped_column(JSON, nullable=False, default=dict)
    image: Mapped[str | None] = mapped_column(String(512), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)


# The folders (migration 0002), image catalog (0003), jobs (0005), budget notices and start queue (0006)
# tables join this metadata.
from . import models_budgets, models_folders, models_images, models_jobs, models_queue  # noqa: E402,F401

"""The ledger's table for batch jobs (migration ``0005_jobs``).

``jobs``
    One row per notebook run as a batch job: who (owner, groups), what (the
    notebook it was submitted from, its parameters, the image and the resources
    granted), where its files are (``job_dir``: input, output notebook, log and
    side files), the allocation that pays for it while it runs, and how it ended
    (``status``, a short ``reason``, a ``message`` a user reads, the exit code).
    The allocation (kind ``job``) and its usage record do the accounting, as for
    kernels; this row is what the job list, ``berth run`` and jupyter-scheduler read.
    A job that found no room waits ``queued`` in the kernel start queue (migration
    ``0009``), with the ``folders`` it mounts kept for its start; ``started_at`` is
    when its container started (its time limit counts from there).
    A job is keyed by its owner and its id (migration ``0010``): a caller may choose
    the id (jupyter-scheduler sends its own), and one user's choice never meets
    another user's job, so a taken id tells nobody that another user's job exists.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, Float, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, UTCDateTime, utcnow

#: A job's states: ``queued`` while it waits for room, ``running`` until its container ends, then one of the others.
JOB_STATES = ("queued", "running", "completed", "failed", "cancelled")


class JobRow(Base):
    """A notebook run as a batch job in its own container."""

    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner: Mapped[str] = mapped_column(String(255), primary_key=True)
    groups: Mapped[Any] = mapped_column(JSON, nullable=False, default=list)
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    notebook: Mapped[str] = mapped_column(String(1024), nullable=False)
    job_dir: Mapped[str] = mapped_column(String(1024), nullable=False)
    parameters: Mapped[Any] = mapped_column(JSON, nullable=False, default=dict)
    folders: Mapped[Any] = mapped_column(JSON, nullable=True)
    image: Mapped[str] = mapped_column(String(512), nullable=False)
    resources: Mapped[Any] = mapped_column(JSON, nullable=False, default=dict)
    time_limit: Mapped[float | None] = mapped_column(Float, nullable=True)
    allocation_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    container_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="running")
    reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    message: Mapped[str | None] = mapped_column(Text, nullable=True)
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    __table_args__ = (
        CheckConstraint("status IN ('queued', 'running', 'completed', 'failed', 'cancelled')", name="status"),
        Index("ix_jobs_owner_created_at", "owner", "created_at"),
        Index("ix_jobs_status", "status"),
    )

"""The jobs table's queries (synchronous; the service runs them off the loop) and the ``Job`` snapshot.

Queries live here, in the jobs area, not in ``ledger/``: the ledger only holds the table
(``ledger/models_jobs.py``), so the ledger never imports an area.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from ..errors import NotFoundError
from ..ledger import Ledger
from ..ledger.models import utcnow
from ..ledger.models_jobs import JobRow
from ..ledger.records import snapshot


@dataclass(frozen=True)
class Job:
    """One batch job as the ledger holds it (see ``models_jobs.JobRow``)."""

    id: str
    owner: str
    groups: tuple[str, ...]
    name: str
    notebook: str
    job_dir: str
    parameters: dict
    folders: tuple[str, ...]
    image: str
    resources: dict
    time_limit: float | None
    allocation_id: str | None
    container_id: str | None
    status: str
    reason: str | None
    message: str | None
    exit_code: int | None
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None

    @classmethod
    def from_row(cls, row: JobRow) -> Job:
        return snapshot(
            cls,
            row,
            groups=tuple(row.groups or ()),
            parameters=dict(row.parameters or {}),
            folders=tuple(row.folders or ()),
            resources=dict(row.resources or {}),
        )

    @property
    def key(self) -> tuple[str, str]:
        """What names a job: its owner and its id (ids are per owner)."""
        return (self.owner, self.id)

    @property
    def running(self) -> bool:
        return self.status == "running"

    @property
    def queued(self) -> bool:
        return self.status == "queued"

    @property
    def active(self) -> bool:
        """Queued or running: not ended yet."""
        return self.status in ("queued", "running")

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "owner": self.owner,
            "notebook": self.notebook,
            "job_dir": self.job_dir,
            "output": f"{self.job_dir}/output.ipynb",
            "log": f"{self.job_dir}/job.log",
            "parameters": dict(self.parameters),
            "folders": list(self.folders),
            "image": self.image,
            "resources": dict(self.resources),
            "time_limit": self.time_limit,
            "status": self.status,
            "reason": self.reason,
            "message": self.message,
            "exit_code": self.exit_code,
            "created_at": self.created_at.isoformat(),
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
        }


def add(ledger: Ledger, *, status: str = "running", **values) -> Job:
    with ledger.transaction() as s:
        row = JobRow(status=status, started_at=utcnow() if status == "running" else None, **values)
        s.add(row)
        s.flush()
        return Job.from_row(row)


def get(ledger: Ledger, job_id: str, owner: str) -> Job:
    """``owner``'s job ``job_id``; another user's job of that id is "not found", never "forbidden" (ids are per owner)."""
    with ledger.reading() as s:
        row = s.get(JobRow, (job_id, owner))
        if row is None:
            raise NotFoundError(f"no job {job_id!r} of yours")
        return Job.from_row(row)


def find(
    ledger: Ledger, *, owner: str | None = None, status: str | tuple[str, ...] | None = None, limit: int = 200
) -> list[Job]:
    """Newest first; ``status``: one state or several."""
    stmt = select(JobRow).order_by(JobRow.created_at.desc()).limit(limit)
    if owner is not None:
        stmt = stmt.where(JobRow.owner == owner)
    if isinstance(status, str):
        stmt = stmt.where(JobRow.status == status)
    elif status is not None:
        stmt = stmt.where(JobRow.status.in_(status))
    with ledger.reading() as s:
        return [Job.from_row(r) for r in s.scalars(stmt)]


def set_container(ledger: Ledger, owner: str, job_id: str, container_id: str) -> Job:
    with ledger.transaction() as s:
        row = s.get(JobRow, (job_id, owner))
        row.container_id = container_id
        return Job.from_row(row)


def admitted(ledger: Ledger, owner: str, job_id: str, allocation_id: str) -> Job:
    """A queued job got its turn: it now holds ``allocation_id`` and runs from now."""
    with ledger.transaction() as s:
        row = s.get(JobRow, (job_id, owner))
        row.allocation_id, row.status, row.started_at = allocation_id, "running", utcnow()
        return Job.from_row(row)


def finish(
    ledger: Ledger, owner: str, job_id: str, *, status: str, reason: str, message: str, exit_code: int | None
) -> Job | None:
    """Record how a job ended. Idempotent: a job that already ended keeps its first outcome (``None``)."""
    with ledger.transaction() as s:
        row = s.scalars(
            select(JobRow).where(JobRow.id == job_id, JobRow.owner == owner).with_for_update()
        ).one_or_none()
        if row is None:
            raise NotFoundError(f"no job {job_id!r}")
        if row.status not in ("queued", "running"):
            return None
        row.status, row.reason, row.message, row.exit_code = status, reason[:32], message, exit_code
        row.ended_at = utcnow()
        return Job.from_row(row)

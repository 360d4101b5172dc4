"""Queued jobs: a job may wait ``queued`` in the kernel start queue; ``folders`` and ``started_at``.

Revision ID: 0009_queued_jobs
Revises: 0008_disk
Create Date: 2026-12-07

See ``models_jobs``. A job that finds no room (policy ``on_full: queue``) waits in the start
queue as a ``queued`` row; the folders it mounts are kept so that a restarted service can start
it in its turn, and its time limit counts from ``started_at``, not from when it was submitted.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_queued_jobs"
down_revision = "0008_disk"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("folders", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("started_at", sa.DateTime(), nullable=True))
        batch.drop_constraint(op.f("ck_jobs_status"), type_="check")
        batch.create_check_constraint("status", "status IN ('queued', 'running', 'completed', 'failed', 'cancelled')")


def downgrade() -> None:
    op.execute("UPDATE jobs SET status = 'cancelled' WHERE status = 'queued'")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_constraint(op.f("ck_jobs_status"), type_="check")
        batch.create_check_constraint("status", "status IN ('running', 'completed', 'failed', 'cancelled')")
        batch.drop_column("started_at")
        batch.drop_column("folders")

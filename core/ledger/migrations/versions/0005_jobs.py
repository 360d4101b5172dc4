"""Batch jobs: the ``jobs`` table, and ``job`` as an allocation kind.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07

See ``models_jobs``. A job's container is paid for by an allocation of kind
``job`` (same admission, same usage records as kernels), so the ``kind`` check
of ``allocations`` widens. SQLite cannot alter a constraint: batch mode
recreates the table. Names follow ``models.NAMING_CONVENTION``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("allocations") as batch:
        batch.drop_constraint(op.f("ck_allocations_kind"), type_="check")
        batch.create_check_constraint("kind", "kind IN ('kernel', 'server', 'job')")
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("owner", sa.String(length=255), nullable=False),
        sa.Column("groups", sa.JSON(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("notebook", sa.String(length=1024), nullable=False),
        sa.Column("job_dir", sa.String(length=1024), nullable=False),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column("image", sa.String(length=512), nullable=False),
        sa.Column("resources", sa.JSON(), nullable=False),
        sa.Column("time_limit", sa.Float(), nullable=True),
        sa.Column("allocation_id", sa.String(length=36), nullable=True),
        sa.Column("container_id", sa.String(length=128), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.CheckConstraint(
            "status IN ('running', 'completed', 'failed', 'cancelled')", name=op.f("ck_jobs_status")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
    )
    op.create_index("ix_jobs_owner_created_at", "jobs", ["owner", "created_at"])
    op.create_index("ix_jobs_status", "jobs", ["status"])


def downgrade() -> None:
    op.drop_index("ix_jobs_status", table_name="jobs")
    op.drop_index("ix_jobs_owner_created_at", table_name="jobs")
    op.drop_table("jobs")
    op.execute("DELETE FROM allocations WHERE kind = 'job'")
    with op.batch_alter_table("allocations") as batch:
        batch.drop_constraint(op.f("ck_allocations_kind"), type_="check")
        batch.create_check_constraint("kind", "kind IN ('kernel', 'server')")

"""Indexes for usage reports over a time window.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22

A report reads the records that overlap its window (``ended_at > since AND
started_at < until``). The two composite indexes let the database answer that
inside an index whichever end of the history the window lies at (see
``jupyter_berth.usage.sql``). The samples index finds, for a culled kernel, the
sample from which it used (almost) no more CPU: counters only grow, so that is a
seek on ``(allocation_id, cpu_seconds)``. Names follow ``base.NAMING_CONVENTION``.
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_usage_records_ended_at_started_at", "usage_records", ["ended_at", "started_at"])
    op.create_index("ix_usage_records_started_at_ended_at", "usage_records", ["started_at", "ended_at"])
    op.create_index("ix_usage_samples_allocation_id_cpu_seconds", "usage_samples", ["allocation_id", "cpu_seconds", "at"])


def downgrade() -> None:
    op.drop_index("ix_usage_samples_allocation_id_cpu_seconds", table_name="usage_samples")
    op.drop_index("ix_usage_records_started_at_ended_at", table_name="usage_records")
    op.drop_index("ix_usage_records_ended_at_started_at", table_name="usage_records")

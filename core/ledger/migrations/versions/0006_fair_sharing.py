"""Fair sharing: the ``budget_notices`` and ``start_queue`` tables.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07

See ``models_budgets`` and ``models_queue``. Budgets themselves are policy fields (stored
with the policies); their use is summed from the usage records, so only the notices need a table.
Names follow ``models.NAMING_CONVENTION``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "budget_notices",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("allocation_id", sa.String(length=36), nullable=False),
        sa.Column("owner", sa.String(length=255), nullable=False),
        sa.Column("rule", sa.String(length=300), nullable=False),
        sa.Column("period", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("action IN ('warned', 'stopped')", name=op.f("ck_budget_notices_action")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_budget_notices")),
        sa.UniqueConstraint("allocation_id", "rule", "period", "action", name="uq_budget_notices_once"),
    )
    op.create_index("ix_budget_notices_owner_at", "budget_notices", ["owner", "at"])
    op.create_table(
        "start_queue",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("owner", sa.String(length=255), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("cpu", sa.Float(), nullable=False),
        sa.Column("mem", sa.BigInteger(), nullable=False),
        sa.Column("gpu", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("deadline", sa.DateTime(), nullable=False),
        sa.Column("seen_at", sa.DateTime(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.CheckConstraint(
            "state IN ('waiting', 'admitted', 'expired', 'cancelled')", name=op.f("ck_start_queue_state")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_start_queue")),
    )
    op.create_index("ix_start_queue_state_id", "start_queue", ["state", "id"])
    op.create_index("ix_start_queue_owner_subject", "start_queue", ["owner", "subject"])


def downgrade() -> None:
    op.drop_index("ix_start_queue_owner_subject", table_name="start_queue")
    op.drop_index("ix_start_queue_state_id", table_name="start_queue")
    op.drop_table("start_queue")
    op.drop_index("ix_budget_notices_owner_at", table_name="budget_notices")
    op.drop_table("budget_notices")

"""Budgets per period: the ``budget_notices`` table.

Revision ID: 0006
Revises: 0004 (on the ``fair`` branch; becomes 0005 once ``jobs`` is merged: change
``down_revision`` to "0005" then)
Create Date: 2026-12-07

See ``models_budgets``. Budgets themselves are policy fields (stored with the policies);
their use is summed from the usage records, so only the notices need a table.
Names follow ``models.NAMING_CONVENTION``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0004"
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


def downgrade() -> None:
    op.drop_index("ix_budget_notices_owner_at", table_name="budget_notices")
    op.drop_table("budget_notices")

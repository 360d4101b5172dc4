"""Named servers: the ``server`` column of ``allocations``.

Revision ID: 0007_server
Revises: 0006
Create Date: 2026-12-07

The hub server (its name; "" the default one) whose kernel an allocation is (``server_scope``):
a server's sidebar lists and stops its own kernels, and a stopped server's kernels are stopped
with it. Allocations made before have none (shown with the default server).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_server"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("allocations") as batch:
        batch.add_column(sa.Column("server", sa.String(length=255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("allocations") as batch:
        batch.drop_column("server")

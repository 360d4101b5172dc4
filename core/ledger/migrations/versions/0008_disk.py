"""Disk limits: the ``disk`` column of ``allocations``.

Revision ID: 0008_disk
Revises: 0007_server
Create Date: 2026-12-07

A kernel's or server's ``disk`` (bytes it may write outside its volumes and folders), a resource
kind of the registry (``resources.py``): admission stores it, ``live_usage`` totals it for
``total_disk``. Allocations made before have none (their kind's default applies when read).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_disk"
down_revision = "0007_server"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("allocations") as batch:
        batch.add_column(sa.Column("disk", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("allocations") as batch:
        batch.drop_column("disk")

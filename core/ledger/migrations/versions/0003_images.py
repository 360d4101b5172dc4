"""The image catalog: offered, hidden, default, aliases, retired.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22

Tables of ``models_images``: ``image_states`` (an admin's decision per image
reference), ``image_aliases`` (pinned aliases) and ``image_events`` (who changed
what, when).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "image_states",
        sa.Column("ref", sa.String(length=255), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.Column("digest", sa.String(length=255), nullable=True),
        sa.Column("source", sa.String(length=255), nullable=True),
        sa.Column("replacement", sa.String(length=255), nullable=True),
        sa.Column("note", sa.String(length=1024), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("updated_by", sa.String(length=255), nullable=True),
        sa.CheckConstraint("state IN ('offered', 'hidden', 'retired')", name=op.f("ck_image_states_state")),
        sa.PrimaryKeyConstraint("ref", name=op.f("pk_image_states")),
    )
    op.create_table(
        "image_aliases",
        sa.Column("alias", sa.String(length=255), nullable=False),
        sa.Column("digest", sa.String(length=255), nullable=False),
        sa.Column("target", sa.String(length=255), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("updated_by", sa.String(length=255), nullable=True),
        sa.PrimaryKeyConstraint("alias", name=op.f("pk_image_aliases")),
    )
    op.create_table(
        "image_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("by", sa.String(length=255), nullable=True),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("ref", sa.String(length=255), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_image_events")),
    )
    op.create_index("ix_image_events_ref_at", "image_events", ["ref", "at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_image_events_ref_at", table_name="image_events")
    op.drop_table("image_events")
    op.drop_table("image_aliases")
    op.drop_table("image_states")

"""Virtual folders and their shares: folders, folder_shares, folder_quotas.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22

See ``models_folders``. Constraint and index names follow ``base.NAMING_CONVENTION``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "folders",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("owner_kind", sa.String(length=8), nullable=False),
        sa.Column("owner", sa.String(length=255), nullable=False),
        sa.Column("member_mode", sa.String(length=2), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=255), nullable=True),
        sa.CheckConstraint("owner_kind IN ('user', 'group')", name=op.f("ck_folders_owner_kind")),
        sa.CheckConstraint("member_mode IS NULL OR member_mode IN ('ro', 'rw')", name=op.f("ck_folders_member_mode")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_folders")),
        sa.UniqueConstraint("owner_kind", "owner", "name", name="uq_folders_owner_name"),
    )
    op.create_table(
        "folder_shares",
        sa.Column("folder_id", sa.String(length=32), nullable=False),
        sa.Column("grantee_kind", sa.String(length=8), nullable=False),
        sa.Column("grantee", sa.String(length=255), nullable=False),
        sa.Column("mode", sa.String(length=2), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=255), nullable=True),
        sa.CheckConstraint("grantee_kind IN ('user', 'group')", name=op.f("ck_folder_shares_grantee_kind")),
        sa.CheckConstraint("mode IN ('ro', 'rw')", name=op.f("ck_folder_shares_mode")),
        sa.ForeignKeyConstraint(["folder_id"], ["folders.id"], name=op.f("fk_folder_shares_folder_id_folders"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("folder_id", "grantee_kind", "grantee", name=op.f("pk_folder_shares")),
    )
    op.create_index("ix_folder_shares_grantee", "folder_shares", ["grantee_kind", "grantee"], unique=False)
    op.create_table(
        "folder_quotas",
        sa.Column("owner_kind", sa.String(length=8), nullable=False),
        sa.Column("owner", sa.String(length=255), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("updated_by", sa.String(length=255), nullable=True),
        sa.CheckConstraint("owner_kind IN ('user', 'group')", name=op.f("ck_folder_quotas_owner_kind")),
        sa.PrimaryKeyConstraint("owner_kind", "owner", name=op.f("pk_folder_quotas")),
    )


def downgrade() -> None:
    op.drop_table("folder_quotas")
    op.drop_index("ix_folder_shares_grantee", table_name="folder_shares")
    op.drop_table("folder_shares")
    op.drop_table("folders")

"""The initial ledger schema: nodes, allocations, usage records and samples, policies, profiles.

Revision ID: 0001
Revises:
Create Date: 2026-11-22

Timestamps are naive UTC (the models" ``UTCDateTime`` wraps ``sa.DateTime``).
Constraint and index names follow ``base.NAMING_CONVENTION``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "nodes",
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("cpu", sa.Float(), nullable=False),
        sa.Column("mem", sa.BigInteger(), nullable=False),
        sa.Column("gpu", sa.JSON(), nullable=True),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("state IN ('ready', 'draining', 'down')", name=op.f("ck_nodes_state")),
        sa.CheckConstraint("cpu >= 0 AND mem >= 0", name=op.f("ck_nodes_capacity")),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_nodes")),
    )
    op.create_table(
        "policies",
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("updated_by", sa.String(length=255), nullable=True),
        sa.CheckConstraint("scope IN ('default', 'group', 'user')", name=op.f("ck_policies_scope")),
        sa.PrimaryKeyConstraint("scope", "name", name=op.f("pk_policies")),
    )
    op.create_table(
        "profiles",
        sa.Column("user", sa.String(length=255), nullable=False),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("image", sa.String(length=512), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("user", name=op.f("pk_profiles")),
    )
    op.create_table(
        "usage_records",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("allocation_id", sa.String(length=36), nullable=False),
        sa.Column("owner", sa.String(length=255), nullable=False),
        sa.Column("groups", sa.JSON(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("image", sa.String(length=512), nullable=False),
        sa.Column("image_digest", sa.String(length=255), nullable=True),
        sa.Column("node", sa.String(length=255), nullable=False),
        sa.Column("cpu", sa.Float(), nullable=False),
        sa.Column("mem", sa.BigInteger(), nullable=False),
        sa.Column("gpu", sa.Float(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("ended_at", sa.DateTime(), nullable=False),
        sa.Column("cpu_seconds", sa.Float(), nullable=False),
        sa.Column("mem_peak_bytes", sa.BigInteger(), nullable=False),
        sa.Column("end_reason", sa.String(length=32), nullable=False),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_records")),
        sa.UniqueConstraint("allocation_id", name=op.f("uq_usage_records_allocation_id")),
    )
    op.create_index("ix_usage_records_ended_at", "usage_records", ["ended_at"], unique=False)
    op.create_index("ix_usage_records_owner_ended_at", "usage_records", ["owner", "ended_at"], unique=False)
    op.create_table(
        "allocations",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("owner", sa.String(length=255), nullable=False),
        sa.Column("groups", sa.JSON(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("image", sa.String(length=512), nullable=False),
        sa.Column("image_digest", sa.String(length=255), nullable=True),
        sa.Column("node", sa.String(length=255), nullable=False),
        sa.Column("cpu", sa.Float(), nullable=False),
        sa.Column("mem", sa.BigInteger(), nullable=False),
        sa.Column("pids", sa.Integer(), nullable=False),
        sa.Column("shm", sa.BigInteger(), nullable=False),
        sa.Column("gpu", sa.Float(), nullable=False),
        sa.Column("gpu_devices", sa.JSON(), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("container_id", sa.String(length=128), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("released_at", sa.DateTime(), nullable=True),
        sa.Column("release_reason", sa.String(length=32), nullable=True),
        sa.Column("cpu_seconds", sa.Float(), nullable=True),
        sa.Column("mem_bytes", sa.BigInteger(), nullable=True),
        sa.Column("mem_peak_bytes", sa.BigInteger(), nullable=True),
        sa.Column("sampled_at", sa.DateTime(), nullable=True),
        sa.CheckConstraint("kind IN ('kernel', 'server')", name=op.f("ck_allocations_kind")),
        sa.CheckConstraint("state IN ('reserved', 'running', 'released')", name=op.f("ck_allocations_state")),
        sa.ForeignKeyConstraint(["node"], ["nodes.name"], name=op.f("fk_allocations_node_nodes")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_allocations")),
    )
    op.create_index("ix_allocations_node_state", "allocations", ["node", "state"], unique=False)
    op.create_index("ix_allocations_owner_state", "allocations", ["owner", "state"], unique=False)
    op.create_table(
        "usage_samples",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("allocation_id", sa.String(length=36), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("cpu_seconds", sa.Float(), nullable=False),
        sa.Column("mem_bytes", sa.BigInteger(), nullable=False),
        sa.Column("pids", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["allocation_id"],
            ["allocations.id"],
            name=op.f("fk_usage_samples_allocation_id_allocations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_samples")),
    )
    op.create_index("ix_usage_samples_allocation_id_at", "usage_samples", ["allocation_id", "at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_usage_samples_allocation_id_at", table_name="usage_samples")
    op.drop_table("usage_samples")
    op.drop_index("ix_allocations_owner_state", table_name="allocations")
    op.drop_index("ix_allocations_node_state", table_name="allocations")
    op.drop_table("allocations")
    op.drop_index("ix_usage_records_owner_ended_at", table_name="usage_records")
    op.drop_index("ix_usage_records_ended_at", table_name="usage_records")
    op.drop_table("usage_records")
    op.drop_table("profiles")
    op.drop_table("policies")
    op.drop_table("nodes")

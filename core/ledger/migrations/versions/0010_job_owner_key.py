"""Jobs keyed by owner and id: a caller-chosen job id is its owner's own.

Revision ID: 0010_job_owner_key
Revises: 0009_queued_jobs
Create Date: 2026-12-08

See ``models_jobs``. jupyter-scheduler sends its own job id; with the id alone as the key,
a user choosing an id another user's job had was refused ("taken"), which told that the
other user's job existed. Keyed by ``(id, owner)``, each user's ids are their own. Existing
rows keep their ids (they were unique across owners, so they stay unique per owner).
SQLite cannot alter a primary key: batch mode recreates the table.
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from alembic import op

revision = "0010_job_owner_key"
down_revision = "0009_queued_jobs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_constraint(op.f("pk_jobs"), type_="primary")
        batch.create_primary_key(op.f("pk_jobs"), ["id", "owner"])


def downgrade() -> None:
    # an id two owners share cannot be the key alone again: all but its oldest job get a new id
    bind = op.get_bind()
    rows = bind.execute(sa.text("SELECT id, owner FROM jobs ORDER BY created_at")).fetchall()
    seen: set[str] = set()
    for job_id, owner in rows:
        if job_id in seen:
            bind.execute(
                sa.text("UPDATE jobs SET id = :new WHERE id = :id AND owner = :owner"),
                {"new": str(uuid.uuid4()), "id": job_id, "owner": owner},
            )
        seen.add(job_id)
    with op.batch_alter_table("jobs") as batch:
        batch.drop_constraint(op.f("pk_jobs"), type_="primary")
        batch.create_primary_key(op.f("pk_jobs"), ["id"])

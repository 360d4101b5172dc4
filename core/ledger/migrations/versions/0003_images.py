"""The image catalog: offered, hidden, default, aliases, retired.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass  # tables are added by the images work (lead: reserved revision slot)


def downgrade() -> None:
    pass

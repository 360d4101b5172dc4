"""The ledger's table for budget notices (migration ``0006``).

``budget_notices``
    What the service told or did to a running allocation because a budget ran low or out:
    ``action`` is ``warned`` (once per allocation, rule and period) or ``stopped``; ``rule``
    names the budget (``user:ada:cpu_hours`` or ``group:class-a:gpu_hours``), ``period`` its
    label (``2026-12`` or a term's name) and ``message`` the words the user reads. The sidebar
    and ``GET berth/api/budget`` show a user the notices of their kernels; the usage record of a
    stopped kernel carries the same message with the end reason ``budget``.

How much of a budget is used is not stored: it is summed from ``usage_records`` and the live
``allocations`` (see ``jupyter_berth.budget_use``), so there is one truth for usage.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, UTCDateTime, utcnow


class BudgetNoticeRow(Base):
    """A warning given to, or a stop of, one allocation because of one budget rule."""

    __tablename__ = "budget_notices"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    allocation_id: Mapped[str] = mapped_column(String(36), nullable=False)
    owner: Mapped[str] = mapped_column(String(255), nullable=False)
    rule: Mapped[str] = mapped_column(String(300), nullable=False)
    period: Mapped[str] = mapped_column(String(64), nullable=False)
    action: Mapped[str] = mapped_column(String(16), nullable=False)
    message: Mapped[str] = mapped_column(Text, nullable=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)

    __table_args__ = (
        CheckConstraint("action IN ('warned', 'stopped')", name="action"),
        UniqueConstraint("allocation_id", "rule", "period", "action", name="uq_budget_notices_once"),
        Index("ix_budget_notices_owner_at", "owner", "at"),
    )

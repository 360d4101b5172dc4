"""The ledger's table for the kernel start queue (migration ``0006``).

``start_queue``
    One row per start that found no room and waits for it (policy ``on_full: queue``): the
    owner and kernel id, what it asks for, when it began waiting and until when it may
    (``deadline``), when its waiter last looked (``seen_at``) and its ``state``: ``waiting``,
    ``admitted`` (admission reserved it, in the same transaction), ``expired`` or
    ``cancelled``. The id is the place in line (FIFO). A waiting row outlives a service
    restart: the client's retry of the same kernel id finds its place again.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, Float, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, UTCDateTime, utcnow


class StartQueueRow(Base):
    """A start waiting for room, in line by id."""

    __tablename__ = "start_queue"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    owner: Mapped[str] = mapped_column(String(255), nullable=False)
    subject: Mapped[str] = mapped_column(String(255), nullable=False)
    cpu: Mapped[float] = mapped_column(Float, nullable=False)
    mem: Mapped[int] = mapped_column(BigInteger, nullable=False)
    gpu: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    deadline: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    state: Mapped[str] = mapped_column(String(16), nullable=False, default="waiting")

    __table_args__ = (
        CheckConstraint("state IN ('waiting', 'admitted', 'expired', 'cancelled')", name="state"),
        Index("ix_start_queue_state_id", "state", "id"),
        Index("ix_start_queue_owner_subject", "owner", "subject"),
    )

"""The ledger's tables for the image catalog (migration ``0003_images``).

``image_states``
    What an admin decided about one image reference (``berth/python:3.11``):
    ``offered``, ``hidden`` (not listed, not startable; reversible) or
    ``retired`` (no new kernels; running ones keep going; notebooks that ask
    for it are pointed at ``replacement`` or the nearest offered version).
    At most one row is the ``is_default``. ``digest`` is the image id the
    reference held when the decision was made; ``source`` the registry
    reference it was pulled from, if any. An image with no row is offered or
    hidden as ``ImageCatalog.offer_new_images`` says.
``image_aliases``
    A pinned alias: ``berth/python:latest`` → one image id (``digest``), kept
    as a tag on the engine too; ``target`` is the reference it was pinned from.
``image_events``
    Who changed what in the catalog, and when (offer, hide, retire, default,
    alias, pull, build, remove).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, CheckConstraint, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, UTCDateTime, utcnow

#: What an admin can make of an image reference.
IMAGE_STATES = ("offered", "hidden", "retired")


class ImageStateRow(Base):
    """An admin's decision about one image reference."""

    __tablename__ = "image_states"

    ref: Mapped[str] = mapped_column(String(255), primary_key=True)
    state: Mapped[str] = mapped_column(String(16), nullable=False)
    is_default: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    digest: Mapped[str | None] = mapped_column(String(255), nullable=True)
    source: Mapped[str | None] = mapped_column(String(255), nullable=True)
    replacement: Mapped[str | None] = mapped_column(String(255), nullable=True)
    note: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    updated_by: Mapped[str | None] = mapped_column(String(255), nullable=True)

    __table_args__ = (CheckConstraint("state IN ('offered', 'hidden', 'retired')", name="state"),)


class ImageAliasRow(Base):
    """A pinned alias: a reference that always means one image id."""

    __tablename__ = "image_aliases"

    alias: Mapped[str] = mapped_column(String(255), primary_key=True)
    digest: Mapped[str] = mapped_column(String(255), nullable=False)
    target: Mapped[str | None] = mapped_column(String(255), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    updated_by: Mapped[str | None] = mapped_column(String(255), nullable=True)


class ImageEventRow(Base):
    """One change to the catalog: who, when, what."""

    __tablename__ = "image_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    by: Mapped[str | None] = mapped_column(String(255), nullable=True)
    action: Mapped[str] = mapped_column(String(32), nullable=False)
    ref: Mapped[str] = mapped_column(String(255), nullable=False)
    detail: Mapped[Any] = mapped_column(JSON, nullable=False, default=dict)

    __table_args__ = (Index("ix_image_events_ref_at", "ref", "at"),)

"""The ledger's tables for virtual folders (migration ``0002``).

``folders``
    One row per folder: its id (also the last part of its host path), name (unique per
    owner), owner (a user or a group), the access a group folder's members get
    (``member_mode``), and who created it when. The host path is not stored: the service
    computes it from the id and owner (``<data_dir>/folders/<owner kind>/<owner>/<id>``),
    so a row can never point a mount at an arbitrary place.
``folder_shares``
    Grants of ``ro`` or ``rw`` on a folder to a user or to every member of a group.
``folder_quotas``
    Per-owner quota overrides an admin stored at run time (``berth folders quota``), as a
    JSON spec; they take precedence over the configured quotas field by field.

Which running kernels mount a folder is not stored here: the engine is the truth for
what runs, and the service asks it (see ``docs/folders.md``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, UTCDateTime, utcnow


class FolderRow(Base):
    """A virtual folder owned by a user or a group."""

    __tablename__ = "folders"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), nullable=False)
    owner_kind: Mapped[str] = mapped_column(String(8), nullable=False)
    owner: Mapped[str] = mapped_column(String(255), nullable=False)
    #: access of a group folder's members (``ro``/``rw``); ``NULL`` for user folders
    member_mode: Mapped[str | None] = mapped_column(String(2), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(255), nullable=True)

    __table_args__ = (
        CheckConstraint("owner_kind IN ('user', 'group')", name="owner_kind"),
        CheckConstraint("member_mode IS NULL OR member_mode IN ('ro', 'rw')", name="member_mode"),
        UniqueConstraint("owner_kind", "owner", "name", name="uq_folders_owner_name"),
    )


class FolderShareRow(Base):
    """``mode`` on a folder for a user or a group."""

    __tablename__ = "folder_shares"

    folder_id: Mapped[str] = mapped_column(String(32), ForeignKey("folders.id", ondelete="CASCADE"), primary_key=True)
    grantee_kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    grantee: Mapped[str] = mapped_column(String(255), primary_key=True)
    mode: Mapped[str] = mapped_column(String(2), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(255), nullable=True)

    __table_args__ = (
        CheckConstraint("grantee_kind IN ('user', 'group')", name="grantee_kind"),
        CheckConstraint("mode IN ('ro', 'rw')", name="mode"),
        Index("ix_folder_shares_grantee", "grantee_kind", "grantee"),
    )


class FolderQuotaRow(Base):
    """A quota override for one owner: ``{"max_bytes": …, "max_folders": …, "max_files": …}``."""

    __tablename__ = "folder_quotas"

    owner_kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    owner: Mapped[str] = mapped_column(String(255), primary_key=True)
    spec: Mapped[Any] = mapped_column(JSON, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    updated_by: Mapped[str | None] = mapped_column(String(255), nullable=True)

    __table_args__ = (CheckConstraint("owner_kind IN ('user', 'group')", name="owner_kind"),)

"""Folder rows in the ledger: queries and changes (synchronous; the service runs them in its executor).

Every function opens its own transaction on the :class:`~jupyter_berth.ledger.Ledger`
and returns frozen :class:`~jupyter_berth.folders.Folder` / ``Share`` records, never
live ORM rows.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..errors import ConflictError, NotFoundError, PolicyError
from ..ledger import Ledger
from ..ledger.base import utcnow
from ..ledger.models_folders import FolderQuotaRow, FolderRow, FolderShareRow
from .model import Folder, Share


def _share(row: FolderShareRow) -> Share:
    return Share(
        folder_id=row.folder_id,
        kind=row.grantee_kind,
        name=row.grantee,
        mode=row.mode,
        created_at=row.created_at,
        created_by=row.created_by,
    )


def _folders(s: Session, rows: Iterable[FolderRow]) -> list[Folder]:
    rows = list(rows)
    shares: dict[str, list[Share]] = {r.id: [] for r in rows}
    if rows:
        for sr in s.scalars(
            select(FolderShareRow)
            .where(FolderShareRow.folder_id.in_(list(shares)))
            .order_by(FolderShareRow.grantee_kind, FolderShareRow.grantee)
        ):
            shares[sr.folder_id].append(_share(sr))
    return [
        Folder(
            id=r.id,
            name=r.name,
            owner_kind=r.owner_kind,
            owner=r.owner,
            member_mode=r.member_mode,
            created_at=r.created_at,
            created_by=r.created_by,
            shares=tuple(shares[r.id]),
        )
        for r in rows
    ]


def visible(
    ledger: Ledger, user: str, groups: Iterable[str], admin_of: Iterable[str] = (), *, all_groups: bool = False
) -> list[Folder]:
    """Folders a caller may see: their own, their groups' (and those of groups they administer), shared ones.

    ``all_groups`` adds every group folder (hub admins).
    """
    groups, admin_of = sorted(set(groups)), sorted(set(admin_of))
    shared = select(FolderShareRow.folder_id).where(
        or_(
            and_(FolderShareRow.grantee_kind == "user", FolderShareRow.grantee == user),
            and_(FolderShareRow.grantee_kind == "group", FolderShareRow.grantee.in_(groups)),
        )
    )
    group_clause = (
        (FolderRow.owner_kind == "group")
        if all_groups
        else and_(FolderRow.owner_kind == "group", FolderRow.owner.in_(sorted(set(groups) | set(admin_of))))
    )
    query = (
        select(FolderRow)
        .where(
            or_(
                and_(FolderRow.owner_kind == "user", FolderRow.owner == user),
                group_clause,
                FolderRow.id.in_(shared),
            )
        )
        .order_by(FolderRow.owner_kind, FolderRow.owner, FolderRow.name)
    )
    with ledger.reading() as s:
        return _folders(s, s.scalars(query))


def owned_by(ledger: Ledger, kind: str | None = None, owner: str | None = None) -> list[Folder]:
    """Folders of one owner (or of every owner of a kind, or all)."""
    query = select(FolderRow).order_by(FolderRow.owner_kind, FolderRow.owner, FolderRow.name)
    if kind:
        query = query.where(FolderRow.owner_kind == kind)
    if owner is not None:
        query = query.where(FolderRow.owner == owner)
    with ledger.reading() as s:
        return _folders(s, s.scalars(query))


def get(ledger: Ledger, folder_id: str) -> Folder | None:
    with ledger.reading() as s:
        row = s.get(FolderRow, folder_id)
        return _folders(s, [row])[0] if row else None


def create(
    ledger: Ledger,
    *,
    name: str,
    owner_kind: str,
    owner: str,
    member_mode: str | None,
    created_by: str | None,
    max_folders: int | None = None,
) -> Folder:
    """Add a folder row; the name must be free for this owner, and ``max_folders`` not reached (checked in the same transaction)."""
    with ledger.transaction() as s:
        count = s.scalar(
            select(func.count())
            .select_from(FolderRow)
            .where(FolderRow.owner_kind == owner_kind, FolderRow.owner == owner)
        )
        if max_folders is not None and count + 1 > max_folders:
            raise PolicyError(
                f"cannot create folder {name!r}: {owner_kind} {owner} has {count} of at most {max_folders} "
                "folders; delete one, or ask an admin to raise the folder quota",
                limit="max_folders",
            )
        if s.scalar(
            select(FolderRow.id).where(
                FolderRow.owner_kind == owner_kind, FolderRow.owner == owner, FolderRow.name == name
            )
        ):
            raise ConflictError(f"{owner_kind} {owner} already has a folder named {name!r}; pick another name")
        row = FolderRow(
            id=uuid.uuid4().hex,
            name=name,
            owner_kind=owner_kind,
            owner=owner,
            member_mode=member_mode,
            created_at=utcnow(),
            created_by=created_by,
        )
        s.add(row)
        try:
            s.flush()
        except IntegrityError:  # a concurrent create of the same name won the race
            raise ConflictError(
                f"{owner_kind} {owner} already has a folder named {name!r}; pick another name"
            ) from None
        return _folders(s, [row])[0]


def update(ledger: Ledger, folder_id: str, *, name: str | None = None, member_mode: str | None = None) -> Folder:
    """Rename a folder and/or change what a group folder's members get."""
    with ledger.transaction() as s:
        row = s.get(FolderRow, folder_id)
        if row is None:
            raise NotFoundError("that folder no longer exists")
        if name is not None and name != row.name:
            if s.scalar(
                select(FolderRow.id).where(
                    FolderRow.owner_kind == row.owner_kind, FolderRow.owner == row.owner, FolderRow.name == name
                )
            ):
                raise ConflictError(
                    f"{row.owner_kind} {row.owner} already has a folder named {name!r}; pick another name"
                )
            row.name = name
        if member_mode is not None:
            row.member_mode = member_mode
        s.flush()
        return _folders(s, [row])[0]


def remove(ledger: Ledger, folder_id: str) -> bool:
    with ledger.transaction() as s:
        s.execute(delete(FolderShareRow).where(FolderShareRow.folder_id == folder_id))
        return bool(s.execute(delete(FolderRow).where(FolderRow.id == folder_id)).rowcount)


def set_share(ledger: Ledger, folder_id: str, kind: str, grantee: str, mode: str, by: str | None) -> Share:
    """Create or change a share."""
    with ledger.transaction() as s:
        if s.get(FolderRow, folder_id) is None:
            raise NotFoundError("that folder no longer exists")
        row = s.get(FolderShareRow, (folder_id, kind, grantee))
        if row is None:
            row = FolderShareRow(folder_id=folder_id, grantee_kind=kind, grantee=grantee)
            s.add(row)
        row.mode, row.created_at, row.created_by = mode, utcnow(), by
        s.flush()
        return _share(row)


def remove_share(ledger: Ledger, folder_id: str, kind: str, grantee: str) -> bool:
    with ledger.transaction() as s:
        return bool(
            s.execute(
                delete(FolderShareRow).where(
                    FolderShareRow.folder_id == folder_id,
                    FolderShareRow.grantee_kind == kind,
                    FolderShareRow.grantee == grantee,
                )
            ).rowcount
        )


def quota_overrides(ledger: Ledger) -> dict[tuple[str, str], dict]:
    with ledger.reading() as s:
        return {(r.owner_kind, r.owner): dict(r.spec) for r in s.scalars(select(FolderQuotaRow))}


def set_quota_override(ledger: Ledger, kind: str, owner: str, spec: Mapping[str, Any] | None, by: str | None) -> None:
    """Store (or with ``spec=None`` remove) an owner's quota override."""
    with ledger.transaction() as s:
        row = s.get(FolderQuotaRow, (kind, owner))
        if spec is None:
            if row is not None:
                s.delete(row)
            return
        if row is None:
            row = FolderQuotaRow(owner_kind=kind, owner=owner)
            s.add(row)
        row.spec, row.updated_at, row.updated_by = dict(spec), utcnow(), by

"""The admin's decisions about images, kept in the ledger (tables of ``ledger/models_images.py``).

Synchronous functions over a :class:`~jupyter_berth.ledger.Ledger` (the async
service calls them through its executor). Each change is one transaction that
also writes an ``image_events`` row saying who did what. Results are frozen
records, never live ORM rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update

from ..errors import RequestError
from ..ledger.base import utcnow
from ..ledger.models_images import IMAGE_STATES, ImageAliasRow, ImageEventRow, ImageStateRow


@dataclass(frozen=True)
class ImageState:
    """An admin's decision about one reference."""

    ref: str
    state: str
    is_default: bool
    digest: str | None
    source: str | None
    replacement: str | None
    note: str | None
    updated_at: datetime
    updated_by: str | None

    @classmethod
    def from_row(cls, row: ImageStateRow) -> ImageState:
        return cls(
            row.ref,
            row.state,
            bool(row.is_default),
            row.digest,
            row.source,
            row.replacement,
            row.note,
            row.updated_at,
            row.updated_by,
        )


@dataclass(frozen=True)
class ImageAlias:
    """A pinned alias: ``alias`` always means the image id ``digest``."""

    alias: str
    digest: str
    target: str | None
    updated_at: datetime
    updated_by: str | None

    @classmethod
    def from_row(cls, row: ImageAliasRow) -> ImageAlias:
        return cls(row.alias, row.digest, row.target, row.updated_at, row.updated_by)


@dataclass(frozen=True)
class ImageEvent:
    at: datetime
    by: str | None
    action: str
    ref: str
    detail: dict

    def to_json(self) -> dict:
        return {
            "at": self.at.isoformat(),
            "by": self.by,
            "action": self.action,
            "ref": self.ref,
            "detail": dict(self.detail),
        }


def load(ledger) -> tuple[dict[str, ImageState], dict[str, ImageAlias]]:
    """Every decision and alias, by reference."""
    with ledger.reading() as s:
        states = {r.ref: ImageState.from_row(r) for r in s.scalars(select(ImageStateRow))}
        aliases = {r.alias: ImageAlias.from_row(r) for r in s.scalars(select(ImageAliasRow))}
    return states, aliases


def _event(s, by: str | None, action: str, ref: str, **detail: Any) -> None:
    s.add(
        ImageEventRow(
            at=utcnow(), by=by, action=action, ref=ref, detail={k: v for k, v in detail.items() if v is not None}
        )
    )


def set_state(
    ledger,
    ref: str,
    state: str,
    *,
    by: str | None,
    digest: str | None = None,
    source: str | None = None,
    replacement: str | None = None,
    note: str | None = None,
    action: str | None = None,
) -> ImageState:
    """Record ``ref`` as offered, hidden or retired (a retired or hidden image stops being the default)."""
    if state not in IMAGE_STATES:
        raise RequestError("state", f"{state!r} is not an image state; expected one of {', '.join(IMAGE_STATES)}")
    with ledger.transaction() as s:
        row = s.get(ImageStateRow, ref) or ImageStateRow(ref=ref, is_default=False)
        row.state, row.updated_at, row.updated_by = state, utcnow(), by
        row.digest = digest or row.digest
        row.source = source or row.source
        row.replacement = replacement if state == "retired" else None
        row.note = note if note is not None else row.note
        if state != "offered":
            row.is_default = False
        s.add(row)
        _event(s, by, action or state, ref, digest=digest, source=source, replacement=replacement, note=note)
        s.flush()
        return ImageState.from_row(row)


def set_default(ledger, ref: str, *, by: str | None, digest: str | None = None) -> ImageState:
    """Make ``ref`` the one default (it becomes offered if it had no decision yet)."""
    with ledger.transaction() as s:
        s.execute(
            update(ImageStateRow)
            .where(ImageStateRow.is_default.is_(True), ImageStateRow.ref != ref)
            .values(is_default=False)
        )
        row = s.get(ImageStateRow, ref) or ImageStateRow(ref=ref, state="offered")
        row.is_default, row.updated_at, row.updated_by = True, utcnow(), by
        row.digest = digest or row.digest
        s.add(row)
        _event(s, by, "default", ref, digest=digest)
        s.flush()
        return ImageState.from_row(row)


def set_alias(ledger, alias: str, digest: str, *, target: str | None, by: str | None) -> ImageAlias:
    """Pin ``alias`` to the image id ``digest`` (and offer it, unless an admin decided otherwise)."""
    with ledger.transaction() as s:
        row = s.get(ImageAliasRow, alias) or ImageAliasRow(alias=alias)
        previous = row.digest
        row.digest, row.target, row.updated_at, row.updated_by = digest, target, utcnow(), by
        s.add(row)
        if s.get(ImageStateRow, alias) is None:
            s.add(
                ImageStateRow(
                    ref=alias, state="offered", is_default=False, digest=digest, updated_at=utcnow(), updated_by=by
                )
            )
        _event(s, by, "alias", alias, digest=digest, target=target, previous=previous)
        s.flush()
        return ImageAlias.from_row(row)


def delete_alias(ledger, alias: str, *, by: str | None) -> bool:
    """Forget an alias and its decision; ``False`` if there was none."""
    with ledger.transaction() as s:
        gone = s.execute(delete(ImageAliasRow).where(ImageAliasRow.alias == alias)).rowcount > 0
        if gone:
            s.execute(delete(ImageStateRow).where(ImageStateRow.ref == alias))
            _event(s, by, "unalias", alias)
        return gone


def record_event(ledger, action: str, ref: str, *, by: str | None, **detail: Any) -> None:
    """Write one event (pull, build, remove) without changing a decision."""
    with ledger.transaction() as s:
        _event(s, by, action, ref, **detail)


def events(ledger, ref: str | None = None, limit: int = 100) -> list[ImageEvent]:
    """The latest events, newest first (of one reference when ``ref`` is given)."""
    stmt = select(ImageEventRow).order_by(ImageEventRow.at.desc(), ImageEventRow.id.desc()).limit(limit)
    if ref is not None:
        stmt = stmt.where(ImageEventRow.ref == ref)
    with ledger.reading() as s:
        return [ImageEvent(r.at, r.by, r.action, r.ref, dict(r.detail or {})) for r in s.scalars(stmt)]

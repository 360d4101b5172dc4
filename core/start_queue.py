"""The kernel start queue: a start that finds no room waits in line instead of failing.

A policy's ``on_full`` says what a kernel start does when a host or a group total is full
right now (a :class:`CapacityError` that is not ``never_fits``): ``"refuse"`` (the default)
or ``"queue"``: wait, first come first served, at most ``queue_timeout`` seconds (default 300).

- **In line:** the waiter gets a ``start_queue`` row; its id is its place. It retries every
  ``poll`` seconds; each retry is an ordinary reservation that names the row.
- **Atomic with admission:** inside the reservation's transaction (after its locks),
  :func:`gate` lets through only the oldest live waiter and marks it ``admitted`` in that
  same transaction; any other start, queued or new, is refused while someone waits ahead
  of it ("2 starts are waiting ahead of you"), so nobody jumps the line and nothing is
  ever reserved beyond capacity (the capacity checks are admission's own).
- **No lost turns:** the rows are in the ledger. After a service restart the client's
  retry of the same kernel id finds its row and its place; a waiter not seen for
  :data:`STALE_SECONDS` does not hold up the line meanwhile (it keeps its place for when it
  comes back), and one past its deadline is expired.
- **Timeout:** the start fails with the last refusal's message and how long it waited.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from .errors import CapacityError
from .ledger.models_queue import StartQueueRow

#: A waiter that has not retried for this long does not block the line (it keeps its place).
STALE_SECONDS = 30.0
DEFAULT_TIMEOUT = 300


class StartCancelled(CapacityError):
    """A waiting start was taken out of the line by its owner (``cancel``)."""


def _now() -> datetime:
    return datetime.now(timezone.utc)


def gate(s: Session, queue_id: int | None) -> None:
    """Inside admission's transaction: refuse unless no live waiter is ahead; admit ``queue_id``'s row."""
    now = _now()
    s.execute(
        update(StartQueueRow)
        .where(StartQueueRow.state == "waiting", StartQueueRow.deadline < now)
        .values(state="expired")
    )
    live = (StartQueueRow.state == "waiting", StartQueueRow.seen_at >= now - timedelta(seconds=STALE_SECONDS))
    ahead = select(func.count()).select_from(StartQueueRow).where(*live)
    if queue_id is not None:
        ahead = ahead.where(StartQueueRow.id < queue_id)
    n = s.execute(ahead).scalar_one()
    if n:
        raise CapacityError(
            f"{n} start{'s are' if n != 1 else ' is'} waiting for room ahead of you; try again when they have started",
            resource="queue",
            never_fits=False,
        )
    if queue_id is not None:
        s.execute(update(StartQueueRow).where(StartQueueRow.id == queue_id).values(state="admitted"))


def _join(ledger, owner: str, subject: str, request, timeout: float) -> int:
    """The waiting row of this start (found again after a restart) or a new one at the end of the line."""
    with ledger.transaction() as s:
        row = s.scalars(
            select(StartQueueRow)
            .where(StartQueueRow.owner == owner, StartQueueRow.subject == subject, StartQueueRow.state == "waiting")
            .order_by(StartQueueRow.id)
        ).first()
        now = _now()
        if row is None:
            row = StartQueueRow(
                owner=owner, subject=subject, cpu=request.cpu, mem=request.mem, gpu=request.gpu,
                created_at=now, deadline=now + timedelta(seconds=timeout), seen_at=now, state="waiting",
            )  # fmt: skip
            s.add(row)
        else:
            row.seen_at = now
        s.flush()
        return row.id


def _touch(ledger, queue_id: int) -> tuple[str, datetime, datetime, int]:
    """Mark the waiter seen; returns (state, created_at, deadline, how many live waiters are ahead)."""
    with ledger.transaction() as s:
        row = s.get(StartQueueRow, queue_id)
        now = _now()
        row.seen_at = now
        ahead = s.execute(
            select(func.count())
            .select_from(StartQueueRow)
            .where(
                StartQueueRow.state == "waiting",
                StartQueueRow.id < queue_id,
                StartQueueRow.seen_at >= now - timedelta(seconds=STALE_SECONDS),
            )
        ).scalar_one()
        return row.state, row.created_at, row.deadline, ahead


def _finish(ledger, queue_id: int, state: str) -> None:
    with ledger.transaction() as s:
        s.execute(
            update(StartQueueRow)
            .where(StartQueueRow.id == queue_id, StartQueueRow.state == "waiting")
            .values(state=state)
        )


def waiting(ledger) -> list[dict]:
    """The line as it is: ``[{"id", "owner", "subject", "cpu", "mem", "gpu", "waiting_s", "deadline"}]``."""
    now = _now()
    with ledger.reading() as s:
        rows = s.scalars(select(StartQueueRow).where(StartQueueRow.state == "waiting").order_by(StartQueueRow.id))
        return [
            {
                "id": r.id, "owner": r.owner, "subject": r.subject, "cpu": r.cpu, "mem": r.mem, "gpu": r.gpu,
                "waiting_s": round((now - r.created_at).total_seconds(), 1), "deadline": r.deadline.isoformat(),
                "seen_at": r.seen_at.isoformat(),
            }
            for r in rows
        ]  # fmt: skip


def of_owner(ledger, owner: str) -> list[dict]:
    """``owner``'s waiting starts with their place: ``[{"kernel_id", "ahead", "waiting_s", "deadline", "cpu", ...}]``."""
    line = waiting(ledger)
    live_since = _now() - timedelta(seconds=STALE_SECONDS)
    out = []
    for i, w in enumerate(line):
        if w["owner"] != owner:
            continue
        ahead = sum(1 for v in line[:i] if datetime.fromisoformat(v["seen_at"]) >= live_since)
        out.append(
            {
                "kernel_id": w["subject"],
                "ahead": ahead,
                **{k: w[k] for k in ("cpu", "mem", "gpu", "waiting_s", "deadline")},
            }
        )
    return out


def cancel(ledger, owner: str, subject: str) -> bool:
    """Take ``owner``'s waiting start of ``subject`` out of the line; False if there was none."""
    with ledger.transaction() as s:
        done = s.execute(
            update(StartQueueRow)
            .where(StartQueueRow.owner == owner, StartQueueRow.subject == subject, StartQueueRow.state == "waiting")
            .values(state="cancelled")
        )
        return bool(done.rowcount)


async def reserve_in_turn(
    service, policy, reserve, *, owner: str, subject: str, request, poll: float = 0.5, log=None,
    what: str = "kernel", keep_place: bool = False,
):  # fmt: skip
    """Call ``reserve(queue_id)`` (blocking, admission's reservation); when the policy queues and the
    start finds no room right now, wait in line (see module doc). Returns the allocation.

    ``what`` names the subject in messages (``kernel``, ``job``). ``keep_place``: when the waiting task
    is cancelled (its service stops), the row stays ``waiting`` so a restarted service's retry finds its
    place (a job's start is the service's own); otherwise (a kernel start whose client went away) it
    is cancelled."""
    try:
        return await service._db(reserve, None)
    except CapacityError as e:
        if e.never_fits or getattr(policy, "on_full", "refuse") != "queue":
            raise
        last = e
    timeout = float(policy.queue_timeout if policy.queue_timeout is not None else DEFAULT_TIMEOUT)
    queue_id = await service._db(_join, service.ledger, owner, subject, request, timeout)
    if log is not None:
        log.info("%s %s of %s waits for room (%s)", what.capitalize(), subject, owner, last.message)
    try:
        while True:
            state, created, deadline, _ahead = await service._db(_touch, service.ledger, queue_id)
            if state == "cancelled":
                raise StartCancelled(
                    f"the start of {what} {subject} was cancelled while it waited for room", resource="queue"
                )
            if state != "waiting" or _now() >= deadline:
                waited = (_now() - created).total_seconds()
                await service._db(_finish, service.ledger, queue_id, "expired")
                raise CapacityError(
                    f"waited {waited:.0f} s in the start queue (queue_timeout {timeout:g} s) and there was still "
                    f"no room: {last.message}",
                    resource=last.resource,
                    never_fits=False,
                )
            try:
                return await service._db(reserve, queue_id)
            except CapacityError as e:
                if e.never_fits:
                    await service._db(_finish, service.ledger, queue_id, "cancelled")
                    raise
                if e.resource != "queue":
                    last = e
            await asyncio.sleep(poll)
    except asyncio.CancelledError:
        if not keep_place:
            await asyncio.shield(service._db(_finish, service.ledger, queue_id, "cancelled"))
        raise

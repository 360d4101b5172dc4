"""Long image operations (pull, build) running in the background, with their progress.

A front end that cannot hold a request open for minutes (the REST API) starts
an :class:`Operation` and polls it: its ``log`` grows line by line while the
work runs (the engine's worker thread appends to it), ``state`` ends as
``succeeded`` (with ``result``) or ``failed`` (with ``error``, the
:class:`~jupyter_berth.errors.BerthError`'s JSON). Operations live in the
service process's memory; the newest :data:`KEEP` are kept.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone

from ..errors import BerthError, NotFoundError

log = logging.getLogger(__name__)

#: Operations kept in memory (finished ones beyond this are forgotten, oldest first).
KEEP = 50
#: Lines kept per operation (the oldest are dropped; ``log_offset`` counts them).
MAX_LINES = 2000


class Operation:
    """One pull or build: who asked, what for, how far it got."""

    def __init__(self, kind: str, ref: str, owner: str):
        self.id = uuid.uuid4().hex
        self.kind, self.ref, self.owner = kind, ref, owner
        self.state = "running"
        self.result: dict | None = None
        self.error: dict | None = None
        self.started_at = datetime.now(timezone.utc)
        self.finished_at: datetime | None = None
        self._lines: list[str] = []
        self._dropped = 0
        self._lock = threading.Lock()
        self.task: asyncio.Task | None = None

    def add(self, line: str) -> None:
        """Append a progress line (thread-safe: the engine's worker threads call this)."""
        with self._lock:
            self._lines.append(line)
            if len(self._lines) > MAX_LINES:
                drop = len(self._lines) - MAX_LINES
                del self._lines[:drop]
                self._dropped += drop

    def lines(self, since: int = 0) -> tuple[int, list[str]]:
        """(number of the first line returned, lines from ``since`` on)."""
        with self._lock:
            start = max(since, self._dropped)
            return start, self._lines[start - self._dropped :]

    @property
    def done(self) -> bool:
        return self.state != "running"

    def to_json(self, since: int = 0) -> dict:
        first, lines = self.lines(since)
        return {
            "id": self.id,
            "kind": self.kind,
            "ref": self.ref,
            "owner": self.owner,
            "state": self.state,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "log_offset": first,
            "log": lines,
            "next": first + len(lines),
            "result": self.result,
            "error": self.error,
        }


class Operations:
    """The operations of one service process."""

    def __init__(self):
        self._ops: OrderedDict[str, Operation] = OrderedDict()

    def start(
        self, kind: str, ref: str, owner: str, work: Callable[[Callable[[str], None]], Awaitable[dict]]
    ) -> Operation:
        """Run ``work(progress)`` in the background; returns the running operation at once."""
        op = Operation(kind, ref, owner)

        async def run():
            try:
                op.result = await work(op.add)
                op.state = "succeeded"
            except BerthError as e:
                op.add(f"failed: {e.message}")
                op.error, op.state = e.to_json(), "failed"
            except Exception as e:  # noqa: BLE001 - an operation reports every failure instead of dying silently
                log.exception("Image %s of %s failed", kind, ref)
                op.add(f"failed: {e}")
                op.error, op.state = {"message": f"{kind} of {ref} failed unexpectedly: {e}"}, "failed"
            finally:
                op.finished_at = datetime.now(timezone.utc)

        op.task = asyncio.ensure_future(run())
        self._ops[op.id] = op
        self._prune()
        return op

    def _prune(self) -> None:
        finished = [k for k, o in self._ops.items() if o.done]
        while len(self._ops) > KEEP and finished:
            self._ops.pop(finished.pop(0), None)

    def get(self, op_id: str) -> Operation:
        op = self._ops.get(op_id)
        if op is None:
            raise NotFoundError(f"no image operation {op_id!r} (operations are kept in memory, the newest {KEEP})")
        return op

    def list(self) -> list[Operation]:
        return list(reversed(self._ops.values()))

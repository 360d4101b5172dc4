"""The spawn queue: when the host is full, a spawn waits its turn instead of failing.

One :class:`SpawnQueue` per hub process (in memory, first come first served). A spawn
takes a :class:`Ticket` and calls :meth:`SpawnQueue.admit` with a coroutine that
reserves its resources in the ledger. The ticket at the head of the queue tries; when
the host has no room (:class:`CapacityError` that could fit later) it tries again when a
server of this hub stops (:meth:`SpawnQueue.wake`) or every ``retry_interval`` seconds
(kernels are released by the Berth service, another process). The others wait behind it,
so nobody overtakes: "waiting for 2 CPU; 3 ahead of you".

Admission is one gate; the other is ``max_starting``: how many servers may be booting at
once. Booting JupyterLab is CPU-bound, and 50 at once on two cores each take 25 times
longer than one (and then time out); a few at a time finish sooner, in order. A ticket
holds its start slot until its server answers HTTP, then :meth:`SpawnQueue.done`.

Where the wait happens, and why: JupyterHub bounds ``Spawner.start()`` by
``start_timeout`` with ``asyncio.wait_for``, and reads the timeout *before* ``start()``
runs, so a wait inside ``start()`` is killed after 60 s and cannot raise its own limit.
The hub awaits the steps before ``start()`` (``apply_user_options``, the pre-spawn hook)
with no timeout. BerthSpawner therefore waits here from its pre-spawn hook, bounded by
its own ``queue_timeout``, while ``progress()`` shows the ticket's place; ``start()``
then only creates the container and waits for it to answer, well within
``start_timeout``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from jupyter_berth.errors import BerthError, CapacityError
from jupyter_berth.resources import Resources, format_bytes

T = TypeVar("T")


class QueueTimeout(BerthError):
    """The spawn waited ``queue_timeout`` seconds and the host never had room (HTTP 503)."""

    status = 503


@dataclass(eq=False)
class Ticket:
    """One spawn waiting in (or admitted through) the queue."""

    who: str  #: ``user`` or ``user/server`` (for messages and logs)
    request: Resources
    enqueued_at: float = field(default_factory=time.monotonic)
    admitted_at: float | None = None
    message: str = "waiting for a place in the queue"
    position: int = 0  #: spawns ahead of this one
    holds_slot: bool = False
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def waited(self) -> float:
        """Seconds spent in the queue (so far, or until admitted)."""
        return (self.admitted_at or time.monotonic()) - self.enqueued_at

    def tell(self, message: str, position: int) -> None:
        if (message, position) != (self.message, self.position):
            self.message, self.position = message, position
            self.changed.set()


def shortage(request: Resources, error: CapacityError) -> str:
    """What a spawn waits for, in words: ``2 CPU``, ``4 GiB of memory``, ``a GPU share of 0.25``."""
    resource = (error.resource or "").lower()
    words = {
        "cpu": f"{request.cpu:g} CPU",
        "mem": f"{format_bytes(request.mem)} of memory",
        "gpu": f"a GPU share of {request.gpu:g}",
    }
    if resource in words:
        return words[resource]
    if resource == "cpu+mem":
        return f"{words['cpu']} and {words['mem']}"
    if resource == "node":
        return "a host that takes new servers"
    return request.describe()


class SpawnQueue:
    """First-come-first-served admission of spawns, with a bound on servers booting at once."""

    def __init__(self, max_starting: int = 0, retry_interval: float = 2.0, log=None):
        self.max_starting = max_starting  #: 0: no bound
        self.retry_interval = retry_interval
        self.log = log
        self._waiting: list[Ticket] = []
        self._starting: set[Ticket] = set()
        self._wakeup = asyncio.Event()
        self._blocked_on: str | None = None  #: what the head of the queue waits for

    # -- what the queue looks like ------------------------------------------------------------
    @property
    def waiting(self) -> int:
        return len(self._waiting)

    @property
    def starting(self) -> int:
        return len(self._starting)

    def _slot_free(self) -> bool:
        return self.max_starting <= 0 or len(self._starting) < self.max_starting

    def _retell(self) -> None:
        """Tell every waiting ticket its place and what the queue waits for."""
        for i, t in enumerate(self._waiting):
            if i == 0 and self._blocked_on:
                t.tell(f"waiting for {self._blocked_on}; you are next", 0)
            elif i == 0:
                t.tell(f"waiting for a start slot: {len(self._starting)} servers are starting", 0)
            else:
                what = self._blocked_on or "a start slot"
                t.tell(f"waiting for {what}; {i} ahead of you", i)

    def wake(self) -> None:
        """Something changed (a server stopped, a slot freed): the head tries again now."""
        self._wakeup.set()

    async def _sleep(self, seconds: float) -> None:
        event = self._wakeup
        try:
            await asyncio.wait_for(event.wait(), timeout=max(0.0, seconds))
        except asyncio.TimeoutError:
            pass
        if event.is_set() and event is self._wakeup:
            self._wakeup = asyncio.Event()

    # -- the gate -------------------------------------------------------------------------------
    async def admit(self, ticket: Ticket, reserve: Callable[[], Awaitable[T]], timeout: float) -> T:
        """Wait for the ticket's turn and a start slot, then ``reserve()``; returns its result.

        ``reserve`` raises :class:`CapacityError` while the host is full; one with
        ``never_fits`` (no host could ever hold the request) is raised at once, as is any
        other error. Raises :class:`QueueTimeout` after ``timeout`` seconds of waiting.
        Cancelling the caller (the user gave up) leaves the queue cleanly.
        """
        self._waiting.append(ticket)
        deadline = time.monotonic() + timeout
        try:
            while True:
                head = self._waiting[0] is ticket
                retry = None
                if head and self._slot_free():
                    try:
                        result = await reserve()
                    except CapacityError as e:
                        if e.never_fits:
                            raise
                        self._blocked_on = shortage(ticket.request, e)
                        retry = self.retry_interval
                    else:
                        self._blocked_on = None
                        self._waiting.remove(ticket)
                        ticket.admitted_at = time.monotonic()
                        ticket.holds_slot = True
                        self._starting.add(ticket)
                        ticket.tell("admitted", 0)
                        self._retell()
                        self.wake()  # the next in line may try now
                        return result
                self._retell()
                left = deadline - time.monotonic()
                if left <= 0:
                    waited = time.monotonic() - ticket.enqueued_at
                    raise QueueTimeout(
                        f"your server waited {waited:.0f} s in the queue ({ticket.message}) and the host never had room; "
                        "try again in a few minutes, or ask for less",
                        log_message=f"{ticket.who}: queue timeout after {waited:.0f} s ({ticket.message})",
                    )
                await self._sleep(min(left, retry) if retry else left)
        finally:
            if ticket in self._waiting:
                self._waiting.remove(ticket)
                self._retell()
                self.wake()

    def done(self, ticket: Ticket) -> None:
        """The ticket's server answered (or failed to start): free its start slot."""
        if ticket.holds_slot:
            ticket.holds_slot = False
            self._starting.discard(ticket)
            self.wake()


__all__ = ["QueueTimeout", "SpawnQueue", "Ticket", "shortage"]

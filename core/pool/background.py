"""A pool's background work: fills, removals and retries, as tasks and timers stopped together.

Both pools (kernels: :mod:`.warm_pool`; single-user servers: :mod:`.server_pool`) refill and clean up
in the background; a failed task is logged, never raised into whoever triggered it.
"""

from __future__ import annotations

import asyncio
import logging


class Background:
    """Tasks and timers of one pool; :meth:`stop` cancels them, after which :meth:`later` schedules nothing."""

    def __init__(self, log: logging.Logger, what: str):
        self.log = log
        self.what = what
        self.tasks: set[asyncio.Task] = set()
        self.timers: set[asyncio.TimerHandle] = set()
        self.stopped = False

    def later(self, delay: float, fn, *args) -> None:
        """Call ``fn(*args)`` in ``delay`` seconds on the running loop (unless stopped by then)."""
        if self.stopped:
            return

        def run():
            self.timers.discard(handle)
            fn(*args)

        handle = asyncio.get_running_loop().call_later(delay, run)
        self.timers.add(handle)

    def run(self, coro) -> asyncio.Task:
        """Run ``coro`` as a task of this pool; its failure is logged."""
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.log.warning("Berth: %s background task failed: %s", self.what, task.exception())

    def stop_timers(self) -> None:
        self.stopped = True
        for timer in self.timers:
            timer.cancel()
        self.timers.clear()

    async def cancel_tasks(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)

    async def stop(self) -> None:
        """No more timers; every task cancelled and awaited."""
        self.stop_timers()
        await self.cancel_tasks()


__all__ = ["Background"]

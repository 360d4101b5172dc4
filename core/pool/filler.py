"""A thread with an event loop of its own, where the warm pool starts its containers.

A client that drives kernels synchronously (``jupyter_client.KernelManager``, nbclient) runs
the embedded service's event loop only while one of its calls is in progress; a refill on
that loop would stall between calls, and the next start would find the pool empty. Creating
a pool container and waiting for its imports therefore runs here, on a daemon thread's own
loop, whatever the caller's loop does; the pool's state stays on the caller's loop (a
coroutine run here must not touch it).
"""

from __future__ import annotations

import asyncio
import threading


class Filler:
    """``await filler.run(coro)`` runs ``coro`` on the filler's thread; cancelling the await cancels it."""

    def __init__(self, name: str = "berth-pool-filler"):
        self.name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def _ensure(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(target=self._loop.run_forever, name=self.name, daemon=True)
            self._thread.start()
        return self._loop

    async def run(self, coro):
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self._ensure()))

    def close(self, timeout: float = 30.0) -> None:
        """Let what runs finish (cancelled work cleans up after itself), then stop the thread. Blocking."""
        loop, self._loop = self._loop, None
        if loop is None:
            return

        async def settle():
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            if others:
                await asyncio.wait(others, timeout=timeout)

        try:
            asyncio.run_coroutine_threadsafe(settle(), loop).result(timeout + 5)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            self._thread.join(5)
            if not loop.is_running():
                loop.close()


__all__ = ["Filler"]

"""Events keep the ledger true (design decision 11; issue 20, item 2).

The service follows the Docker engine's event stream for its own site's containers. When a
kernel's or server's container dies, is killed (``die``, ``oom``) or removed (``destroy``)
without Berth having stopped it, its allocation is released within seconds, through the same
path as a kernel that ended on its own (``BerthService._finish``): a last usage sample, the
container removed, a usage record whose reason says what happened (``exited`` with the exit
code, ``oom``, ``lost`` for a container removed behind Berth's back). So a user's totals are
right even when no server is left to report the end.

An event for a container Berth is stopping itself is left to that stop (it waits
:attr:`EngineEvents.grace` seconds, then acts only if the allocation is still live): the reason
written is the stop's (``shutdown``, ``culled``...). A kernel that exits with code 0 was almost
always asked to by its client (a shutdown or restart request goes to the kernel first, and the
server's provisioner then accounts it with its reason): that case waits
:attr:`EngineEvents.clean_exit_grace` seconds instead. The stream is read in a thread of its own
(a docker-py client without a read timeout); when it breaks (the engine restarted) the watcher
reconnects with back-off, asks for the events it missed (``since``), and releases whatever
allocation lost its container meanwhile. A container that *starts* for an allocation that is no
longer live (a start that lost a race with a stop, or one the engine finished after Berth gave up
on it) is a stray: it is removed, as reconcile removes one at a restart. Docker engines only:
Swarm tasks and the process runtime have no such stream here (their kernels are covered by
reconcile on start and by the servers' reports).

A second stream, of image events (tag, untag, delete, pull, load, import), tells the image
catalog when the engine's images changed, so it lists them again only then (and at most every
:data:`IMAGE_LIST_TTL_FOLLOWED` seconds otherwise) instead of before nearly every start.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

from .errors import BerthError
from .runtime.labels import key as label_key

log = logging.getLogger(__name__)

#: Engine actions that end a container's life (``kill`` is followed by ``die``).
ENDING_ACTIONS = ("die", "oom", "destroy")
#: The label naming a container's allocation (a start for a released one is a stray).
ALLOCATION_LABEL = label_key("allocation")
#: Image actions that change what the catalog lists.
IMAGE_ACTIONS = ("tag", "untag", "delete", "pull", "load", "import", "push")
#: How long the catalog reuses its listing of the engine's images while image events are followed.
IMAGE_LIST_TTL_FOLLOWED = 60.0


class EngineEvents:
    """Follows the engine's events for one service; see the module doc."""

    def __init__(
        self,
        service,
        *,
        grace: float = 1.5,
        clean_exit_grace: float = 30.0,
        backoff: tuple[float, float] = (0.5, 10.0),
    ):
        self.service = service
        self.grace = grace
        self.clean_exit_grace = clean_exit_grace
        self.backoff = backoff
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stream = None
        self._images_stream = None
        self._stopping = threading.Event()
        self._handling: set[str] = set()
        self._tasks: set[asyncio.Task] = set()
        #: How many times the stream was (re)opened; for tests and the log.
        self.connections = 0
        self.connected = threading.Event()

    # -- lifecycle ------------------------------------------------------------------------------------
    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._follow, name="berth-engine-events", daemon=True)
        self._thread.start()
        self._images_thread = threading.Thread(target=self._follow_images, name="berth-image-events", daemon=True)
        self._images_thread.start()

    async def stop(self) -> None:
        self._stopping.set()
        self._close_stream()
        for task in list(self._tasks):
            task.cancel()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 5)
        self.service.images.engine_list_ttl = type(self.service.images).engine_list_ttl
        if self._images_stream is not None:
            self._images_stream.close()

    def _follow_images(self) -> None:
        """Image events: the catalog's listing of the engine's images is dropped when they changed."""
        images = self.service.images
        while not self._stopping.is_set():
            client = None
            try:
                client = self._client()
                self._images_stream = client.events(decode=True, filters={"type": "image"})
                images.engine_list_ttl = IMAGE_LIST_TTL_FOLLOWED
                self._loop.call_soon_threadsafe(images.forget_engine_images)  # what changed while not following
                for event in self._images_stream:
                    if event.get("Action") in IMAGE_ACTIONS:
                        self._loop.call_soon_threadsafe(images.forget_engine_images)
            except Exception as e:  # noqa: BLE001 - any failure of the stream: list as often as before, reconnect
                images.engine_list_ttl = type(images).engine_list_ttl
                if not self._stopping.is_set():
                    log.debug("Berth: the engine's image event stream broke (%s); reconnecting", e)
            finally:
                if client is not None:
                    client.close()
            if self._stopping.wait(self.backoff[1]):
                break

    def _close_stream(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.close()
            except Exception as e:  # noqa: BLE001 - closing a broken stream may fail any way
                log.debug("closing the event stream: %s", e)

    def drop_connection(self) -> None:
        """Close the current stream as an engine restart would (the watcher reconnects)."""
        self.connected.clear()
        self._close_stream()

    # -- the thread ----------------------------------------------------------------------------------
    def _client(self):
        import docker

        return docker.from_env(timeout=None)  # no read timeout: a quiet engine is not a dead one

    def _follow(self) -> None:
        since: float | None = None
        delay = self.backoff[0]
        while not self._stopping.is_set():
            client = None
            try:
                client = self._client()
                filters = {"type": "container", "label": [f"io.jupyter.berth.site={self.service.site_id}"]}
                opened = time.time()
                self._stream = client.events(decode=True, filters=filters, since=since)
                self.connections += 1
                if self.connections > 1:  # missed events: the engine replays what it kept; reconcile the rest
                    self._submit(self._release_vanished())
                self.connected.set()
                delay = self.backoff[0]
                for event in self._stream:
                    since = event.get("time") or since
                    attributes = (event.get("Actor") or {}).get("Attributes") or {}
                    if event.get("Action") in ENDING_ACTIONS and event.get("id"):
                        clean = event["Action"] == "die" and attributes.get("exitCode") == "0"
                        self._submit(self._on_end(event["id"], event["Action"], clean=clean))
                    elif event.get("Action") == "start" and attributes.get(ALLOCATION_LABEL):
                        self._submit(self._on_start(event["id"], attributes[ALLOCATION_LABEL]))
                since = since or opened
            except Exception as e:  # noqa: BLE001 - any failure of the stream: reconnect
                if self._stopping.is_set():
                    break
                log.warning("Berth: the engine's event stream broke (%s); reconnecting in %.1f s", e, delay)
            finally:
                self.connected.clear()
                if client is not None:
                    client.close()
            if self._stopping.wait(delay):
                break
            since = since or time.time() - delay
            delay = min(delay * 2, self.backoff[1])

    def _submit(self, coro) -> None:
        def schedule():
            task = asyncio.ensure_future(coro)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(schedule)
        else:
            coro.close()

    # -- on the loop ---------------------------------------------------------------------------------
    async def _on_end(self, container_id: str, action: str, *, clean: bool = False) -> None:
        if container_id in self._handling:
            return
        self._handling.add(container_id)
        try:
            # a stop Berth (or the kernel's client) made releases in that time, with its own reason
            await asyncio.sleep(self.clean_exit_grace if clean else self.grace)
            alloc = await self._live_allocation(container_id)
            if alloc is None:
                return
            info = await self.service.runtime.inspect(container_id)
            if info is not None and info.running:
                return  # restarted
            reason, message = await self.service._finish(alloc, "exited", stop=False)
            self.service.log.info(
                "Berth: %s %s of %s ended outside Berth (%s: %s); released",
                alloc.kind,
                alloc.subject,
                alloc.owner,
                action,
                message,
            )
        except BerthError as e:
            self.service.log.warning("Berth: could not release after %s of %s: %s", action, container_id[:12], e)
        finally:
            self._handling.discard(container_id)

    async def _on_start(self, container_id: str, alloc_id: str) -> None:
        """A container of this site started for an allocation that is no longer live (its start lost a race
        with a stop, or the engine finished a start Berth had given up on): a stray, removed as
        :func:`.reconcile.plan` removes one at a restart, so the ledger and the engine agree again."""
        try:
            await asyncio.sleep(self.grace)  # a start in progress is still reserved: live
            if any(a.id == alloc_id for a in await self.service._live_here()):
                return
            info = await self.service.runtime.inspect(container_id)
            if info is None or not info.running:
                return
            self.service.log.warning(
                "Berth: removing stray container %s (%s): it started for allocation %s, which is no longer live",
                info.name,
                container_id[:12],
                alloc_id,
            )
            await self.service.runtime.remove(container_id)
        except BerthError as e:
            self.service.log.warning("Berth: could not remove stray container %s: %s", container_id[:12], e)

    async def _live_allocation(self, container_id: str) -> Any:
        for alloc in await self.service._live_here():
            if alloc.container_id and container_id.startswith(alloc.container_id):
                return alloc
        return None

    async def _release_vanished(self) -> None:
        """After a reconnect: release every live allocation whose container is gone or stopped."""
        for alloc in await self.service._live_here():
            if not alloc.container_id or alloc.state != "running":
                continue
            info = await self.service.runtime.inspect(alloc.container_id)
            if info is None or not info.running:
                await self._on_end(alloc.container_id, "reconnect")


__all__ = ["ENDING_ACTIONS", "EngineEvents"]

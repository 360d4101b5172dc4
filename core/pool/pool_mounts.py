"""The warm pool's side of mount hand-over: slots for its containers, the user's mounts at adoption.

:class:`PoolMounts` ties :class:`~.mount_handover.MountHandover` to the engine: it resolves a
named volume to the directory the engine keeps it in (``docker volume inspect`` →
``Mountpoint``), runs the mount calls off the event loop, remembers which container holds
which slots (by the pool container's name, its ``subject`` label, which survives adoption and
restarts) and, when the service starts again, releases what containers that are gone left.

A start whose mounts it cannot hand over (no hand-over here, a mount outside the pool's
targets, a volume that does not exist yet) starts cold; nothing here fails a start.
"""

from __future__ import annotations

import asyncio
import os

from ..errors import BerthError, NotFoundError
from ..runtime.base import Mount
from ..runtime.labels import parse_labels
from .mount_handover import HandoverError, MountHandover


class PoolMounts:
    """Hand-over slots of one site's pool containers (module doc)."""

    def __init__(self, runtime, site: str, base: str, log):
        self.runtime = runtime
        self.log = log
        self.handover = MountHandover(base, site)
        self.unavailable: str | None = MountHandover.unavailable()
        if self.unavailable is None and not getattr(runtime, "has_docker_api", False):
            self.unavailable = "the runtime has no local Docker engine to bind mounts for"
        self._names: dict[str, str] = {}  #: container id → slot directory name
        self._pids: dict[str, int] = {}  #: container id → its main process (to check a hand-over arrived)

    async def setup(self) -> None:
        """Prepare the site's hand-over root; release the slots of containers that are gone."""
        if self.unavailable:
            return
        try:
            await asyncio.to_thread(self.handover.setup)
            live = await self.runtime.list({"site": self.handover.site, "kind": "pool"})
        except (OSError, BerthError) as e:
            self.unavailable = f"the hand-over directory could not be prepared: {getattr(e, 'message', e)}"
            self.log.warning("Warm pool without mount hand-over: %s", self.unavailable)
            return
        for c in live:
            name = parse_labels(c.labels).get("subject")
            if name:
                self._names[c.id] = name
        try:
            gone = await asyncio.to_thread(self.handover.clean, set(self._names.values()))
        except (OSError, BerthError) as e:  # never a reason not to start: the next start tries again
            self.log.warning("Mount hand-over: what gone containers left is not all released: %s", e)
            return
        if gone:
            self.log.info("Mount hand-over: released the slots of %d container(s) that are gone", len(gone))

    def slots(self, name: str, targets) -> list[Mount]:
        return self.handover.slots(name, targets) if targets and not self.unavailable else []

    def unfit_reason(self, targets, mounts) -> str | None:
        """Why these mounts cannot be handed to a container with slots at ``targets``."""
        if not mounts:
            return None
        if self.unavailable:
            return f"mounts cannot be handed over here ({self.unavailable})"
        return MountHandover.plan(targets, mounts)

    async def _host_path(self, m: Mount) -> Mount:
        if m.source.startswith("/"):
            return m
        try:  # a named volume: where the engine keeps it
            found = await self.runtime.docker("inspect_volume", m.source)
        except NotFoundError as e:
            raise HandoverError(f"volume {m.source} does not exist yet") from e
        if (found.get("Driver") or "local") != "local" or (found.get("Options") or {}).get("device"):
            raise HandoverError(f"volume {m.source} is not a plain local volume")
        return Mount(source=found["Mountpoint"], target=m.target, read_only=m.read_only)

    async def hand_over(self, container_id: str, name: str, targets, mounts) -> None:
        """Bind the user's mounts into the container's slots and check they arrived (raises
        :class:`HandoverError`)."""
        self._names[container_id] = name
        if not mounts:
            return
        resolved = [await self._host_path(m) for m in mounts]
        pid = self._pids.get(container_id)
        await asyncio.to_thread(self.handover.hand_over, name, targets, resolved, pid)

    async def release(self, container_id: str, name: str | None = None) -> None:
        """The container is gone (or never adopted): unmount what it was given, remove its slots."""
        name = self._names.pop(container_id, None) or name
        self._pids.pop(container_id, None)
        if not name or self.unavailable:
            return
        try:
            await asyncio.to_thread(self.handover.release, name)
        except (OSError, BerthError) as e:  # the next start's setup() tries again
            self.log.warning("Mount hand-over: %s not released: %s", name, getattr(e, "message", e))

    def remember(self, container_id: str, name: str) -> None:
        """A pool container was created with slots under ``name``."""
        if not self.unavailable and os.path.isdir(os.path.join(self.handover.root, name)):
            self._names[container_id] = name

    async def note_process(self, container_id: str) -> None:
        """Note the container's main process, so that a hand-over is checked to have arrived inside."""
        if container_id in self._names:
            try:
                state = await self.runtime.docker("inspect_container", container_id)
                self._pids[container_id] = int((state.get("State") or {}).get("Pid") or 0) or None
            except BerthError:  # gone already: it will fail its adoption
                pass

    def holds(self, container_id: str) -> bool:
        return container_id in self._names

    async def teardown(self) -> None:
        """A stopping service: undo the root if no container has slots left (adopted kernels keep theirs)."""
        if not self.unavailable and os.path.isdir(self.handover.root):
            try:
                await asyncio.to_thread(self.handover.teardown)
            except OSError as e:
                self.log.debug("Mount hand-over root kept: %s", e)


__all__ = ["PoolMounts"]

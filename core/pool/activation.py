"""How the service and a warm-pool kernel talk, and what a pool is keyed by.

A pool kernel (``berth-kernel-pool`` in the image) listens on :data:`POOL_PORT` for
JSON lines: ``{"token", "op": "ping"}`` answers ``{"status": "ready"}`` once its
imports are done; ``{"token", "connection", "cwd", "env"}`` activates it (it answers
``{"status": "ok"}`` once the kernel's sockets are bound); a wrong token is answered
``{"status": "refused"}`` and changes nothing.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

from ..errors import RequestError
from ..runtime.base import ContainerInfo, Mount

#: Port the pool kernel listens on for its activation (inside its own network namespace).
POOL_PORT = 50000
POOL_COMMAND = ["berth-kernel-pool"]
#: User every Berth kernel container runs as (a request for another user cannot use the pool).
POOL_USER = "1000:1000"


def parse_mount(text: str) -> Mount:
    """``"/src:/dst"``, ``"/src:/dst:ro"`` or ``"/path"`` (same path inside) → :class:`Mount`."""
    parts = str(text).split(":")
    if len(parts) == 1:
        parts = [parts[0], parts[0]]
    if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] not in ("ro", "rw")) or not all(parts[:2]):
        raise RequestError("WarmPool.mounts", f"{text!r} is not a mount; write source:target or source:target:ro")
    return Mount(source=parts[0], target=parts[1], read_only=len(parts) == 3 and parts[2] == "ro")


@dataclass(frozen=True)
class PoolKey:
    """What a pool container is fixed to at creation: its image, its mounts and where it waits.

    ``network`` is a user's network for a pool learned from that user's first request
    (standalone: one user), whose containers wait where their kernels will run; ``None``
    for the shared, isolated pool network, left for the user's network on adoption.
    """

    image: str
    mounts: tuple[Mount, ...] = ()
    network: str | None = None

    def describe(self) -> str:
        mounts = ", ".join(f"{m.source}:{m.target}{':ro' if m.read_only else ''}" for m in self.mounts) or "no mounts"
        return f"{self.image} ({mounts}{f'; on {self.network}' if self.network else ''})"


@dataclass
class PoolContainer:
    """A started, pre-imported kernel waiting for its activation."""

    info: ContainerInfo
    key: PoolKey
    token: str
    ip: str  #: address on the pool network

    @property
    def id(self) -> str:
        return self.info.id


async def pool_request(ip: str, message: dict, timeout: float) -> dict:
    """Send one JSON line to a pool kernel and read its one-line answer."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(ip, POOL_PORT), timeout)
    try:
        writer.write(json.dumps(message).encode() + b"\n")
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout)
    finally:
        writer.close()
    if not line:
        raise ConnectionError("the pool kernel closed the connection without answering")
    return json.loads(line)


__all__ = ["POOL_COMMAND", "POOL_PORT", "POOL_USER", "PoolContainer", "PoolKey", "parse_mount", "pool_request"]

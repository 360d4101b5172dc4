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
import time
from dataclasses import dataclass

from ..errors import RequestError
from ..resources import Resources, resource_kinds
from ..runtime.base import ContainerInfo, Mount, Runtime

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


def fixed_kinds_unfit(asked: Resources, held: Resources, whose: str = "the pool's") -> str | None:
    """What cannot change on a running container (e.g. shm) must fit what a pool container has:
    why ``asked`` does not, or ``None``."""
    for kind in resource_kinds():
        want, have = getattr(asked, kind.name), getattr(held, kind.name)
        if not kind.live and want > have:
            return f"{kind.word} {kind.format(want)} is more than {whose} {kind.format(have)}"
    return None


async def wait_until_ready(runtime: Runtime, info: ContainerInfo, token: str, timeout: float) -> None:
    """Poll a new pool container's activation port until its imports are done (``ping`` → ``ready``);
    fail at once when the container stops, with its last log lines."""
    if not info.ip:
        raise ValueError(f"pool container {info.name} has no address")
    deadline = time.monotonic() + timeout
    checked = time.monotonic()
    while True:
        try:
            reply = await pool_request(info.ip, {"token": token, "op": "ping"}, 2.0)
            if reply.get("status") == "ready":
                return
            raise ValueError(f"unexpected answer {reply}")
        except (ConnectionError, OSError, asyncio.TimeoutError):
            pass
        now = time.monotonic()
        if now > deadline:
            raise asyncio.TimeoutError(f"pool container {info.name} not ready after {timeout:.0f} s")
        if now - checked > 1.0:
            checked = now
            state = await runtime.inspect(info.id)
            if state is None or not state.running:
                logs = (await runtime.logs(info.id, tail=5)).strip() if state else ""
                raise ValueError(f"pool container {info.name} stopped ({logs or 'no output'})")
        await asyncio.sleep(0.1)


__all__ = [
    "POOL_COMMAND",
    "POOL_PORT",
    "POOL_USER",
    "PoolContainer",
    "PoolKey",
    "fixed_kinds_unfit",
    "parse_mount",
    "pool_request",
    "wait_until_ready",
]

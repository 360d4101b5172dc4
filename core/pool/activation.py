"""How the service and a warm-pool kernel talk, and what a pool is keyed by.

A pool kernel (``berth-kernel-pool`` in the image) listens on :data:`POOL_PORT` for
JSON lines: ``{"token", "op": "ping"}`` answers ``{"status": "ready"}`` once its
imports are done; ``{"token", "connection", "cwd", "env"}`` activates it (it answers
``{"status": "ok"}`` once the kernel's sockets are bound); a wrong token is answered
``{"status": "refused"}`` and changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass

from ..errors import BerthError, RequestError
from ..resources import Resources, resource_kinds
from ..runtime.base import ContainerInfo, ContainerSpec, Mount

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

    ``targets`` are where the container has empty hand-over slots (:mod:`.mount_handover`):
    a request whose mounts are at or under them gets them bound in at adoption. ``mounts`` are
    fixed mounts (``c.WarmPool.mounts``: only requests with exactly these fit). ``network`` is
    the one user's network in standalone mode, whose containers wait where their kernels will
    run; ``None`` for the shared, isolated pool network, left for the user's network on adoption.
    """

    image: str
    mounts: tuple[Mount, ...] = ()
    network: str | None = None
    targets: tuple[str, ...] = ()

    def describe(self) -> str:
        mounts = ", ".join(f"{m.source}:{m.target}{':ro' if m.read_only else ''}" for m in self.mounts)
        slots = f"hand-over at {', '.join(self.targets)}" if self.targets else ""
        where = "; ".join(x for x in (mounts, slots) if x) or "no mounts"
        return f"{self.image} ({where}{f'; on {self.network}' if self.network else ''})"


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


async def create_ready(runtime, spec: ContainerSpec, token: str, timeout: float) -> ContainerInfo:
    """Start a pool container and wait until its imports are done; on any failure it is removed, also when
    the start is cancelled while the engine creates it (the pool drains): the engine's call goes on in its
    thread, so the container is waited for and removed rather than left behind on the pool network."""
    info = None
    try:
        run = asyncio.ensure_future(runtime.run(spec))
        try:
            info = await asyncio.shield(run)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                info = await run
            raise
        await wait_ready(runtime, info, token, timeout)
        return info
    except BaseException:
        if info is not None:
            await asyncio.shield(runtime.remove(info.id))
        raise


async def wait_ready(runtime, info: ContainerInfo, token: str, timeout: float) -> None:
    """Poll the activation port until the pool kernel has finished its imports."""
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


async def activate(runtime, pc: PoolContainer, spec: ContainerSpec, timeout: float, log) -> str:
    """New limits, the user's network and the activation, all at once; returns the kernel's
    address on the user's network once all three are done.

    A container on the shared pool network joins the user's network (the activation goes over
    the pool network meanwhile); one that waited on the user's network stays, unless a restart
    asks for its old address, which it gets after the activation (the kernel binds 0.0.0.0).

    The kernel's initialisation may begin before ``docker update`` lands: it then runs briefly
    under the idle limits (the unused CPU quota of the current period covers that), but no user
    code runs before the start returns, and it returns only after the update.
    """
    env = dict(spec.env)
    connection = json.loads(env.pop("BERTH_CONNECTION"))
    message = {"token": pc.token, "connection": connection, "cwd": spec.working_dir, "env": env}
    updated = asyncio.ensure_future(runtime.update_resources(pc.id, spec.resources))
    joined = asyncio.ensure_future(_join(runtime, pc, spec, log)) if pc.key.network is None else None
    try:
        reply = await pool_request(pc.ip, message, timeout)
        await updated
        if joined is not None:
            ip = await joined
        elif spec.ip and spec.ip != pc.ip and reply.get("status") == "ok":
            await runtime.disconnect_network(pc.id, spec.network)
            ip = await _join(runtime, pc, spec, log)
        else:
            ip = pc.ip
    except BaseException:
        await asyncio.gather(updated, *([joined] if joined is not None else []), return_exceptions=True)
        raise
    if reply.get("status") != "ok":
        raise ValueError(f"the pool kernel answered {reply.get('status')}: {reply.get('message')}")
    if not ip:
        raise ValueError(f"no address on network {spec.network}")
    return ip


async def adopt_or_cold(pc: PoolContainer, adoption, *, discard, refill, log, what: str) -> str | None:
    """Await ``adoption`` (the steps that turn ``pc`` into what was asked; it returns the address),
    the one shape both pools share: any error is logged with ``what`` (the pool's words) and the
    start goes on cold (``None``); on an error or a cancellation ``discard()`` throws the container
    away; ``refill()`` runs whatever happens, once the adoption is over.
    """
    try:
        return await adoption
    except Exception as e:  # whatever went wrong, the start goes on cold
        why = getattr(e, "message", None) or f"{type(e).__name__}: {e}"
        log.warning("%s %s could not be adopted (%s); starting cold", what, pc.info.name, why)
        discard()
        return None
    except BaseException:
        discard()
        raise
    finally:
        refill()


async def _join(runtime, pc: PoolContainer, spec: ContainerSpec, log) -> str | None:
    try:
        return await runtime.connect_network(pc.id, spec.network, ip=spec.ip)
    except BerthError as e:
        if not spec.ip:
            raise
        log.warning("Kernel %s could not keep its address %s (%s); joining on a new one", spec.name, spec.ip, e.message)
        return await runtime.connect_network(pc.id, spec.network)


async def settle(runtime, pc: PoolContainer, spec: ContainerSpec, pool_network: str, log) -> None:
    """After the start: leave the pool network, take the kernel's container name."""
    if pc.key.network is None:
        await runtime.disconnect_network(pc.id, pool_network)
    try:
        await runtime.rename(pc.id, spec.name)
    except BerthError as e:
        log.info("Adopted container %s keeps its pool name: %s", pc.info.name, e.message)


__all__ = [
    "POOL_COMMAND",
    "POOL_PORT",
    "POOL_USER",
    "PoolContainer",
    "PoolKey",
    "create_ready",
    "fixed_kinds_unfit",
    "parse_mount",
    "pool_request",
    "wait_ready",
    "activate",
    "settle",
]

"""The warm pool: kernel containers started ahead of demand, adopted by a start request.

A pool container runs ``berth-kernel-pool`` (baked into Berth kernel images): an
interpreter that has already imported ipykernel, IPython and debugpy — most of a
kernel's start — and waits on POOL_PORT for one activation. A start request that fits
a pool (same image, same mounts, no GPU, shared memory within the pool's) takes a ready
container instead of creating one: ``docker update`` gives it the request's CPU, memory
(= memory+swap) and pids limits while the activation — the connection info (the session
key), the working directory and the environment, authenticated with a per-container
random token — reaches it; the kernel binds its sockets in the same process and answers.

Where pool containers wait depends on how the pool's mounts are known:

* configured (``c.WarmPool.mounts``, e.g. hub mode): on a shared pool network with
  inter-container traffic off, so only the host reaches them. On adoption the container
  joins the user's network (alongside the activation), the start returns its address
  there, and it leaves the pool network in the background;
* learned from the first request for the image (standalone: one user, every kernel
  mounting the server's root): on that user's own network, where the kernel will run,
  so adoption moves nothing.

Docker labels cannot change on a running container, so an adopted kernel keeps its
pool labels (``kind=pool``, ``owner=pool``) and is renamed ``berth-kernel-<id>``; the
ledger records which allocation it serves (by container id) and reconciliation maps
it that way. Pool containers are not in the ledger and count against no one until
adopted.

The pool never fails a start: when it has no fitting container, or adoption fails
for any reason, the service starts a new container as usual (a *cold* start).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import secrets
import time
from collections import deque
from dataclasses import dataclass, field

from traitlets import Float, Integer, List, Unicode
from traitlets.config import LoggingConfigurable

from ..errors import BerthError
from ..kernel_launch import KERNEL_COMMAND
from ..resources import Resources, parse_memory, resource_kinds
from ..runtime.base import ContainerInfo, ContainerSpec, Runtime
from ..runtime.labels import make_labels, parse_labels
from .activation import POOL_COMMAND, POOL_PORT, POOL_USER, PoolContainer, PoolKey, parse_mount, pool_request


@dataclass
class _KeyState:
    ready: deque = field(default_factory=deque)
    starting: int = 0
    retry_at: float = 0.0  #: after a failed fill, no new fill before this (monotonic) time


class WarmPool(LoggingConfigurable):
    """Pools of pre-started kernel containers, one per :class:`PoolKey`.

    ``BerthService`` creates it when ``pool_size`` > 0 and calls :meth:`adopt` from
    ``start_kernel``; :meth:`start` fills it in the background, :meth:`drain` empties it.
    """

    size = Integer(0, help="Ready containers kept per pool (set from BerthService.pool_size).")
    images = List(Unicode(), help="Images that get a pool (set from BerthService.pool_images).")
    mounts = List(
        Unicode(),
        default_value=None,
        allow_none=True,
        config=True,
        help="Mounts of pool containers, as source:target[:ro]; they wait on a shared pool network and join the "
        "user's network on adoption. Only requests with exactly these mounts can use the pool. None (default): "
        "the mounts and the user's network of the first kernel request for each pool image — standalone mode, "
        "where every kernel mounts the server's root directory; that first start is cold. Set it in hub mode.",
    )
    shm = Unicode(
        "64M",
        config=True,
        help="Shared memory (/dev/shm) of pool containers. It cannot change on a running container, so requests "
        "asking for more start cold, and adopted kernels have this much whatever they asked (tmpfs pages "
        "still count against their memory limit).",
    )
    idle_cpu = Float(
        0.25, config=True, help="CPU limit of a pool container until it is adopted (its imports run under it)."
    )
    idle_mem = Unicode(
        "256M", config=True, help="Memory limit of a pool container until it is adopted (at least the pool's shm)."
    )
    idle_pids = Integer(64, config=True, help="Process limit of a pool container until it is adopted.")
    refill_delay = Float(
        0.5,
        config=True,
        help="Seconds after an adoption before its replacement starts (so it does not compete with the kernel "
        "that was just adopted for CPU).",
    )
    ready_timeout = Float(60.0, config=True, help="Seconds a new pool container gets to finish its imports.")
    activation_timeout = Float(30.0, config=True, help="Seconds an adopted container gets to bind its kernel sockets.")
    retry_delay = Float(
        30.0, config=True, help="Seconds before a pool whose last container failed to start tries again."
    )
    fill_concurrency = Integer(2, config=True, help="Pool containers started at the same time (each runs its imports).")

    def __init__(self, runtime: Runtime, site: str, **kw):
        super().__init__(**kw)
        self.runtime = runtime
        self.site = site
        #: labels every container of this pool instance carries; reconciliation keeps only these
        self.run_id = secrets.token_hex(6)
        self.network = f"berth-pool-{site}"
        self._keys: dict[PoolKey, _KeyState] = {}
        self._learned_images: set[str] = set()
        self._adopted: set[str] = set()
        self._tasks: set[asyncio.Task] = set()
        self._settling: set[asyncio.Task] = set()
        self._timers: set[asyncio.TimerHandle] = set()
        self._slots = asyncio.Semaphore(max(1, self.fill_concurrency))
        self._changed = asyncio.Event()
        self._closed = False
        self._shm = parse_memory(self.shm, "WarmPool.shm")
        self._idle = Resources(
            cpu=self.idle_cpu,
            mem=max(parse_memory(self.idle_mem, "WarmPool.idle_mem"), self._shm),
            pids=self.idle_pids,
            shm=self._shm,
        )
        self._configured_mounts = None if self.mounts is None else tuple(parse_mount(m) for m in self.mounts)

    # -- life cycle ----------------------------------------------------------------------
    async def start(self) -> None:
        """Create the pool network and start filling (in the background; this returns at once).

        A runtime that cannot move containers between networks gets no pool (a warning says so).
        """
        try:
            await self.runtime.ensure_isolated_network(self.network, {"site": self.site, "kind": "pool"})
        except BerthError as e:
            self.log.warning("No warm pool: %s", e.message)
            self._closed = True
            return
        if self._configured_mounts is not None:
            for image in self.images:
                self._add_key(PoolKey(image, self._configured_mounts))

    async def drain(self) -> None:
        """Stop filling and remove every pool container that was not adopted."""
        self._closed = True
        for timer in self._timers:
            timer.cancel()
        if self._settling:  # adopted kernels finish leaving the pool network (a few docker calls)
            await asyncio.wait(self._settling, timeout=10)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        ids = [pc.id for state in self._keys.values() for pc in state.ready]
        for state in self._keys.values():
            state.ready.clear()
        try:
            for c in await self.runtime.list({"site": self.site, "kind": "pool", "pool_run": self.run_id}):
                if c.id not in self._adopted and c.id not in ids:
                    ids.append(c.id)
        except BerthError as e:
            self.log.warning("Could not list warm-pool containers to drain: %s", e.message)
        await asyncio.gather(*(self.runtime.remove(cid) for cid in ids), return_exceptions=True)
        try:
            await self.runtime.remove_network(self.network)
        except BerthError as e:  # adopted kernels may still be attached; the next start reuses it
            self.log.debug("Pool network %s kept: %s", self.network, e.message)
        self.log.info("Warm pool drained: %d container(s) removed", len(ids))

    def keeps(self, container: ContainerInfo) -> bool:
        """For reconciliation: is this unadopted pool container one of this pool's own?"""
        labels = parse_labels(container.labels)
        return labels.get("pool_run") == self.run_id and container.id not in self._adopted and not self._closed

    # -- state -----------------------------------------------------------------------------
    def status(self) -> dict[str, dict[str, int]]:
        """``{pool description: {"ready": n, "starting": m}}``."""
        return {k.describe(): {"ready": len(s.ready), "starting": s.starting} for k, s in self._keys.items()}

    def ready_count(self) -> int:
        return sum(len(s.ready) for s in self._keys.values())

    async def wait_full(self, timeout: float = 120.0) -> None:
        """Wait until every pool holds ``size`` ready containers (for tests and benchmarks)."""
        deadline = time.monotonic() + timeout
        while self._keys and not all(len(s.ready) >= self.size for s in self._keys.values()):
            self._changed.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"the warm pool is not full after {timeout} s: {self.status()}")
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except asyncio.TimeoutError:
                pass
        if not self._keys:
            raise TimeoutError(
                "the warm pool has no pools yet (their mounts are learned from the first kernel request)"
            )

    # -- which requests fit -----------------------------------------------------------------
    def unfit_reason(self, spec: ContainerSpec) -> str | None:
        """Why this kernel spec cannot use any pool (``None``: it can, if one has a container)."""
        if spec.image not in self.images:
            return f"no pool for image {spec.image}"
        if spec.gpu_device_ids:
            return "GPU devices cannot be added to a running container"
        for kind in resource_kinds():  # what cannot change on a running container must fit what the pool has
            asked, held = getattr(spec.resources, kind.name), getattr(self._idle, kind.name)
            if not kind.live and asked > held:
                return f"{kind.word} {kind.format(asked)} is more than the pool's {kind.format(held)}"
        if list(spec.command) != KERNEL_COMMAND or spec.user != POOL_USER or spec.init:
            return "the container does not run the standard kernel command and user"
        if self._configured_mounts is not None:
            if tuple(spec.mounts) != self._configured_mounts:
                return "its mounts differ from the pool's (mounts cannot be added to a running container)"
        elif spec.image in self._learned_images and self._key_for(spec) not in self._keys:
            return (
                "its mounts or its user's network differ from the pool's, learned from the first request for the image"
            )
        return None

    def _key_for(self, spec: ContainerSpec) -> PoolKey:
        """Configured mounts: the shared pool network; learned: where the first request's kernel ran."""
        if self._configured_mounts is not None:
            return PoolKey(spec.image, self._configured_mounts)
        return PoolKey(spec.image, tuple(spec.mounts), spec.network)

    # -- adoption ---------------------------------------------------------------------------
    async def adopt(self, spec: ContainerSpec, image_id: str | None = None) -> ContainerInfo | None:
        """Turn a ready pool container into the kernel ``spec`` describes; ``None``: start it cold.

        ``image_id`` is the image's current content id: a pool container of an older build
        of the same tag is discarded, never adopted.
        """
        if self._closed or self.size <= 0:
            return None
        reason = self.unfit_reason(spec)
        if reason:
            self.log.debug("Kernel %s starts cold: %s", spec.name, reason)
            return None
        key = self._key_for(spec)
        if key not in self._keys:  # learning the mounts and network from this first request
            self._learned_images.add(spec.image)
            self._add_key(key)
            return None
        pc = self._take(key, image_id)
        if pc is None:
            self._schedule_fill(key)
            self.log.info("Kernel %s starts cold: the warm pool for %s is empty", spec.name, key.describe())
            return None
        t0 = time.monotonic()
        try:
            ip = await self._activate(pc, spec)
        except Exception as e:  # whatever went wrong, the start goes on cold
            why = getattr(e, "message", None) or f"{type(e).__name__}: {e}"
            self.log.warning(
                "Warm-pool container %s could not be adopted (%s); starting a new container", pc.info.name, why
            )
            self._background(self.runtime.remove(pc.id))
            return None
        except BaseException:
            self._background(self.runtime.remove(pc.id))
            raise
        finally:
            # The replacement starts once this adoption is done: it must not take the address
            # a restarted kernel is getting back, nor the CPU the activation needs.
            self._schedule_fill(key, self.refill_delay)
        self._adopted.add(pc.id)
        settle = self._background(self._settle(pc, spec))
        self._settling.add(settle)
        settle.add_done_callback(self._settling.discard)
        self.log.info(
            "Kernel %s adopted warm-pool container %s in %.0f ms",
            spec.name,
            pc.info.name,
            1000 * (time.monotonic() - t0),
        )
        return dataclasses.replace(pc.info, ip=ip)

    def _take(self, key: PoolKey, image_id: str | None) -> PoolContainer | None:
        state = self._keys[key]
        while state.ready:
            pc = state.ready.popleft()
            if image_id and pc.info.image_id and pc.info.image_id != image_id:
                self.log.info("Discarding warm-pool container %s: built from an older %s", pc.info.name, key.image)
                self._background(self.runtime.remove(pc.id))
                continue
            self._changed.set()
            return pc
        return None

    async def _activate(self, pc: PoolContainer, spec: ContainerSpec) -> str:
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
        updated = asyncio.ensure_future(self.runtime.update_resources(pc.id, spec.resources))
        joined = asyncio.ensure_future(self._join(pc, spec)) if pc.key.network is None else None
        try:
            reply = await pool_request(pc.ip, message, self.activation_timeout)
            await updated
            if joined is not None:
                ip = await joined
            elif spec.ip and spec.ip != pc.ip and reply.get("status") == "ok":
                await self.runtime.disconnect_network(pc.id, spec.network)
                ip = await self._join(pc, spec)
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

    async def _join(self, pc: PoolContainer, spec: ContainerSpec) -> str | None:
        try:
            return await self.runtime.connect_network(pc.id, spec.network, ip=spec.ip)
        except BerthError as e:
            if not spec.ip:
                raise
            self.log.warning(
                "Kernel %s could not keep its address %s (%s); joining on a new one", spec.name, spec.ip, e.message
            )
            return await self.runtime.connect_network(pc.id, spec.network)

    async def _settle(self, pc: PoolContainer, spec: ContainerSpec) -> None:
        """After the start: leave the pool network, take the kernel's container name."""
        if pc.key.network is None:
            await self.runtime.disconnect_network(pc.id, self.network)
        try:
            await self.runtime.rename(pc.id, spec.name)
        except BerthError as e:
            self.log.info("Adopted container %s keeps its pool name: %s", pc.info.name, e.message)

    # -- filling ------------------------------------------------------------------------------
    def _add_key(self, key: PoolKey) -> None:
        if key not in self._keys:
            self._keys[key] = _KeyState()
            self.log.info("Warm pool for %s: keeping %d container(s) ready", key.describe(), self.size)
        self._schedule_fill(key)

    def _schedule_fill(self, key: PoolKey, delay: float = 0.0) -> None:
        if self._closed:
            return
        if delay > 0:
            self._later(delay, self._schedule_fill, key)
            return
        state = self._keys[key]
        if time.monotonic() < state.retry_at:
            return
        while len(state.ready) + state.starting < self.size:
            state.starting += 1
            self._background(self._start_one(key, state))

    def _later(self, delay: float, fn, *args) -> None:
        def run():
            self._timers.discard(handle)
            fn(*args)

        handle = asyncio.get_running_loop().call_later(delay, run)
        self._timers.add(handle)

    def _background(self, coro) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.log.warning("Warm-pool background task failed: %s", task.exception())

    def _spec(self, key: PoolKey, token: str) -> ContainerSpec:
        name = f"berth-pool-{self.site}-{secrets.token_hex(4)}"
        return ContainerSpec(
            name=name,
            image=key.image,
            command=list(POOL_COMMAND),
            resources=self._idle,
            labels=make_labels(
                owner="pool", kind="pool", subject=name, site=self.site, pool_run=self.run_id, image_ref=key.image
            ),
            env={
                "BERTH_POOL_TOKEN": token,
                "BERTH_POOL_PORT": str(POOL_PORT),
                "HOME": "/home/jovyan",
                "JUPYTER_PLATFORM_DIRS": "1",
            },
            mounts=list(key.mounts),
            network=key.network or self.network,
            user=POOL_USER,
        )

    async def _start_one(self, key: PoolKey, state: _KeyState) -> None:
        token = secrets.token_urlsafe(32)
        info = None
        try:
            async with self._slots:
                info = await self.runtime.run(self._spec(key, token))
                await self._wait_ready(info, token)
            pc = PoolContainer(info=info, key=key, token=token, ip=info.ip)
        except (BerthError, OSError, ValueError, asyncio.TimeoutError) as e:
            why = getattr(e, "message", None) or f"{type(e).__name__}: {e}"
            self.log.warning(
                "Warm pool for %s: a container failed to start (%s); retrying in %.0f s. Images built before the "
                "warm pool existed lack berth-kernel-pool: rebuild with `berth images bootstrap`.",
                key.describe(),
                why,
                self.retry_delay,
            )
            state.retry_at = time.monotonic() + self.retry_delay
            if info is not None:
                await self.runtime.remove(info.id)
            self._later(self.retry_delay, self._schedule_fill, key)
            return
        except BaseException:
            if info is not None:
                await asyncio.shield(self.runtime.remove(info.id))
            raise
        finally:
            state.starting -= 1
        if self._closed:
            await self.runtime.remove(pc.id)
            return
        state.ready.append(pc)
        self._changed.set()

    async def _wait_ready(self, info: ContainerInfo, token: str) -> None:
        """Poll the activation port until the pool kernel has finished its imports."""
        if not info.ip:
            raise ValueError(f"pool container {info.name} has no address")
        deadline = time.monotonic() + self.ready_timeout
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
                raise asyncio.TimeoutError(f"pool container {info.name} not ready after {self.ready_timeout:.0f} s")
            if now - checked > 1.0:
                checked = now
                state = await self.runtime.inspect(info.id)
                if state is None or not state.running:
                    logs = (await self.runtime.logs(info.id, tail=5)).strip() if state else ""
                    raise ValueError(f"pool container {info.name} stopped ({logs or 'no output'})")
            await asyncio.sleep(0.1)


__all__ = ["POOL_PORT", "PoolContainer", "PoolKey", "WarmPool", "parse_mount", "pool_request"]

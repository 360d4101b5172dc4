"""The warm pool: kernel containers started ahead of demand, adopted by a start request.

A pool container runs ``berth-kernel-pool`` (in Berth kernel images): an interpreter that
has imported ipykernel, IPython and debugpy (most of a kernel's start) and waits on POOL_PORT
for one activation. A start that fits a pool (same image, mounts it can hand over, no GPU,
shared memory within the pool's) takes a ready container instead of creating one: ``docker update`` gives it the request's CPU, memory
(= memory+swap) and pids limits while the activation — the connection info (the session
key), the working directory and the environment, authenticated with a per-container
random token — reaches it; the kernel binds its sockets in the same process and answers.

The user's files reach a pool container by mount hand-over (:mod:`.mount_handover`): it has
empty slots at ``handover_targets`` and, on adoption, the request's volume and folders are bound
into them on the host. A request with mounts elsewhere teaches the pool new targets (cold once).
Standalone (``user`` set), pool containers wait on that user's network; otherwise on a shared,
isolated pool network, joining the user's on adoption. ``size`` wait per pool, up to ``max_size``
under recent demand, never more in all than the ``memory`` reserve holds (docs/warm-pool.md).

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
import os
import secrets
import time
from collections import deque
from dataclasses import dataclass, field

from traitlets import Float, Integer, List, Unicode, default

from ..errors import BerthError
from ..kernel_launch import FOLDERS_ROOT, KERNEL_COMMAND
from ..resources import parse_memory
from ..runtime.base import ContainerInfo, ContainerSpec, Runtime
from ..runtime.labels import make_labels, parse_labels
from . import pool_sizing as sizing
from .activation import (
    POOL_COMMAND,
    POOL_PORT,
    POOL_USER,
    PoolContainer,
    PoolKey,
    activate,
    adopt_or_cold,
    create_ready,
    fixed_kinds_unfit,
    parse_mount,
    pool_request,
    settle,
)
from .background import Background
from .filler import Filler
from .pool_mounts import PoolMounts
from .settings import PoolSettings


@dataclass
class _KeyState:
    ready: deque = field(default_factory=deque)
    starting: int = 0
    retry_at: float = 0.0  #: after a failed fill, no new fill before this (monotonic) time


class WarmPool(PoolSettings):
    """Pools of pre-started kernel containers, one per :class:`PoolKey`.

    ``BerthService`` creates it when ``pool_size`` > 0 and calls :meth:`adopt` from
    ``start_kernel`` and :meth:`released` when a kernel's container is removed; :meth:`start`
    fills it in the background, :meth:`drain` empties it.
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
        "no fixed mounts; the user's files are handed over at adoption (handover_targets).",
    )
    handover_targets = List(
        Unicode(),
        config=True,
        help="Directories inside pool containers where a request's volume and folders are bind-mounted at "
        "adoption (mount hand-over, needs the service to run as root on the engine's host). Default: "
        "/home/jovyan/folders; the front ends add the work directory (standalone: the server's root directory; "
        "hub: BerthHubService.user_volume_target). A request with mounts elsewhere teaches the pool its targets.",
    )
    user = Unicode(
        "",
        config=True,
        help="Standalone: the one user of this service; pool containers wait on that user's network, so adoption "
        "moves nothing. Empty (hub mode): they wait on a shared pool network and join the user's on adoption.",
    )
    max_size = Integer(4, config=True, help="Most ready containers per pool while demand is high.")
    demand_window = Float(
        60.0, config=True, help="Seconds of adoptions counted as demand (a pool grows to them, up to max_size)."
    )
    max_pools = Integer(3, config=True, help="Most pools (image and hand-over targets) kept per image.")
    memory = Unicode(
        "1G",
        config=True,
        help="Memory reserve of the pool: its containers' idle limits together never exceed it. Admission gives "
        "out the host's memory less mem_reserved and this reserve, so the pool never takes what kernels need.",
    )
    fill_concurrency = Integer(2, config=True, help="Pool containers started at the same time (each runs its imports).")

    defaults = {
        "shm": "64M",
        "idle_cpu": 0.5,
        "idle_mem": "256M",
        "idle_pids": 64,
        "refill_delay": 0.5,
        "ready_timeout": 60.0,
        "activation_timeout": 30.0,
        "retry_delay": 30.0,
    }

    @default("handover_targets")
    def _handover_targets_default(self):
        return [FOLDERS_ROOT]

    def __init__(self, runtime: Runtime, site: str, data_dir: str = "", user_network=None, **kw):
        super().__init__(**kw)
        self._user_network = user_network  #: async (user) → that user's network name
        self.runtime = runtime
        self.site = site
        #: labels every container of this pool instance carries; reconciliation keeps only these
        self.run_id = secrets.token_hex(6)
        self.network = f"berth-pool-{site}"
        self._keys: dict[PoolKey, _KeyState] = {}
        self._demand: dict[PoolKey, deque] = {}
        self._adopted: set[str] = set()
        self._bg = Background(self.log, "warm-pool")
        self._settling: set[asyncio.Task] = set()
        self._slots = asyncio.Semaphore(max(1, self.fill_concurrency))
        self._filler = Filler(f"berth-pool-{site}")
        self._changed = asyncio.Event()
        self._closed = False
        self._idle = self.idle_resources()
        self._configured_mounts = None if self.mounts is None else tuple(parse_mount(m) for m in self.mounts)
        #: bytes of memory the pool may hold (kept out of what admission gives out)
        self.reserve = self._memory = parse_memory(self.memory, "WarmPool.memory")
        self._home: str | None = None  #: standalone: the user's network the pool waits on
        self.handover = PoolMounts(runtime, site, os.path.join(data_dir or ".", "handover"), self.log)

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
            return
        await self.handover.setup()
        if self.user and self._user_network is not None:
            try:
                self._home = await self._user_network(self.user)
            except BerthError as e:
                self.log.warning("Warm pool on the shared pool network: %s", e.message)
        wanted = [t for t in self.handover_targets if t.startswith("/") and t.rstrip("/")]  # never "/" itself
        targets = () if self.handover.unavailable else tuple(dict.fromkeys(wanted))
        if self.handover.unavailable:
            self.log.warning(
                "Warm pool without mount hand-over (%s): only kernels without mounts adopt", self.handover.unavailable
            )
        for image in self.images:
            self._add_key(PoolKey(image, (), self._home, targets))

    async def drain(self) -> None:
        """Stop filling and remove every pool container that was not adopted."""
        self._closed = True
        self._bg.stop_timers()
        if self._settling:  # adopted kernels finish leaving the pool network (a few docker calls)
            await asyncio.wait(self._settling, timeout=10)
        await self._bg.cancel_tasks()
        await asyncio.to_thread(self._filler.close)
        ids = [pc.id for state in self._keys.values() for pc in state.ready]
        for state in self._keys.values():
            state.ready.clear()
        try:
            for c in await self.runtime.list({"site": self.site, "kind": "pool", "pool_run": self.run_id}):
                if c.id not in self._adopted and c.id not in ids:
                    ids.append(c.id)
        except BerthError as e:
            self.log.warning("Could not list warm-pool containers to drain: %s", e.message)
        await asyncio.gather(*(self._discard(cid) for cid in ids), return_exceptions=True)
        await self.handover.teardown()
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
    def _unfit(self, spec: ContainerSpec) -> str | None:
        """Why no pool container could ever run this spec, whatever its mounts."""
        if spec.image not in self.images:
            return f"no pool for image {spec.image}"
        if spec.gpu_device_ids:
            return "GPU devices cannot be added to a running container"
        fixed = fixed_kinds_unfit(spec.resources, self._idle)  # what cannot change on a running container
        if fixed:
            return fixed
        if list(spec.command) != KERNEL_COMMAND or spec.user != POOL_USER or spec.init:
            return "the container does not run the standard kernel command and user"
        return None

    def unfit_reason(self, spec: ContainerSpec) -> str | None:
        """Why this kernel spec cannot use any pool (``None``: it can, if one has a container)."""
        return self._unfit(spec) or self._match(spec)[1]

    def _match(self, spec: ContainerSpec) -> tuple[PoolKey | None, str | None]:
        """The pool this spec's mounts and network fit, or why none does."""
        if self._configured_mounts is not None:
            if tuple(spec.mounts) != self._configured_mounts:
                return None, "its mounts differ from the pool's (mounts cannot be added to a running container)"
            return PoolKey(spec.image, self._configured_mounts), None
        why = f"no pool for image {spec.image}"
        for key in self._keys:
            if key.image != spec.image:
                continue
            if key.network is not None and key.network != spec.network:
                why = f"the pool waits on {key.network}, the kernel runs on {spec.network}"
                continue
            why = self.handover.unfit_reason(key.targets, spec.mounts)
            if why is None:
                return key, None
        return None, why

    def _learn(self, spec: ContainerSpec) -> None:
        """A request whose mounts fit no pool: a pool with slots where they go (its later starts adopt)."""
        if self._configured_mounts is not None or self.handover.unavailable or not spec.mounts:
            return
        if sum(k.image == spec.image for k in self._keys) >= self.max_pools:
            return
        targets = [m.target for m in spec.mounts if not m.target.startswith(FOLDERS_ROOT + "/")]
        key = PoolKey(spec.image, (), self._home, tuple(dict.fromkeys([*targets, FOLDERS_ROOT])))
        if self.handover.unfit_reason(key.targets, spec.mounts) is None:
            self._add_key(key)

    # -- adoption ---------------------------------------------------------------------------
    async def adopt(self, spec: ContainerSpec, image_id: str | None = None) -> ContainerInfo | None:
        """Turn a ready pool container into the kernel ``spec`` describes; ``None``: start it cold.

        ``image_id`` is the image's current content id: a pool container of an older build
        of the same tag is discarded, never adopted.
        """
        if self._closed or self.size <= 0:
            return None
        reason = self._unfit(spec)
        key, why = (None, reason) if reason else self._match(spec)
        if key is None:
            self.log.debug("Kernel %s starts cold: %s", spec.name, why)
            if not reason:  # only its mounts differ: pool containers with slots where they go, for next time
                self._learn(spec)
            return None
        self._demand.setdefault(key, deque()).append(time.monotonic())
        pc = self._take(key, image_id)
        if pc is None:
            self._schedule_fill(key)
            self.log.info("Kernel %s starts cold: the warm pool for %s is empty", spec.name, key.describe())
            return None
        t0 = time.monotonic()
        ip = await adopt_or_cold(
            pc,
            self._activate(pc, key, spec),
            discard=lambda: self._bg.run(self._discard(pc.id)),
            # The replacement starts once this adoption is done: it must not take the address
            # a restarted kernel is getting back, nor the CPU the activation needs.
            refill=lambda: self._schedule_fill(key, self.refill_delay),
            log=self.log,
            what="Warm-pool container",
        )
        if ip is None:
            return None
        self._adopted.add(pc.id)
        settling = self._bg.run(settle(self.runtime, pc, spec, self.network, self.log))
        self._settling.add(settling)
        settling.add_done_callback(self._settling.discard)
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
                self._bg.run(self._discard(pc.id))
                continue
            self._changed.set()
            return pc
        return None

    # -- filling ------------------------------------------------------------------------------
    def _add_key(self, key: PoolKey) -> None:
        if key not in self._keys:
            self._make_room(self.size)
            self._keys[key] = _KeyState()
            self.log.info("Warm pool for %s: keeping %d container(s) ready", key.describe(), self.size)
        self._schedule_fill(key)

    def _target(self, key: PoolKey) -> int:
        return sizing.target(self._demand.get(key), self.size, self.max_size, self.demand_window)

    def _room(self) -> int:
        return sizing.room(self._memory, self._idle.mem, self._keys.values())

    def _make_room(self, wanted: int) -> None:
        """Before a new pool: drop the pools with no adoption for longest until ``wanted`` more fit."""
        for old in sizing.least_wanted(self._keys, self._demand):
            if self._room() >= wanted:
                return
            state = self._keys.pop(old)
            self.log.info("Warm pool for %s dropped (no recent adoption; memory reserve full)", old.describe())
            while state.ready:
                self._bg.run(self._discard(state.ready.popleft().id))

    async def _activate(self, pc: PoolContainer, key: PoolKey, spec: ContainerSpec) -> str:
        """The user's files first (the activation changes into the work directory), then the activation."""
        if key.targets:
            await self.handover.hand_over(pc.id, pc.info.name, key.targets, spec.mounts)
        return await activate(self.runtime, pc, spec, self.activation_timeout, self.log)

    async def _discard(self, container_id: str) -> None:
        """Remove a pool container that will never be adopted, and release its hand-over slots."""
        try:
            await self.runtime.remove(container_id)
        finally:
            await self.handover.release(container_id)

    async def released(self, container_id: str) -> None:
        """An adopted kernel's container was removed: unmount what was handed to it."""
        if self.handover.holds(container_id):
            await self.handover.release(container_id)

    def _schedule_fill(self, key: PoolKey, delay: float = 0.0) -> None:
        if self._closed:
            return
        if delay > 0:
            self._bg.later(delay, self._schedule_fill, key)
            return
        state = self._keys.get(key)
        if state is None or time.monotonic() < state.retry_at:
            return
        while len(state.ready) + state.starting < self._target(key) and self._room() > 0:
            state.starting += 1
            self._bg.run(self._start_one(key, state))

    def _spec(self, key: PoolKey, token: str) -> ContainerSpec:
        name = f"berth-pool-{self.site}-{secrets.token_hex(4)}"
        slots = self.handover.slots(name, key.targets)  # empty directories the user's files are bound into
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
            mounts=list(key.mounts) + slots,
            network=key.network or self.network,
            user=POOL_USER,
        )

    async def _start_one(self, key: PoolKey, state: _KeyState) -> None:
        token = secrets.token_urlsafe(32)
        spec = self._spec(key, token)
        try:
            async with self._slots:  # created on the filler's thread: it goes on between a sync client's calls
                info = await self._filler.run(create_ready(self.runtime, spec, token, self.ready_timeout))
            self.handover.remember(info.id, spec.name)
            await self.handover.note_process(info.id)
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
            await self.handover.release("", spec.name)  # (the container itself is removed already)
            self._bg.later(self.retry_delay, self._schedule_fill, key)
            return
        except BaseException:
            await asyncio.shield(self.handover.release("", spec.name))
            raise
        finally:
            state.starting -= 1
        if self._closed or self._keys.get(key) is not state:  # drained, or the pool was dropped meanwhile
            await self._discard(pc.id)
            return
        state.ready.append(pc)
        self._changed.set()


__all__ = ["POOL_PORT", "PoolContainer", "PoolKey", "WarmPool", "parse_mount", "pool_request"]

"""A bounded chaos run against the embedded service and the real engine (issue 20, item 9).

Ten users start and stop small kernels from a few concurrent workers while a chaos task, at
random, kills kernel containers (``docker kill``), removes them (``docker rm -f``), removes
users' networks and restarts the service (a new ``BerthService`` on the same ledger, which
reconciles). At checkpoints the workers pause, the engine's events settle, and the
invariants are checked:

* the ledger's live allocations are exactly the running kernel containers of the site, and
  none is left reserved;
* no user over the policy (kernels, CPU in total), the host never over capacity;
* every usage record closed with a reason;
* at the end, after every kernel is stopped: nothing live, no container of the site left.

Used by tests/test_chaos.py (short) and benchmarks/chaos.py (long, figures in docs).
The service restarts here are orderly (a stop, then a start): a kill -9 of the service
process is tests/test_hub_service.py's burst test.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import time
import uuid
from dataclasses import dataclass, field

import docker
from traitlets.config import Config

from jupyter_berth.errors import BerthError, CapacityError, ConflictError, NotFoundError, PolicyError
from jupyter_berth.runtime.docker import DockerRuntime
from jupyter_berth.service import BerthService

USERS = [f"chaos{i}" for i in range(10)]
POLICY = {
    "max_cpu": 0.25,
    "max_mem": "256M",
    "max_kernels": 2,
    "total_cpu": 0.3,
    "default": {"cpu": 0.1, "mem": "96M"},
}


@dataclass
class Figures:
    cycles: int = 0
    started: int = 0
    stopped: int = 0
    refused: int = 0  #: policy or capacity refusals (expected: the users push against their limits)
    casualties: int = 0  #: operations that failed because chaos hit them (kernel gone, network removed)
    unexpected: list = field(default_factory=list)
    casualty_messages: dict = field(default_factory=dict)  #: first words of each kind of casualty, counted
    kills: int = 0
    removals: int = 0
    network_removals: int = 0
    network_attempts: int = 0  #: the engine refuses to remove a network containers are attached to
    restarts: int = 0
    checkpoints: int = 0
    settle_seconds: list = field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> dict:
        out = dict(self.__dict__)
        out["unexpected"] = [repr(e) for e in self.unexpected]
        out["settle_max"] = max(self.settle_seconds or [0])
        return out


class Chaos:
    def __init__(self, data_dir: str, *, cycles: int, workers: int = 4, seed: int | None = None):
        self.data_dir = data_dir
        self.cycles = cycles
        self.workers = workers
        self.random = random.Random(seed)
        self.site = f"chaos{uuid.uuid4().hex[:8]}"
        self.figures = Figures()
        self.service: BerthService | None = None
        self._active = 0
        self._idle = asyncio.Event()
        self._open = asyncio.Event()
        self._open.set()
        self._pause_lock = asyncio.Lock()
        self._done = False
        self.client = docker.from_env()

    # -- the service ------------------------------------------------------------------------------
    async def _new_service(self) -> BerthService:
        c = Config()
        c.BerthService.data_dir = self.data_dir
        c.BerthService.site_id = self.site
        c.UsageTracker.sample_interval = 0
        c.BerthService.stop_timeout = 1
        c.BerthService.default_policy = POLICY
        c.EgressPolicy.enabled = False  # not what this run is about; leaves no firewall chains
        c.BerthService.pool_size = 0  # the warm pool (on by default) is not what this run checks either
        service = BerthService(config=c, runtime=DockerRuntime())
        await service.start()
        return service

    @contextlib.asynccontextmanager
    async def _operation(self):
        await self._open.wait()
        self._active += 1
        self._idle.clear()
        try:
            yield self.service
        finally:
            self._active -= 1
            if self._active == 0:
                self._idle.set()

    @contextlib.asynccontextmanager
    async def _paused(self):
        async with self._pause_lock:  # one pauser at a time (a restart, a checkpoint)
            self._open.clear()
            if self._active:
                await self._idle.wait()
            try:
                yield
            finally:
                self._open.set()

    # -- the actors -------------------------------------------------------------------------------
    async def _worker(self) -> None:
        while not self._done and self.figures.cycles < self.cycles:
            self.figures.cycles += 1
            user = self.random.choice(USERS)
            async with self._operation() as service:
                try:
                    mine = [a.subject for a in await service.list_kernels(user)]
                    if len(mine) < 3 and self.random.random() < 0.65:  # a third one: refused by the policy
                        await service.start_kernel(user, kernel_id=f"c-{uuid.uuid4().hex[:10]}")
                        self.figures.started += 1
                    elif mine:
                        await service.stop_kernel(user, self.random.choice(mine), now=True)
                        self.figures.stopped += 1
                except (PolicyError, CapacityError):
                    self.figures.refused += 1
                except (NotFoundError, ConflictError) as e:
                    self._casualty(e)  # killed, removed or stopped (by another worker) under our feet
                except BerthError as e:
                    self._casualty(e)  # e.g. a network removed mid-start
                    if "network" not in e.message and "gone" not in e.message and "No such" not in e.message:
                        self.figures.unexpected.append(e)
                except Exception as e:  # noqa: BLE001 - recorded, the run goes on
                    self.figures.unexpected.append(e)

    def _casualty(self, e: BerthError) -> None:
        self.figures.casualties += 1
        words = " ".join(re.sub(r"[0-9a-f-]{8,}|c-[0-9a-f]{10}", "…", e.message).split()[:9])
        self.figures.casualty_messages[words] = self.figures.casualty_messages.get(words, 0) + 1

    def _site_containers(self, running_only: bool = True) -> list:
        return self.client.containers.list(
            all=not running_only,
            filters={"label": [f"io.jupyter.berth.site={self.site}", "io.jupyter.berth.kind=kernel"]},
        )

    async def _chaos(self) -> None:
        while not self._done:
            await asyncio.sleep(self.random.uniform(0.5, 2.0))
            action = self.random.random()
            try:
                if action < 0.12:
                    async with self._paused():
                        await self.service.stop()
                        self.service = await self._new_service()
                        self.figures.restarts += 1
                    continue
                victims = await asyncio.to_thread(self._site_containers)
                if action < 0.55 and victims:
                    await asyncio.to_thread(self.random.choice(victims).kill)
                    self.figures.kills += 1
                elif action < 0.85 and victims:
                    await asyncio.to_thread(self.random.choice(victims).remove, force=True)
                    self.figures.removals += 1
                else:
                    nets = await asyncio.to_thread(
                        self.client.networks.list, filters={"label": f"io.jupyter.berth.site={self.site}"}
                    )
                    if nets:
                        self.figures.network_attempts += 1
                        await asyncio.to_thread(self.random.choice(nets).remove)  # refused while in use
                        self.figures.network_removals += 1
            except docker.errors.APIError:
                pass  # raced with Berth (already gone, network in use): chaos is allowed to miss

    # -- the invariants ---------------------------------------------------------------------------
    async def check(self) -> None:
        async with self._paused():
            started = time.monotonic()
            deadline = started + 15
            while True:  # the engine's events settle (a kill is released after the watcher's grace)
                live = await self.service.list_kernels()
                running = {c.id for c in await asyncio.to_thread(self._site_containers)}
                if {a.container_id for a in live} == running and all(a.state == "running" for a in live):
                    break
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"ledger and engine disagree: live {[(a.subject, a.state, a.container_id) for a in live]}, "
                        f"running {sorted(running)}"
                    )
                await asyncio.sleep(0.25)
            self.figures.settle_seconds.append(round(time.monotonic() - started, 2))
            by_user: dict[str, list] = {}
            for a in live:
                by_user.setdefault(a.owner, []).append(a)
            for user, allocs in by_user.items():
                assert len(allocs) <= POLICY["max_kernels"], (user, allocs)
                assert sum(a.resources.cpu for a in allocs) <= POLICY["total_cpu"] + 1e-9, (user, allocs)
            node = await asyncio.to_thread(self.service.ledger.get_node, self.service.node_name)
            assert sum(a.resources.cpu for a in live) <= node.cpu + 1e-9
            records = await asyncio.to_thread(self.service.ledger.usage_records, None, None)
            assert all(r.end_reason for r in records), [r for r in records if not r.end_reason]
            self.figures.checkpoints += 1

    # -- the run ----------------------------------------------------------------------------------
    async def run(self, checkpoint_every: float = 20.0) -> Figures:
        started = time.monotonic()
        self.service = await self._new_service()
        chaos = asyncio.ensure_future(self._chaos())
        workers = [asyncio.ensure_future(self._worker()) for _ in range(self.workers)]
        try:
            while not all(w.done() for w in workers):
                await asyncio.wait(workers, timeout=checkpoint_every)
                await self.check()
            self._done = True
            chaos.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await chaos
            await self.check()
            for a in await self.service.list_kernels():
                with contextlib.suppress(NotFoundError):
                    await self.service.stop_kernel(a.owner, a.subject, now=True)
            assert await self.service.list_kernels() == []
            assert await asyncio.to_thread(self._site_containers, False) == []
        finally:
            self._done = True
            chaos.cancel()
            for w in workers:
                w.cancel()
            await self.cleanup()
        self.figures.seconds = round(time.monotonic() - started, 1)
        return self.figures

    async def cleanup(self) -> None:
        for c in await asyncio.to_thread(self._site_containers, False):
            with contextlib.suppress(docker.errors.APIError):
                c.remove(force=True)
        if self.service is not None:
            await self.service.stop()
        for n in self.client.networks.list(filters={"label": f"io.jupyter.berth.site={self.site}"}):
            with contextlib.suppress(docker.errors.APIError):
                n.remove()

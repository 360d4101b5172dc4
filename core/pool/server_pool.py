"""The server pool: single-user server containers started ahead, adopted by a hub spawn.

A pool container runs Berth's ``berth_server_pool`` launcher (mounted read-only from
:data:`LAUNCHER_DIR`; the image only needs ``jupyterhub-singleuser``) with the image's
interpreter: it imports jupyter_server, JupyterLab, JupyterHub's single-user extension and
the image's server extensions — most of a server's start — and waits on POOL_PORT for one
activation, authenticated by a per-container random token (the kernel pool's protocol,
:mod:`.activation`). Until then it waits on a pool network of its own with inter-container
traffic off, so only the host reaches it: no user's container can talk to it.

A spawn that fits (same image, same uid, the standard ``jupyterhub-singleuser`` command, no
GPU, no user mounts, shared memory within the pool's; see :meth:`ServerPool.unfit_reason`)
takes a ready container instead of creating one: ``docker update`` gives it the server's CPU,
memory and pids limits, it joins the user's network while the activation hands it the
user's environment (JupyterHub's API token, its ``JUPYTERHUB_*`` URLs, the spawner's
arguments and working directory), then it leaves the pool network and takes the server's
container name, all before the spawn returns. The spawner then waits for it to answer
over HTTP as it does for a cold start. Anything else — a different image or user, user
mounts, a GPU, an empty pool, an adoption that fails for any reason — starts the container
cold, as before, with no error.

Pool containers are labelled ``kind=server``, ``owner=pool``, ``server_pool=1`` and the site;
they are in no allocation, so the service's reconcile leaves them alone. The ledger records
which allocation an adopted one serves by container id (labels cannot change on a running
container), as for the kernel pool. After a hub restart, :meth:`ServerPool.start` takes the
previous run's ready containers back (their token is in their environment, which only the
engine's holder reads) and removes the rest.

The pool is created in the hub process (:func:`jupyter_berth.servers.open_for_servers`),
bounded by ``memory_reserve``, refilled in the background; ``c.ServerPool.size = 0`` turns
it off. docs/admin-hub.md ("Server pool") has the settings.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import secrets
import time
from collections import deque

from traitlets import Integer, List, Unicode

from ..errors import BerthError
from ..resources import parse_memory
from ..runtime.base import ContainerInfo, ContainerSpec, Mount, Runtime
from ..runtime.labels import make_labels, parse_labels
from .activation import (
    POOL_PORT,
    PoolContainer,
    PoolKey,
    adopt_or_cold,
    fixed_kinds_unfit,
    pool_request,
    wait_ready,
)
from .background import Background
from .pool_mounts import PoolMounts
from .settings import PoolSettings

#: Berth's launcher folder, mounted read-only into pool containers at :data:`LAUNCHER_TARGET`.
LAUNCHER_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "server_launcher")
LAUNCHER_TARGET = "/opt/berth-server-pool"
#: The command a pooled server must have been asked to run (its arguments are handed over).
SERVER_COMMAND = "jupyterhub-singleuser"
#: Environment that decides, at import, which server jupyterhub-singleuser runs: a spawn setting it starts cold.
IMPORT_TIME_ENV = ("JUPYTERHUB_SINGLEUSER_APP", "JUPYTERHUB_SINGLEUSER_EXTENSION")
POOL_LABEL = "server_pool"
#: The image pooled when neither c.ServerPool.images nor c.BerthSpawner.image says otherwise.
DEFAULT_IMAGE = "berth/singleuser:3.11"


class ServerMounts(PoolMounts):
    """Hand-over slots of the server pool, under a root of their own (``<site>-servers``), so that the
    kernel pool's clean-up and this one's never release each other's."""

    def __init__(self, runtime, site: str, base: str, log):
        super().__init__(runtime, f"{site}-servers", base, log)
        self.site = site

    async def setup(self) -> None:
        """Prepare the root; release the slots of server containers that are gone (after a hub restart)."""
        if self.unavailable:
            return
        try:
            await asyncio.to_thread(self.handover.setup)
            live = await self.runtime.list({"site": self.site, POOL_LABEL: "1"})
        except (OSError, BerthError) as e:
            self.unavailable = f"the hand-over directory could not be prepared: {getattr(e, 'message', e)}"
            return
        for c in live:  # waiting or adopted: their slot directory is named after the pool name (subject)
            self._names[c.id] = parse_labels(c.labels).get("subject") or c.name
        gone = await asyncio.to_thread(self.handover.clean, set(self._names.values()))
        if gone:
            self.log.info("Berth: released the hand-over slots of %d server(s) that are gone", len(gone))

    async def hand_over(self, container_id: str, name: str, targets, mounts, owner: str = "1000:100") -> None:
        """As the kernel pool's, and a volume that is still empty and root's is given to ``owner`` first:
        what the engine's copy-up does for a cold server (the image's notebook_dir belongs to the user)."""
        uid, _, gid = owner.partition(":")
        for m in mounts:
            if not m.source.startswith("/"):
                path = (await self._host_path(m)).source
                await asyncio.to_thread(_give_if_new, path, int(uid), int(gid or uid))
        await super().hand_over(container_id, name, targets, mounts)


def _give_if_new(path: str, uid: int, gid: int) -> None:
    st = os.stat(path)
    if st.st_uid == 0 and not os.listdir(path):
        os.chown(path, uid, gid)


class ServerPool(PoolSettings):
    """Ready single-user servers per image, adopted by :func:`jupyter_berth.servers.start_server`."""

    size = Integer(
        2,
        config=True,
        help="Single-user servers kept started and waiting per image in `images`, so that a spawn adopts one "
        "(JupyterLab's imports already done) instead of booting a new container. 0 disables the server pool. "
        "Bounded by memory_reserve / idle_mem. Pool containers count against no user until adopted.",
    )
    images = List(
        Unicode(),
        config=True,
        help="Server images that get a pool (a spawn with another image starts cold). Default: the hub's "
        "BerthSpawner.image (berth/singleuser:3.11 unless set).",
    )
    memory_reserve = Unicode(
        "1G",
        config=True,
        help="Host memory the waiting servers may hold in all (each is limited to idle_mem): the pool keeps at "
        "most memory_reserve / idle_mem servers, shared among its images, whatever `size` says. It is outside "
        "the ledger: on a host sized to its limit, add it to BerthService.mem_reserved.",
    )
    handover_targets = List(
        Unicode(),
        ["/home/jovyan/work", "/home/jovyan/folders"],
        config=True,
        help="Where a pooled server has empty hand-over slots: a spawn whose mounts (the user's volume at "
        "BerthSpawner.notebook_dir, folders under /home/jovyan/folders) are at or under them gets them bound in "
        "at adoption (mount propagation, docs/warm-pool.md); other mounts start cold.",
    )
    user = Unicode("1000:100", config=True, help="uid:gid of pool containers; a spawn as another user starts cold.")
    defaults = {
        "shm": "64M",
        "idle_cpu": 1.0,
        "idle_mem": "384M",
        "idle_pids": 256,
        "refill_delay": 1.0,
        "ready_timeout": 90.0,
        "activation_timeout": 10.0,
        "retry_delay": 30.0,
    }

    def __init__(
        self, runtime: Runtime, site: str, data_dir: str | None = None, default_image: str = DEFAULT_IMAGE, **kw
    ):
        super().__init__(**kw)
        self.runtime = runtime
        self.site = site
        self.images = list(dict.fromkeys(self.images or [default_image]))
        #: the user's volume and folders, handed over into slots of their own (never the kernel pool's)
        self.handover = ServerMounts(runtime, site, os.path.join(data_dir or ".", "handover"), self.log)
        self._targets = tuple(t for t in self.handover_targets if t.startswith("/") and t.rstrip("/"))
        self.run_id = secrets.token_hex(6)
        self.network = f"berth-servers-{site}"
        self._idle = self.idle_resources()
        reserve = parse_memory(self.memory_reserve, "ServerPool.memory_reserve")
        #: ready containers kept per image: `size`, within the memory reserve
        self.target = max(0, min(self.size, reserve // (self._idle.mem * len(self.images))))
        self._ready: dict[str, deque[PoolContainer]] = {image: deque() for image in self.images}
        self._starting: dict[str, int] = dict.fromkeys(self.images, 0)
        self._retry_at: dict[str, float] = dict.fromkeys(self.images, 0.0)
        self._bg = Background(self.log, "server-pool")
        self._changed = asyncio.Event()
        self._closed = False
        self.adopted = 0  #: spawns that adopted a pool container (for logs and benchmarks)

    # -- life cycle -------------------------------------------------------------------------
    async def start(self) -> None:
        """Make the pool network, take back (or remove) an earlier run's containers, start filling."""
        if self.target <= 0:
            self.log.info(
                "Berth: no server pool (ServerPool.size = %d, memory reserve %s)", self.size, self.memory_reserve
            )
            self._closed = True
            return
        try:
            await self.runtime.ensure_isolated_network(self.network, {"site": self.site, "kind": "pool"})
            await self.handover.setup()
            if self.handover.unavailable:
                self._targets = ()
                self.log.warning(
                    "Berth: server pool without mount hand-over (%s): spawns with mounts start cold",
                    self.handover.unavailable,
                )
            await self._take_back()
        except BerthError as e:
            self.log.warning("Berth: no server pool: %s", e.message)
            self._closed = True
            return
        self.log.info("Berth: server pool of %d per image for %s", self.target, ", ".join(self.images))
        for image in self.images:
            self._fill(image)

    async def pause(self) -> None:
        """Stop filling (the service stops); the waiting containers stay, for the next start to take back."""
        self._closed = True
        await self._bg.stop()

    async def drain(self) -> None:
        """Stop filling and remove every waiting container of this pool (tests, benchmarks, shutdown)."""
        await self.pause()
        ids = [pc.id for ready in self._ready.values() for pc in ready]
        for ready in self._ready.values():
            ready.clear()
        await asyncio.gather(*(self._discard(cid) for cid in ids), return_exceptions=True)

    async def _discard(self, container_id: str) -> None:
        await self.runtime.remove(container_id)
        await self.handover.release(container_id)

    async def release(self, container_id: str) -> None:
        """An adopted server is gone: unmount what it was handed (nothing for a cold one)."""
        if self.handover.holds(container_id):
            await self.handover.release(container_id)

    async def _take_back(self) -> None:
        """After a hub restart: an earlier run's waiting servers join this pool if they still answer."""
        prefix = f"berth-spool-{self.site}-"
        for c in await self.runtime.list({"site": self.site, POOL_LABEL: "1"}):
            if not c.name.startswith(prefix):
                continue  # adopted: a user's server now (the ledger knows it by id)
            token = None
            if c.running and c.image in self._ready:
                env = (await self.runtime.docker("inspect_container", c.id)).get("Config", {}).get("Env") or []
                token = next((e.split("=", 1)[1] for e in env if e.startswith("BERTH_POOL_TOKEN=")), None)
            try:
                if token is None:
                    raise ValueError("not a waiting server of an offered image")
                reply = await pool_request(c.ip, {"token": token, "op": "ping"}, 2.0)
                if reply.get("status") != "ready":
                    raise ValueError(f"it answered {reply}")
            except (OSError, ValueError, asyncio.TimeoutError) as e:
                self.log.info("Berth: removing server-pool container %s of an earlier run (%s)", c.name, e)
                await self._discard(c.id)
                continue
            self.handover.remember(c.id, c.name)
            self._ready[c.image].append(PoolContainer(info=c, key=self._key(c.image), token=token, ip=c.ip))
            self.log.info("Berth: server-pool container %s of an earlier run is ready again", c.name)

    # -- state --------------------------------------------------------------------------------
    def status(self) -> dict[str, dict[str, int]]:
        """``{image: {"ready": n, "starting": m}}``."""
        return {image: {"ready": len(self._ready[image]), "starting": self._starting[image]} for image in self.images}

    async def wait_full(self, timeout: float = 120.0) -> None:
        """Wait until every image's pool holds its target (tests and benchmarks)."""
        deadline = time.monotonic() + timeout
        while not all(len(r) >= self.target for r in self._ready.values()):
            self._changed.clear()
            if time.monotonic() > deadline:
                raise TimeoutError(f"the server pool is not full after {timeout} s: {self.status()}")
            try:
                await asyncio.wait_for(self._changed.wait(), max(0.1, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                pass

    # -- which spawns fit ---------------------------------------------------------------------
    def unfit_reason(self, spec: ContainerSpec) -> str | None:
        """Why this server cannot adopt a pool container (``None``: it can, if one is ready)."""
        if spec.image not in self._ready:
            return f"no server pool for image {spec.image}"
        if spec.gpu_device_ids or spec.ipc_mode:
            return "GPU devices cannot be added to a running container"
        if spec.extra_host_config or spec.extra_create:  # DockerSpawner's, merged at create time only
            return "its extra_host_config / extra_create_kwargs apply when a container is created"
        if spec.mounts:
            why = self.handover.unfit_reason(self._targets, spec.mounts) if self._targets else "no hand-over slots"
            if why:
                return f"its mounts cannot be handed over: {why}"
        if not spec.command or os.path.basename(spec.command[0]) != SERVER_COMMAND or spec.entrypoint is not None:
            return f"its command is not {SERVER_COMMAND}"
        if spec.user != self.user:
            return f"it runs as {spec.user}, the pool as {self.user}"
        if any(name in spec.env for name in IMPORT_TIME_ENV):
            return "it chooses the single-user application by environment"
        return fixed_kinds_unfit(spec.resources, self._idle, "the pool's")

    # -- adoption -------------------------------------------------------------------------------
    async def adopt(self, spec: ContainerSpec) -> ContainerInfo | None:
        """Turn a ready pool container into the server ``spec`` describes; ``None``: start it cold."""
        if self._closed:
            return None
        reason = self.unfit_reason(spec)
        if reason:
            self.log.info("Berth: %s starts cold: %s", spec.name, reason)
            return None
        pc = await self._take(spec.image)
        if pc is None:
            self.log.info("Berth: %s starts cold: the server pool for %s is empty", spec.name, spec.image)
            self._fill(spec.image)
            return None
        t0 = time.monotonic()
        ip = await adopt_or_cold(
            pc,
            self._activate(pc, spec),
            discard=lambda: self._bg.run(self._discard(pc.id)),
            refill=lambda: self._bg.later(self.refill_delay, self._fill, spec.image),
            log=self.log,
            what="Berth: server-pool container",
        )
        if ip is None:
            return None
        self.adopted += 1
        self.log.info(
            "Berth: %s adopted server-pool container %s in %.0f ms",
            spec.name,
            pc.info.name,
            1000 * (time.monotonic() - t0),
        )
        return dataclasses.replace(pc.info, ip=ip, name=spec.name)

    async def _take(self, image: str) -> PoolContainer | None:
        ready = self._ready[image]
        current = None
        while ready:
            pc = ready.popleft()
            self._changed.set()
            if current is None:
                current = (await self.runtime.docker("inspect_image", image)).get("Id")
            if pc.info.image_id and current and pc.info.image_id != current:
                self.log.info("Berth: discarding server-pool container %s: built from an older %s", pc.info.name, image)
                self._bg.run(self._discard(pc.id))
                continue
            return pc
        return None

    async def _activate(self, pc: PoolContainer, spec: ContainerSpec) -> str:
        """The server's limits and network, and its activation, at once; then off the pool network and
        renamed. Returns its address on the user's network."""
        if pc.key.targets:  # the user's files first: the server starts in its working directory
            await self.handover.hand_over(pc.id, pc.info.name, pc.key.targets, spec.mounts, owner=spec.user)
        message = {"token": pc.token, "argv": list(spec.command[1:]), "env": dict(spec.env), "cwd": spec.working_dir}
        updated = asyncio.ensure_future(self.runtime.update_resources(pc.id, spec.resources))
        joined = asyncio.ensure_future(self.runtime.connect_network(pc.id, spec.network))
        try:
            reply = await pool_request(pc.ip, message, self.activation_timeout)
            await updated
            ip = await joined
        except BaseException:
            await asyncio.gather(updated, joined, return_exceptions=True)
            raise
        if reply.get("status") != "ok":
            raise ValueError(f"the pool server answered {reply.get('status')}: {reply.get('message')}")
        if not ip:
            raise ValueError(f"no address on network {spec.network}")
        await asyncio.gather(
            self.runtime.disconnect_network(pc.id, self.network), self.runtime.rename(pc.id, spec.name)
        )
        return ip

    # -- filling ----------------------------------------------------------------------------------
    def _fill(self, image: str) -> None:
        if self._closed or time.monotonic() < self._retry_at[image]:
            return
        while len(self._ready[image]) + self._starting[image] < self.target:
            self._starting[image] += 1
            self._bg.run(self._start_one(image))

    def _key(self, image: str) -> PoolKey:
        return PoolKey(image, targets=self._targets)

    def _spec(self, image: str, token: str) -> ContainerSpec:
        name = f"berth-spool-{self.site}-{secrets.token_hex(4)}"
        slots = self.handover.slots(name, self._targets)  # empty directories the user's files are bound into
        return ContainerSpec(
            name=name,
            image=image,
            command=[
                "/bin/sh",
                "-c",
                f'exec "$(dirname "$(command -v {SERVER_COMMAND})")/python" {LAUNCHER_TARGET}/berth_server_pool.py',
            ],
            resources=self._idle,
            labels=make_labels(
                owner="pool",
                kind="server",
                subject=name,
                site=self.site,
                image_ref=image,
                pool_run=self.run_id,
                **{POOL_LABEL: "1"},
            ),
            env={"BERTH_POOL_TOKEN": token, "BERTH_POOL_PORT": str(POOL_PORT)},
            mounts=[Mount(source=LAUNCHER_DIR, target=LAUNCHER_TARGET, read_only=True), *slots],
            network=self.network,
            user=self.user,
            hostname=name[:63],
        )

    async def _start_one(self, image: str) -> None:
        token = secrets.token_urlsafe(32)
        info = None
        spec = self._spec(image, token)
        try:
            info = await self.runtime.run(spec)
            self.handover.remember(info.id, spec.name)
            await wait_ready(self.runtime, info, token, self.ready_timeout)
            pc = PoolContainer(info=info, key=self._key(image), token=token, ip=info.ip)
        except (BerthError, OSError, ValueError, asyncio.TimeoutError) as e:
            why = getattr(e, "message", None) or f"{type(e).__name__}: {e}"
            self.log.warning(
                "Berth: a server-pool container for %s failed to start (%s); retrying in %.0f s",
                image,
                why,
                self.retry_delay,
            )
            self._retry_at[image] = time.monotonic() + self.retry_delay
            await (self._discard(info.id) if info is not None else self.handover.release("", spec.name))
            self._bg.later(self.retry_delay, self._fill, image)
            return
        except BaseException:
            await asyncio.shield(self._discard(info.id) if info is not None else self.handover.release("", spec.name))
            raise
        finally:
            self._starting[image] -= 1
        if self._closed:
            await self._discard(pc.id)
            return
        self._ready[image].append(pc)
        self._changed.set()


__all__ = ["LAUNCHER_DIR", "ServerMounts", "ServerPool"]

"""``BerthService``: the one facade every front end calls.

It owns the ledger, admission and the runtime, composes one manager per area
(``images``, ``folders``, ``usage``, ``gpus``, ``environments``), and offers them
as async methods. The kernel provisioner (standalone), the Berth hub
service (hub mode), the server extension and the CLI all go through it; none
re-implements admission or talks to the engine on its own.

Identity is an argument (``user``, ``groups``) that front ends derive from an
authenticated token, never from a request body.
"""

from __future__ import annotations

import asyncio
import getpass
import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from traitlets import Bool, Dict, Enum, Float, Instance, Integer, List, Unicode, default, directional_link, link

from . import disk_enforcement, kernel_lifecycle, policy_admin, reconcile, servers, swarm_nodes
from .admission import Admission
from .area import MOVED_SETTINGS, ManagerHost, apply_moved
from .engine_events import EngineEvents
from .environments.manager import EnvironmentManager
from .errors import NotFoundError, PolicyError
from .fair_share import FairShare
from .folders.manager import FolderManager
from .gpu.manager import GpuManager
from .images.manager import ImageCatalog
from .jobs import JobManager
from .kernel_launch import KernelLaunch, exit_message
from .ledger import Ledger
from .policies import PolicySpec
from .pool import exit_cleanup
from .pool.server_pool import ServerPool
from .pool.warm_pool import WarmPool
from .profiles import ProfileCatalog
from .resources import Preset, Resources, find_preset
from .runtime import choice as runtime_choice
from .runtime.base import ContainerInfo, Runtime
from .runtime.egress import EgressPolicy
from .server_facade import ServerFacade
from .usage.manager import UsageTracker


class BerthService(ServerFacade, ManagerHost):
    """Admission, containers and accounting for kernels and servers.

    Composed of one manager per area, each a configurable with its own section: ``images``
    (:class:`~jupyter_berth.images.manager.ImageCatalog`, ``c.ImageCatalog.*``), ``folders``
    (:class:`~jupyter_berth.folders.manager.FolderManager`), ``usage``
    (:class:`~jupyter_berth.usage.manager.UsageTracker`), ``gpus``
    (:class:`~jupyter_berth.gpu.manager.GpuManager`) and ``environments``
    (:class:`~jupyter_berth.environments.manager.EnvironmentManager`); batch jobs are ``jobs``
    (:class:`~jupyter_berth.jobs.manager.JobManager`), admitted through the service like kernels, and
    budgets, the start queue and idle rules ``fair`` (:class:`~jupyter_berth.fair_share.FairShare`).
    """

    db_url = Unicode(
        None,
        allow_none=True,
        config=True,
        help="SQLAlchemy URL of the ledger. Default: SQLite under data_dir. Use postgresql+psycopg://… in production.",
    )
    data_dir = Unicode(
        config=True,
        help="Where the SQLite ledger and folders live (default $BERTH_DATA_DIR or ~/.local/share/jupyter-berth).",
    )

    @default("data_dir")
    def _data_dir_default(self):
        return os.environ.get("BERTH_DATA_DIR") or os.path.expanduser("~/.local/share/jupyter-berth")

    default_image = Unicode("berth/python:3.11", config=True, help="Image for kernels that name none.")
    offered_images = List(
        Unicode(),
        ["berth/*"],
        config=True,
        help="Glob patterns of image references offered to users (images must also carry io.jupyter.berth.kind=kernel).",
    )
    presets = Dict(
        config=True, help="Named presets: {name: {cpu, mem, gpu, image, display_name}}; offered as kernelspecs."
    )
    default_policy = Dict(config=True, help="Policy for everyone (fields: see docs/policies.md).")
    group_policies = Dict(config=True, help="{group: policy}; the most generous group grant wins per field.")
    user_policies = Dict(config=True, help="{user: policy}; overrides group grants field by field.")
    cpu_overcommit = Float(
        1.0, config=True, help="Host CPU capacity = cores × this factor (1.0: never promise more cores than exist)."
    )
    mem_reserved = Unicode(
        "512M", config=True, help="Memory kept back for the host and Jupyter itself; the rest is allotted to kernels."
    )
    network_prefix = Unicode("berth-u-", config=True, help="Prefix of the per-user bridge networks kernels run in.")
    user_subnets = Unicode(
        "10.213.0.0/16",
        config=True,
        help="Address range carved into one subnet per user network (so a restarted kernel keeps its "
        "address and connected clients reconnect by themselves). Pick a range no other network uses.",
    )
    user_subnet_prefix = Integer(
        26,
        config=True,
        help="Size of each user's subnet: 26 gives 61 kernels per user and 1,024 users in a /16 pool; "
        "24 gives 253 kernels per user but only 256 users.",
    )
    stop_timeout = Float(
        5.0, config=True, help="Seconds a kernel container gets to exit after SIGTERM before it is killed."
    )
    pool_size = Integer(
        2,
        config=True,
        help="Kernel containers kept started and waiting per image in pool_images, so that a start adopts one "
        "(about 0.1 s) instead of creating a container; the user's files are handed over at adoption. 0 disables "
        "the warm pool. Pool containers count against no user; their memory reserve (c.WarmPool.memory) is kept "
        "out of what admission gives out. Finer settings: c.WarmPool.* (docs/warm-pool.md).",
    )
    pool_images = List(Unicode(), config=True, help="Images that get a warm pool (default: [default_image]).")

    @default("pool_images")
    def _pool_images_default(self):
        return [self.default_image]

    node_name = Unicode(config=True, help="Name of this host in the ledger.")

    @default("node_name")
    def _node_name_default(self):
        return os.uname().nodename

    site_id = Unicode(
        config=True,
        help="Names this installation in container labels, so that several Berth installations (or test runs) "
        "sharing one engine never adopt or stop each other's containers. Default: derived from the ledger URL.",
    )

    runtime_kind = Enum(
        ["auto", "docker", "swarm", "process"],
        "auto",
        config=True,
        help="Where containers run: 'docker' (this host's engine), 'swarm' (one-replica services on a Docker "
        "Swarm, placed on the host admission picks; settings in c.SwarmRuntime.*, docs/admin-scale-out.md), "
        "'process' (local processes of this user: limits but NO isolation; c.ProcessRuntime.*, "
        "docs/binder.md) or 'auto': docker when an engine answers, else process.",
    )
    follow_engine_events = Bool(
        True,
        config=True,
        help="Follow the Docker engine's events, so that a kernel or server whose container dies, is killed "
        "or removed outside Berth is released within seconds, with the reason in its usage record "
        "(core/engine_events.py). Docker runtime only.",
    )
    engine_probe_timeout = Float(
        2.0, config=True, help="Seconds runtime_kind='auto' waits for the Docker engine to answer."
    )
    runtime = Instance(Runtime, allow_none=True)
    ledger = Instance(Ledger, allow_none=True)
    egress = Instance(EgressPolicy, help="Where kernels and servers may connect to (c.EgressPolicy.*).")

    images = Instance(ImageCatalog, help="The image catalog (c.ImageCatalog.*; pull and build: images.versions).")
    folders = Instance(FolderManager, help="Virtual folders (c.FolderManager.*).")
    usage = Instance(UsageTracker, help="Usage sampling, reports and metrics (c.UsageTracker.*).")
    gpus = Instance(GpuManager, help="GPU devices and shares (c.GpuManager.*).")
    environments = Instance(EnvironmentManager, help="Images with their own Jupyter kernels (c.EnvironmentManager.*).")
    profiles = Instance(ProfileCatalog, help="Profiles for the spawn form and the sidebar (c.ProfileCatalog.*).")
    jobs = Instance(JobManager, help="Notebooks run as batch jobs (c.JobManager.*): submit, get, list, cancel, wait.")
    fair = Instance(FairShare, help="Budgets, the start queue, idle rules: my_budget, my_queue, overview.")
    server_pool = Instance(ServerPool, allow_none=True, help="The hub process's server pool (c.ServerPool.*).")

    def __init__(self, **kw):
        moved = {old: kw.pop(old) for old in list(kw) if old in MOVED_SETTINGS}
        super().__init__(**kw)
        self._db_executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="berth-ledger")
        shared = {"parent": self, "executor": self._db_executor}
        self.egress = EgressPolicy(parent=self)
        self.fair = FairShare(self)  # budgets, the start queue, idle rules: through the service's own lifecycle
        self.images = ImageCatalog(**shared, default_image=self.default_image, offered_images=list(self.offered_images))
        self.folders = FolderManager(**shared, data_dir=self.data_dir)
        self.usage = UsageTracker(
            **shared,
            live_allocations=self._live_here,
            after_round=self.fair.apply_usage_rules,
            extra_metrics=self.fair.budget_metrics,
        )
        self.gpus = GpuManager(**shared, data_dir=self.data_dir)
        #: any image with a Jupyter kernel: inspected when offered, started through Berth's mounted launcher
        self.environments = EnvironmentManager(**shared, data_dir=self.data_dir, engine_call=self.images.engine_call)
        self.images.environments = self.environments
        for manager in (self.images, self.folders, self.usage, self.gpus, self.environments):
            directional_link((self, "ledger"), (manager, "ledger"))
            directional_link((self, "runtime"), (manager, "runtime"))
        for name in ("default_image", "offered_images"):
            link((self, name), (self.images, name))
        for manager in (self.folders, self.gpus, self.environments):
            directional_link((self, "data_dir"), (manager, "data_dir"))
        directional_link((self, "site_id"), (self.environments, "site_id"))
        apply_moved(self, {**self.__dict__.pop("_moved_config", {}), **moved}, self.config)
        self.__dict__["_composed"] = True
        self._node_watch: asyncio.Task | None = None
        self._started = False
        self._pool: WarmPool | None = None
        self.jobs = JobManager(self, parent=self)  # admitted like kernels: it calls the service's own lifecycle
        self._events: EngineEvents | None = None
        self.profiles = ProfileCatalog(parent=self)  # its kernel profiles are presets (an explicit preset wins)
        self._presets = {**self.profiles.kernel_presets(), **{n: Preset.parse(n, s) for n, s in self.presets.items()}}
        self._policy_specs = (
            PolicySpec.parse(self.default_policy, "default_policy"),
            {g: PolicySpec.parse(s, f"group_policies.{g}") for g, s in self.group_policies.items()},
            {u: PolicySpec.parse(s, f"user_policies.{u}") for u, s in self.user_policies.items()},
        )

    # ---- plumbing -------------------------------------------------------------------------
    async def _db(self, fn, *args, **kw):
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._db_executor, lambda: fn(*args, **kw))

    async def open(self) -> None:
        """Open the ledger (created and migrated on first use), admission on it, and name the site (from the
        ledger's URL unless configured); nothing else (no reconcile, sampling or pool). For commands next to a
        running server (``berth images …``, ``berth folders …``); :meth:`start` and :meth:`open_for_servers`
        begin with it, :meth:`close` undoes it."""
        if self.ledger is None:
            self.ledger = await self._db(Ledger, self.db_url, data_dir=self.data_dir)
            self._owns_ledger = True
        self.admission = Admission(self.ledger)
        if not self.site_id:
            self.site_id = hashlib.sha256(self.ledger.url.encode()).hexdigest()[:12]

    async def close(self) -> None:
        """:meth:`stop`, then close the ledger if :meth:`open` opened it (one given to the service stays open)."""
        await self.stop()
        if self.ledger is not None and getattr(self, "_owns_ledger", False):
            self.ledger.close()
            self._owns_ledger = False

    @property
    def ledger_url(self) -> str | None:
        """The ledger's URL once open (for logs; a password in it is masked by SQLAlchemy)."""
        return self.ledger.url if self.ledger is not None else None

    async def engine_info(self) -> dict:
        """The runtime's name and isolation, and the engine's state (``up`` with its figures, or ``down``);
        ``disk`` how disk limits hold, with how often they are measured where they are."""
        info = await runtime_choice.describe(self.runtime)
        if info["disk"]["mode"] in ("enforced", "measured"):
            info["disk"].update(disk_enforcement.schedule(self.usage))
        return info

    async def start(self, *, adopt: bool = True) -> reconcile.ReconcilePlan:
        """Open the ledger, measure the host, reconcile with the engine, start sampling.

        ``adopt=False``: a helper beside the running service (``berth run``): no reconcile, jobs, pool or sampling.
        """
        if self.runtime is None:
            self.runtime = await runtime_choice.choose(self)
        runtime_choice.offer_local_image(self)
        await self.open()
        await self.gpus.discover_gpus()
        if adopt and self.pool_size > 0 and self.runtime.name == "docker":  # before the capacity (less its reserve)
            self._pool = WarmPool(
                self.runtime, self.site_id, self.data_dir, self._user_network, parent=self, size=self.pool_size,
                images=list(self.pool_images),
            )  # fmt: skip
        await self.refresh_capacity()
        if not adopt:
            self._started = True
            return reconcile.ReconcilePlan()
        await self.jobs.resume()  # before reconcile: a job that ended while nobody watched gets its own reason
        result = await self.reconcile()
        if self._pool is not None:
            await self._pool.start()
        if self.follow_engine_events and self.runtime.name == "docker":
            self._events = EngineEvents(self)
            self._events.start()
        self.usage.start_sampling()
        if self._multi_node and getattr(self.runtime, "refresh_interval", 0) > 0:
            self._node_watch = asyncio.ensure_future(swarm_nodes.watch(self, self.runtime.refresh_interval))
        self._started = True
        return result

    def stop_at_exit(self) -> None:
        """Blocking, for a process that ends without :meth:`stop` (nbclient): the warm pool's containers go."""
        exit_cleanup.remove_now(self._pool)

    async def stop(self) -> None:
        """Stop background work. Running kernels keep running; a restart adopts them."""
        if self._events is not None:
            await self._events.stop()
            self._events = None
        self.usage.stop_sampling()
        if self._node_watch:
            self._node_watch.cancel()
            self._node_watch = None
        await self.jobs.stop()  # running jobs keep running; a restart follows them again
        if self._pool is not None:
            await self._pool.drain()
            self._pool = None
        if self.server_pool is not None:  # the hub's: its waiting servers stay, taken back at the next start
            await self.server_pool.pause()
            self.server_pool = None
        self._db_executor.shutdown(wait=False)
        if self.runtime is not None:
            self.runtime.close()

    async def refresh_capacity(self) -> dict:
        from .resources import parse_memory

        cap = await self.runtime.capacity()
        if "nodes" in cap:  # several hosts (Swarm): one ledger host each, down hosts' kernels lost
            return await swarm_nodes.refresh(self, cap)
        cpu = round(cap["cpu"] * self.cpu_overcommit, 3)
        pool = self._pool.reserve if self._pool is not None else 0
        mem = max(0, cap["mem"] - parse_memory(self.mem_reserved, "mem_reserved") - pool)
        inventory = self.gpus.gpu_inventory
        gpus = [d.to_json() for d in inventory.devices] if inventory else []
        await self._db(self.ledger.set_node_capacity, self.node_name, cpu=cpu, mem=mem, gpu=gpus or None)
        return {"node": self.node_name, "cpu": cpu, "mem": mem, "gpus": len(gpus)}

    # ---- policy, presets, images --------------------------------------------------------
    async def policy_for(self, user: str, groups=()):
        """The user's effective policy: config policies overlaid with those stored at run time."""
        return await policy_admin.policy_for(self, user, groups)

    async def policy_summary(self, user: str, groups=()) -> dict:
        """The effective policy, what is in use and what is left (for the sidebar's bounds)."""
        return await policy_admin.policy_summary(self, user, groups)

    async def user_usage(self, user: str):
        """What the user's live kernels and servers hold (a ledger ``Usage``)."""
        return await self._db(self.ledger.user_usage, user)

    async def get_policies(self, scope: str | None = None, name: str | None = None) -> dict:
        """The config file's policies and those stored at run time (which win); or one scope's."""
        return await policy_admin.get_policies(self, scope, name)

    async def set_policy(self, scope: str, name: str | None, spec: dict, *, by: str | None = None) -> dict:
        """Store a policy for ``default``, a ``group`` or a ``user`` (validated); it applies from the next request."""
        return await policy_admin.set_policy(self, scope, name, spec, by=by)

    async def delete_policy(self, scope: str, name: str | None = None) -> bool:
        """Delete a stored policy (the config file's entry applies again); ``False`` if none was stored."""
        return await policy_admin.delete_policy(self, scope, name)

    def preset(self, name: str) -> Preset:
        return find_preset(self._presets, name)

    @property
    def preset_list(self) -> list[Preset]:
        return list(self._presets.values())

    async def resolve_request(
        self, user: str, groups=(), *, request: dict | None = None, preset: str | None = None, image: str | None = None
    ) -> tuple[Resources, str, Any]:
        """Decide a kernel's resources once: explicit > preset > profile > policy default (clamped to the policy).

        The policy's refusals (an explicit request over a limit, an image it does not allow) are
        admission's, when the allocation is reserved: one check.
        """
        return await policy_admin.resolve_request(self, user, groups, request=request, preset=preset, image=image)

    # ---- kernels ----------------------------------------------------------------------------
    async def _user_network(self, user: str, ports: list[int] | None = None) -> str:
        return await servers.user_network(self, user, ports)

    async def start_kernel(self, user: str, groups=(), *, kernel_id: str, **options) -> KernelLaunch:
        """Reserve, then start one kernel container. Nothing stays reserved if the start fails.

        ``options`` (:func:`.kernel_lifecycle.start_kernel`): ``request``, ``preset``, ``image``, ``cwd``,
        ``mounts``, ``env``, ``folders``; ``resources`` + ``image`` given together skip the resolution (a
        restart keeps its grant); ``ip`` asks for the address the kernel had before a restart; ``key`` is the
        session's signing key (the kernel manager's own, so clients keep signing with it across restarts).
        """
        return await kernel_lifecycle.start_kernel(self, user, groups, kernel_id=kernel_id, **options)

    async def _own_allocation(self, user: str, kernel_id: str):
        for a in await self._db(self.ledger.live_allocations, owner=user, kind="kernel"):
            if a.subject == kernel_id:
                return a
        raise NotFoundError(await kernel_lifecycle.ended_message(self, user, kernel_id))

    @property
    def _multi_node(self) -> bool:
        """The runtime spans several hosts (admission picks the host; the ledger has one row per host)."""
        return bool(getattr(self.runtime, "multi_node", False))

    async def _live_here(self) -> list:
        """Live allocations this service runs: on this host, or on every Swarm host."""
        if self._multi_node:
            return await swarm_nodes.live_allocations(self)
        return await self._db(self.ledger.live_allocations, node=self.node_name)

    async def kernel_state(self, user: str, kernel_id: str) -> ContainerInfo | None:
        alloc = await self._own_allocation(user, kernel_id)
        return await self.runtime.inspect(alloc.container_id) if alloc.container_id else None

    async def signal_kernel(self, user: str, kernel_id: str, signum: int) -> None:
        alloc = await self._own_allocation(user, kernel_id)
        await self.runtime.signal(alloc.container_id, signum)

    async def stop_kernel(
        self, user: str, kernel_id: str, reason: str = "shutdown", *, now: bool = False, message: str | None = None
    ):
        """Stop and remove a kernel's container; release its allocation with a usage record.

        ``message`` (optional) is why, in the user's words, for the usage record (a budget or idle rule).
        Returns ``(reason, message)``: why it ended, in words a user can read (OOM named as such).
        """
        alloc = await self._own_allocation(user, kernel_id)
        return await self._finish(alloc, reason, stop=True, now=now, why=message)

    async def _finish(
        self, alloc, reason: str, *, stop: bool, now: bool = False, why: str | None = None
    ) -> tuple[str, str]:
        return await kernel_lifecycle.finish(self, alloc, reason, stop=stop, now=now, why=why)

    async def kernel_ended(self, user: str, kernel_id: str) -> tuple[str, str]:
        """The kernel's container exited or vanished on its own: account and release (already released on
        the engine's word, core/engine_events.py: the reason and message recorded then)."""
        return await kernel_lifecycle.kernel_ended(self, user, kernel_id)

    async def list_kernels(self, user: str | None = None) -> list:
        return await self._db(self.ledger.live_allocations, owner=user, kind="kernel")

    async def my_kernels(self, user: str, server: str | None = None) -> list[dict]:
        """The user's live kernels (of hub server ``server`` only, when given) with a fresh usage sample each."""
        return await kernel_lifecycle.my_kernels(self, user, server)

    async def my_usage(self, user: str, since=None, until=None, *, groups=(), by="day") -> dict:
        """``user``'s own usage (never anyone else's) and what is left of their quota (see :mod:`.policy_admin`)."""
        return await policy_admin.my_usage(self, user, since, until, groups=groups, by=by)

    async def kernel_environment(self, user: str, kernel_id: str) -> dict:
        """The environment a notebook records from one of ``user``'s running kernels: image, digest, resources,
        language, the kernel inside the image and its Berth kernelspec."""
        return await kernel_lifecycle.kernel_environment(self, user, kernel_id)

    async def get_profile(self, user: str) -> dict:
        return await policy_admin.get_profile(self, user)

    async def set_profile(self, user: str, groups=(), *, request: dict | None, image: str | None) -> dict:
        """Save the user's default profile, after checking it would start (policy and image)."""
        return await policy_admin.set_profile(self, user, groups, request=request, image=image)

    # ---- reconcile and usage ----------------------------------------------------------------
    async def reconcile(self) -> reconcile.ReconcilePlan:
        """Adopt, release and remove until the ledger and the engine agree (see :mod:`.reconcile`)."""
        return await reconcile.run(self)


def standalone_user() -> tuple[str, tuple[str, ...]]:
    """Identity in standalone mode (no hub): the local user."""
    return os.environ.get("BERTH_USER") or getpass.getuser(), ()


__all__ = ["BerthService", "KernelLaunch", "PolicyError", "exit_message", "standalone_user"]

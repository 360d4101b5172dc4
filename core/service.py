"""``BerthService``: the one facade every front end calls.

It owns the ledger, admission, the runtime and the image catalog, and offers
them as async methods. The kernel provisioner (standalone), the Berth hub
service (hub mode), the server extension and the CLI all go through it; none
re-implements admission or talks to the engine on its own.

Identity is an argument (``user``, ``groups``) that front ends derive from an
authenticated token, never from a request body.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import hashlib
import math
import os
import secrets
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from traitlets import Bool, Dict, Enum, Float, Instance, Integer, List, Unicode, default
from traitlets.config import LoggingConfigurable

from . import catalog, reconcile, runtime_choice, swarm_nodes
from .admission import Admission
from .engine_events import EngineEvents
from .errors import BerthError, NotFoundError, PolicyError
from .kernel_launch import KernelConnection, kernel_spec, user_network, user_subnets
from .ledger import Ledger
from .policies import PolicySpec, resolve
from .resources import Preset, Resources, find_preset, format_bytes
from .runtime.base import ContainerInfo, Mount, Runtime
from .runtime.egress import EgressPolicy
from .runtime.swarm_spec import NODE_LABEL
from .service_folders import FoldersMixin
from .service_gpus import GpuMixin
from .service_images import ImagesMixin
from .service_usage import UsageMixin
from .warm_pool import WarmPool


@dataclass
class KernelLaunch:
    """What a started kernel needs to be reached and accounted."""

    kernel_id: str
    allocation_id: str
    container_id: str
    image: str
    image_digest: str | None
    resources: Resources
    connection: dict  #: jupyter_client connection info (ip = container address)

    def to_json(self) -> dict:
        conn = dict(self.connection)
        conn["key"] = conn["key"].decode() if isinstance(conn["key"], bytes) else conn["key"]
        return {
            "kernel_id": self.kernel_id,
            "allocation_id": self.allocation_id,
            "container_id": self.container_id,
            "image": self.image,
            "image_digest": self.image_digest,
            "resources": self.resources.to_dict(),
            "connection": conn,
        }


def exit_message(info: ContainerInfo | None, resources: Resources | None) -> tuple[str, str]:
    """(reason, message a user reads) for a kernel container that stopped."""
    if info is None:
        return "lost", "the kernel's container disappeared (it was removed outside Berth); the allocation was released"
    if info.oom_killed:
        limit = format_bytes(resources.mem) if resources else "its"
        return "oom", f"the kernel was stopped because it used more than its {limit} memory limit"
    return "exited", f"the kernel process exited with code {info.exit_code}"


class BerthService(ImagesMixin, FoldersMixin, UsageMixin, GpuMixin, LoggingConfigurable):
    """Admission, containers and accounting for kernels and servers."""

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
    user_subnet_prefix = Integer(24, config=True, help="Size of each user's subnet (24: 253 kernels per user).")
    sample_interval = Float(15.0, config=True, help="Seconds between usage samples of running containers (0 disables).")
    stop_timeout = Float(
        5.0, config=True, help="Seconds a kernel container gets to exit after SIGTERM before it is killed."
    )
    pool_size = Integer(
        0,
        config=True,
        help="Kernel containers kept started and waiting per image in pool_images, so that a start adopts one "
        "(about 0.1 s) instead of creating a container. 0 disables the warm pool. Pool containers count "
        "against no user until adopted; finer settings: c.WarmPool.* (docs/warm-pool.md).",
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
    #: Where kernels and servers may connect to (c.EgressPolicy.*, core/runtime/egress.py).
    egress = Instance(EgressPolicy)

    @default("egress")
    def _egress_default(self):
        return EgressPolicy(parent=self)

    def __init__(self, **kw):
        super().__init__(**kw)
        self._db_executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="berth-ledger")
        self._sampler: asyncio.Task | None = None
        self._node_watch: asyncio.Task | None = None
        self._started = False
        self._pool: WarmPool | None = None
        self._events: EngineEvents | None = None
        self._presets = {name: Preset.parse(name, spec) for name, spec in self.presets.items()}
        self._policy_specs = (
            PolicySpec.parse(self.default_policy, "default_policy"),
            {g: PolicySpec.parse(s, f"group_policies.{g}") for g, s in self.group_policies.items()},
            {u: PolicySpec.parse(s, f"user_policies.{u}") for u, s in self.user_policies.items()},
        )

    # ---- plumbing -------------------------------------------------------------------------
    async def _db(self, fn, *args, **kw):
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._db_executor, lambda: fn(*args, **kw))

    async def start(self) -> reconcile.ReconcilePlan:
        """Open the ledger, measure the host, reconcile with the engine, start sampling."""
        if self.runtime is None:
            self.runtime = await runtime_choice.choose(self)
        runtime_choice.offer_local_image(self)
        if self.ledger is None:
            self.ledger = await self._db(Ledger, self.db_url, data_dir=self.data_dir)
        self.admission = Admission(self.ledger)
        if not self.site_id:
            self.site_id = hashlib.sha256(self.ledger.url.encode()).hexdigest()[:12]
        await self._discover_gpus()
        await self.refresh_capacity()
        if self.pool_size > 0:
            self._pool = WarmPool(
                self.runtime, self.site_id, parent=self, size=self.pool_size, images=list(self.pool_images)
            )
        result = await self.reconcile()
        if self._pool is not None:
            await self._pool.start()
        if self.follow_engine_events and self.runtime.name == "docker":
            self._events = EngineEvents(self)
            self._events.start()
        if self.sample_interval > 0:
            self._sampler = asyncio.ensure_future(self._sample_loop())
        if self._multi_node and getattr(self.runtime, "refresh_interval", 0) > 0:
            self._node_watch = asyncio.ensure_future(swarm_nodes.watch(self, self.runtime.refresh_interval))
        self._started = True
        return result

    async def stop(self) -> None:
        """Stop background work. Running kernels keep running; a restart adopts them."""
        if self._events is not None:
            await self._events.stop()
            self._events = None
        if self._sampler:
            self._sampler.cancel()
            self._sampler = None
        if self._node_watch:
            self._node_watch.cancel()
            self._node_watch = None
        if self._pool is not None:
            await self._pool.drain()
            self._pool = None
        self._db_executor.shutdown(wait=False)
        if self.runtime is not None:
            self.runtime.close()

    async def refresh_capacity(self) -> dict:
        from .resources import parse_memory

        cap = await self.runtime.capacity()
        if "nodes" in cap:  # several hosts (Swarm): one ledger host each, down hosts' kernels lost
            return await swarm_nodes.refresh(self, cap)
        cpu = round(cap["cpu"] * self.cpu_overcommit, 3)
        mem = max(0, cap["mem"] - parse_memory(self.mem_reserved, "mem_reserved"))
        gpus = [d.to_json() for d in self.gpu_inventory.devices] if self.gpu_inventory else []
        await self._db(self.ledger.set_node_capacity, self.node_name, cpu=cpu, mem=mem, gpu=gpus or None)
        return {"node": self.node_name, "cpu": cpu, "mem": mem, "gpus": len(gpus)}

    # ---- policy, presets, images --------------------------------------------------------
    async def policy_for(self, user: str, groups=()):
        """Config policies overlaid with those an admin stored in the ledger at run time."""
        default, groups_cfg, users_cfg = self._policy_specs
        stored_default, stored_groups, stored_users = await self._db(self.ledger.get_policies)
        if stored_default:
            default = PolicySpec.parse(stored_default, "default_policy")
        groups_cfg = {**groups_cfg, **{g: PolicySpec.parse(s, f"group {g}") for g, s in stored_groups.items()}}
        users_cfg = {**users_cfg, **{u: PolicySpec.parse(s, f"user {u}") for u, s in stored_users.items()}}
        return resolve(user, groups, default, groups_cfg, users_cfg)

    def preset(self, name: str) -> Preset:
        return find_preset(self._presets, name)

    @property
    def preset_list(self) -> list[Preset]:
        return list(self._presets.values())

    async def images(self) -> list[catalog.ImageInfo]:
        """The offered images (a :class:`catalog.CatalogView`: it also knows the hidden and retired ones)."""
        return await self.catalog_view()

    async def resolve_request(
        self, user: str, groups=(), *, request: dict | None = None, preset: str | None = None, image: str | None = None
    ) -> tuple[Resources, str, Any]:
        """Decide a kernel's resources once: explicit > preset > profile > policy default, then the policy."""
        policy = await self.policy_for(user, groups)
        base = policy.default_request()
        explicit = bool(request)
        chosen_image = image
        if preset:
            p = self.preset(preset)
            base = p.resources
            chosen_image = chosen_image or p.image
        elif not request:
            profile = await self._db(self.ledger.get_profile, user)
            if profile is not None:
                base = Resources.parse(profile.request or {}, base=base)
                chosen_image = chosen_image or profile.image
        resources = Resources.parse(request or {}, base=base)
        chosen_image = chosen_image or await self.default_image_ref()
        resources = policy.check(resources, explicit=explicit, image=chosen_image)
        return resources, chosen_image, policy

    # ---- kernels ----------------------------------------------------------------------------
    def _subnets(self, user: str) -> list[str]:
        return user_subnets(user, self.user_subnets, self.user_subnet_prefix)

    async def _user_network(self, user: str) -> str:
        name = user_network(self.network_prefix, user, self.site_id)
        net = await self.runtime.ensure_network(
            name, {"owner": user, "site": self.site_id}, subnets=self._subnets(user)
        )
        if self.runtime.name == "docker":
            await self.egress.apply(net, self.site_id, self.egress.default_ports())
        return name

    async def start_kernel(
        self,
        user: str,
        groups=(),
        *,
        kernel_id: str,
        request: dict | None = None,
        preset: str | None = None,
        image: str | None = None,
        cwd: str | None = None,
        mounts: list[Mount] | None = None,
        env: dict | None = None,
        resources: Resources | None = None,
        ip: str | None = None,
        key: str | None = None,
        folders: list[str] | None = None,
    ) -> KernelLaunch:
        """Reserve, then start one kernel container. Nothing stays reserved if the start fails.

        ``resources`` + ``image`` given together skip the resolution (a restart keeps its grant);
        ``ip`` asks for the address the kernel had before a restart; ``key`` is the session's
        signing key (the kernel manager's own, so clients keep signing with it across restarts).
        """
        policy = None
        if resources is None:
            resources, image, policy = await self.resolve_request(
                user, groups, request=request, preset=preset, image=image
            )
        else:
            policy = await self.policy_for(user, groups)
            policy.check(resources, explicit=True, image=image)
        view = await self.images()
        restart = ip is not None  # a restart of a running kernel: a retired image keeps serving it
        entry = view.get(catalog.normalise_ref(image)) if restart and isinstance(view, catalog.CatalogView) else None
        info = entry if entry is not None and entry.state == "retired" else catalog.find(view, image)
        mounts = list(mounts or [])
        if folders:
            mounts += await self.folder_mounts(user, groups, folders)  # refuses folders the user may not mount
        alloc = await self._db(
            self.admission.reserve,
            owner=user,
            groups=list(groups),
            policy=policy,
            request=resources,
            kind="kernel",
            subject=kernel_id,
            image=image,
            node=None if self._multi_node else self.node_name,
            gpu_assigner=self._gpu_assigner(),
        )
        container = None
        try:
            connection = KernelConnection(key=key or secrets.token_hex(32))
            network = await self._user_network(user)
            spec = kernel_spec(
                owner=user,
                kernel_id=kernel_id,
                allocation_id=alloc.id,
                image=image,
                resources=resources,
                connection=connection,
                network=network,
                cwd=cwd,
                mounts=mounts,
                env=env,
                site=self.site_id,
            )
            spec.ip = ip
            if self._multi_node:
                spec.labels[NODE_LABEL] = alloc.node  # the runtime pins the container to admission's choice
            spec.gpu_device_ids, gpu_env, gpu_mounts, gpu_plan = self._gpu_container(alloc.gpu_devices)
            spec.ipc_mode = gpu_plan.ipc_mode  # "host" for MPS clients; None (private) without a share
            spec.env.update(gpu_env)
            spec.mounts.extend(gpu_mounts)
            container = await self._pool.adopt(spec, image_id=info.id) if self._pool is not None else None
            try:
                container = container or await self.runtime.run(spec)
            except BerthError as e:
                if not ip or e.status == 404:
                    raise
                self.log.warning(
                    "Kernel %s could not keep its address %s (%s); starting on a new one", kernel_id, ip, e.message
                )
                spec.ip = None
                container = await self.runtime.run(spec)
            await self._db(self.ledger.mark_running, alloc.id, container.id, image_digest=info.digest)
        except BaseException as e:
            reason = "failed" if isinstance(e, Exception) else "cancelled"
            if container is not None:  # e.g. stopped by its user while starting: no container without a grant
                with contextlib.suppress(BerthError):
                    await self.runtime.remove(container.id)
            await self._db(self.ledger.release, alloc.id, reason, message=getattr(e, "message", str(e))[:500])
            raise
        self.log.info(
            "Started kernel %s for %s: %s on %s (%s)", kernel_id, user, image, container.ip, resources.describe()
        )
        return KernelLaunch(
            kernel_id=kernel_id,
            allocation_id=alloc.id,
            container_id=container.id,
            image=image,
            image_digest=info.digest,
            resources=resources,
            connection=connection.for_client(container.ip, getattr(container, "ports", None)),
        )

    async def _own_allocation(self, user: str, kernel_id: str):
        for a in await self._db(self.ledger.live_allocations, owner=user, kind="kernel"):
            if a.subject == kernel_id:
                return a
        raise NotFoundError(await self._ended_message(user, kernel_id))

    async def _ended_message(self, user: str, kernel_id: str) -> str:
        """Why ``kernel_id`` is not running: its latest usage record's message (e.g. its host left), if any."""
        since = datetime.now(timezone.utc) - timedelta(days=1)
        records = [
            r for r in await self._db(self.ledger.usage_records, since=since, owner=user) if r.subject == kernel_id
        ]
        if records and records[-1].end_reason == "lost" and records[-1].message:
            return f"kernel {kernel_id} is no longer running: {records[-1].message}"
        if records and records[-1].message:  # e.g. released on the engine's word before the server asked
            return f"no running kernel {kernel_id!r} of yours; it ended: {records[-1].message}"
        return f"no running kernel {kernel_id!r} of yours"

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

    async def stop_kernel(self, user: str, kernel_id: str, reason: str = "shutdown", *, now: bool = False):
        """Stop and remove a kernel's container; release its allocation with a usage record.

        Returns ``(reason, message)``: why it ended, in words a user can read (OOM named as such).
        """
        alloc = await self._own_allocation(user, kernel_id)
        return await self._finish(alloc, reason, stop=True, now=now)

    async def _finish(self, alloc, reason: str, *, stop: bool, now: bool = False) -> tuple[str, str]:
        info = await self.runtime.inspect(alloc.container_id) if alloc.container_id else None
        usage = await self._sample_one(alloc, info)
        if info is not None and info.running and stop:
            await self.runtime.stop(info.id, timeout=0 if now else self.stop_timeout)
            info = await self.runtime.inspect(info.id)
        end_reason, message = exit_message(info, alloc.resources)
        if info is not None and not info.oom_killed and reason != "exited":
            end_reason, message = reason, f"the kernel was stopped ({reason})"
        if info is not None:
            await self.runtime.remove(info.id)
        await self._db(
            self.ledger.release,
            alloc.id,
            end_reason,
            exit_code=info.exit_code if info else None,
            message=message,
            cpu_seconds=usage.cpu_seconds if usage else None,
            mem_peak_bytes=usage.mem_peak_bytes if usage else None,
        )
        return end_reason, message

    async def kernel_ended(self, user: str, kernel_id: str) -> tuple[str, str]:
        """The kernel's container exited or vanished on its own: account and release. Already released on
        the engine's word (core/engine_events.py): the reason and message recorded then."""
        try:
            alloc = await self._own_allocation(user, kernel_id)
        except NotFoundError:
            since = datetime.now(timezone.utc) - timedelta(minutes=10)
            records = await self._db(self.ledger.usage_records, since=since, owner=user)
            ended = [r for r in records if r.subject == kernel_id and r.kind == "kernel"]
            if ended:
                return ended[-1].end_reason, ended[-1].message or f"the kernel ended ({ended[-1].end_reason})"
            raise
        return await self._finish(alloc, "exited", stop=False)

    async def list_kernels(self, user: str | None = None) -> list:
        return await self._db(self.ledger.live_allocations, owner=user, kind="kernel")

    async def my_kernels(self, user: str) -> list[dict]:
        """The user's live kernels with a fresh usage sample each (for the sidebar)."""
        out = []
        allocs = await self.list_kernels(user)
        gpu_memory = await self.gpu_memory_of(allocs)  # NVML's per-process memory, where there is NVML
        for alloc in allocs:
            usage = await self.runtime.usage(alloc.container_id) if alloc.container_id else None
            out.append(
                {
                    "kernel_id": alloc.subject,
                    "image": alloc.image,
                    "image_digest": alloc.image_digest,
                    "state": alloc.state,
                    "resources": alloc.resources.to_dict(),
                    "limits": alloc.resources.describe(),
                    "started_at": alloc.started_at,
                    "gpu_devices": list(alloc.gpu_devices or ()),
                    "usage": None
                    if usage is None
                    else {
                        "cpu_seconds": usage.cpu_seconds,
                        "mem_bytes": usage.mem_bytes,
                        "mem_peak_bytes": usage.mem_peak_bytes,
                        "pids": usage.pids,
                        "gpu_mem_bytes": gpu_memory.get(alloc.container_id),
                        "at": usage.at,
                    },
                }
            )
        return out

    async def policy_summary(self, user: str, groups=()) -> dict:
        """The effective policy, what is in use and what is left (for the sidebar's bounds)."""
        policy = await self.policy_for(user, groups)
        used = await self._db(self.ledger.user_usage, user)

        def left(total, in_use):
            return None if total is None or math.isinf(total) else max(0, total - in_use)

        return {
            "policy": policy.to_json(),
            "usage": {"cpu": used.cpu, "mem": used.mem, "gpu": used.gpu, "kernels": used.kernels},
            "remaining": {
                "cpu": left(policy.total_cpu, used.cpu),
                "mem": left(policy.total_mem, used.mem),
                "gpu": left(policy.total_gpu, used.gpu),
                "kernels": left(policy.max_kernels, used.kernels),
            },
            "default_request": policy.default_request().to_dict(),
        }

    async def get_profile(self, user: str) -> dict:
        profile = await self._db(self.ledger.get_profile, user)
        return {"request": dict(profile.request), "image": profile.image} if profile else {"request": {}, "image": None}

    async def set_profile(self, user: str, groups=(), *, request: dict | None, image: str | None) -> dict:
        """Save the user's default profile, after checking it would start (policy and image)."""
        resources = Resources.parse(request or {})
        policy = await self.policy_for(user, groups)
        policy.check(resources, explicit=True, image=image or self.default_image)
        if image:
            catalog.find(await self.images(), image)
        await self._db(self.ledger.set_profile, user, request or {}, image=image)
        return await self.get_profile(user)

    # ---- reconcile and usage ----------------------------------------------------------------
    async def reconcile(self) -> reconcile.ReconcilePlan:
        allocations = await self._live_here()
        containers = await self.runtime.list({"site": self.site_id})
        plan = reconcile.plan(allocations, containers, pool_keeps=self._pool.keeps if self._pool is not None else None)
        for alloc, container in plan.adopt:
            if alloc.state != "running":
                await self._db(self.ledger.mark_running, alloc.id, container.id)
        for alloc, why in plan.release:
            await self._finish(alloc, why, stop=True, now=True)
        for container in plan.stop:
            self.log.warning(
                "Removing stray Berth container %s (%s): no live allocation", container.name, container.id[:12]
            )
            await self.runtime.remove(container.id)
        self.log.info("Reconciled with the engine: %s", plan.summary())
        return plan

    async def _sample_one(self, alloc, info: ContainerInfo | None = None):
        if not alloc.container_id:
            return None
        usage = await self.runtime.usage(alloc.container_id)
        if usage is not None:
            await self._db(
                self.ledger.record_sample,
                alloc.id,
                usage.cpu_seconds,
                usage.mem_bytes,
                usage.pids,
                at=usage.at,
                mem_peak_bytes=usage.mem_peak_bytes or None,
            )
        return usage

    async def sample_all(self) -> int:
        """Sample every running container once; returns how many were sampled.

        The counters are read concurrently (cgroup files, not the engine's stats stream) and the
        round is written in one ledger transaction (``usage_sampling.record_samples``).
        """
        from .usage_sampling import record_samples

        allocs = [a for a in await self._live_here() if a.container_id]
        results = await asyncio.gather(*(self.runtime.usage(a.container_id) for a in allocs), return_exceptions=True)
        batch = []
        for alloc, usage in zip(allocs, results):
            if isinstance(usage, BerthError):
                self.log.debug("Could not sample %s: %s", alloc.id, usage.message)
            elif isinstance(usage, BaseException):
                raise usage
            elif usage is not None:
                batch.append((alloc.id, usage))
        await self._db(record_samples, self.ledger, batch)
        return len(batch)

    async def _sample_loop(self):
        while True:
            await asyncio.sleep(self.sample_interval)
            try:
                await self.sample_all()
            except Exception:  # keep sampling whatever one round did
                self.log.exception("Usage sampling failed")


def standalone_user() -> tuple[str, tuple[str, ...]]:
    """Identity in standalone mode (no hub): the local user."""
    return os.environ.get("BERTH_USER") or getpass.getuser(), ()


__all__ = ["BerthService", "KernelLaunch", "PolicyError", "exit_message", "standalone_user"]

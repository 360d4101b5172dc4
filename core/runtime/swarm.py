"""The Swarm runtime: berth containers as Docker Swarm services on several hosts.

Swarm does placement, restarts (none, for berth) and networking; Berth keeps its policies,
ledger, GPU shares and user-facing parts. Each kernel or server is a one-replica service
(:mod:`.swarm_spec`) pinned to the node Berth's admission chose (the ``node`` label on the
spec, written by the service), on the user's attachable overlay network, from an image the
node pulls from the site's registry by digest.

What needs each node's own engine (``c.SwarmRuntime.node_engines``: hostname → Docker
address; the manager's engine is always known): signals (interrupting a kernel), usage
samples (Swarm has no stats API: ``docker stats`` of the task's container on its node),
OOM verdicts (Swarm's task status has only the exit code), precise stop timeouts, and the
per-node image report. Without it a kernel still starts, stops and is accounted; interrupts
raise an error that names the missing setting, usage is not sampled, and a stop uses the
grace period the service was created with.

Image reports and distribution live in :mod:`.swarm_images`, the service spec in
:mod:`.swarm_spec`, nodes and overlay networks in :mod:`.swarm_topology`, the hub's access
to user servers and the users' volumes in :mod:`.swarm_access`.

Blocking docker-py calls run through the manager's :class:`DockerRuntime` executor wrapper
(:meth:`docker`), which also translates Docker's errors into :mod:`jupyter_berth.errors`; the
service calls docker-py lacks, and a service's state as a container's, are in :mod:`.swarm_services`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
import weakref
from collections.abc import Callable

import docker
from traitlets import Dict, Float, Integer, Unicode

from ..errors import BerthError, CapacityError, ConflictError, EngineError, NotFoundError
from ..kernel_launch import user_subnets
from ..resources import Resources
from . import networks
from .base import ContainerInfo, ContainerSpec, ContainerUsage, Runtime
from .docker import DockerRuntime, EngineObjectGone, default_client_factory
from .hardening import validate_name
from .labels import MANAGED, MANAGED_VALUE, OWNER, creation_labels, full_labels, key
from .swarm_access import SwarmAccessMixin
from .swarm_images import SwarmImagesMixin
from .swarm_services import (
    DONE,
    container_info,
    create_service_sync,
    scale_to_zero_sync,
    service_and_task_sync,
    service_logs_sync,
    services_with_tasks_sync,
)
from .swarm_spec import FINAL_STATES, NODE_LABEL, TaskView, label_constraints, service_spec, task_view
from .swarm_topology import SwarmNode, ensure_overlay_sync, swarm_nodes


class SwarmRuntime(SwarmImagesMixin, SwarmAccessMixin, Runtime):
    """Berth containers as services on the Docker Swarm that ``manager_url`` manages."""

    name = "swarm"
    has_docker_api = True  # the manager's engine
    #: admission picks the node (the service passes ``node=None`` and labels the spec with it)
    multi_node = True

    manager_url = Unicode(
        "",
        config=True,
        help="Docker address of a Swarm manager's engine (unix://, tcp:// with TLS "
        "settings in DOCKER_* variables, or ssh://). Empty: DOCKER_HOST or the local socket.",
    )
    node_engines = Dict(
        Unicode(),
        config=True,
        help="{node hostname: Docker address} of each node's own engine, for "
        "interrupts, usage samples, OOM verdicts and the per-node image report. The manager's engine "
        "needs no entry. Nodes missing here still run kernels (see docs/admin-scale-out.md).",
    )
    registry = Unicode(
        "",
        config=True,
        help="Registry (host:port) every node pulls kernel images from. Kernels run "
        "<registry>/<image>@<digest>; `berth/python:3.11` stays the name users see. Empty: every node "
        "must already have the image under its own name.",
    )
    node_labels = Dict(
        Unicode(),
        config=True,
        help="Labels a node must carry to run Berth containers, e.g. "
        "{'berth.kernels': 'true'} (docker node update --label-add berth.kernels=true NODE). Empty: all nodes.",
    )
    subnet_pool = Unicode(
        "10.214.0.0/16",
        config=True,
        help="Address range for the per-user overlay networks. Overlay "
        "subnets are cluster-wide: pick a range no node uses for anything else (it must differ from "
        "c.BerthService.user_subnets, which the single-host bridge networks use).",
    )
    subnet_prefix = Integer(
        26, config=True, help="Size of each user's overlay subnet (26: 61 kernels per user, 1,024 users in a /16)."
    )
    start_timeout = Float(
        120.0,
        config=True,
        help="Seconds a new service's task may take to run (image pull included) "
        "before the start is abandoned and the service removed.",
    )
    pending_grace = Float(
        15.0,
        config=True,
        help="Seconds a task may stay pending because Swarm finds no node with "
        "room (its reservations disagree with Berth's ledger) before the start is refused.",
    )
    stop_grace = Float(
        5.0,
        config=True,
        help="Seconds between SIGTERM and SIGKILL when Swarm stops a task (used when "
        "the node's engine is not reachable; otherwise the caller's timeout applies).",
    )
    refresh_interval = Float(
        5.0,
        config=True,
        help="Seconds between reads of Swarm's node list (capacity, nodes that "
        "left: their kernels become 'lost'). 0 disables the periodic refresh.",
    )
    engine_timeout = Float(10.0, config=True, help="Seconds to wait for a node's engine before giving up on it.")

    def __init__(self, client_factory: Callable[[], docker.DockerClient] | None = None, **kwargs):
        """``client_factory`` makes the manager's docker-py client (default: from ``manager_url``)."""
        super().__init__(**kwargs)
        if client_factory is None and self.manager_url:
            url = self.manager_url
            client_factory = lambda: docker.DockerClient(base_url=url, version="auto", timeout=30)  # noqa: E731
        self._mgr = DockerRuntime(
            client_factory or default_client_factory, read_cgroups=False, address=self.manager_url or None, log=self.log
        )
        self._engines: dict[str, DockerRuntime] = {}
        self._nodes: dict[str, SwarmNode] = {}
        self._nodes_at = 0.0
        self._self_node: str | None = None
        #: per event loop, per network name: serialises ensure_network within this process
        self._net_locks: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._init_access()

    # -- plumbing ----------------------------------------------------------------------------

    async def docker(self, method, *args, **kwargs):
        """docker-py calls on the manager's engine (see :meth:`DockerRuntime.docker`)."""
        return await self._mgr.docker(method, *args, **kwargs)

    async def _node_map(self, max_age: float = 2.0) -> dict[str, SwarmNode]:
        if time.monotonic() - self._nodes_at > max_age or not self._nodes:
            await self._refresh_nodes()
        return self._nodes

    async def _refresh_nodes(self) -> list[SwarmNode]:
        def read(api):
            info = api.info()
            return (info.get("Swarm") or {}).get("NodeID"), swarm_nodes(api, dict(self.node_labels))

        self._self_node, found = await self.docker(read)
        self._nodes = {n.id: n for n in found}
        self._nodes_at = time.monotonic()
        return found

    def _engine(self, node_id: str | None) -> DockerRuntime | None:
        """The engine of ``node_id`` (the manager's own, or one from ``node_engines``), if usable now."""
        node = self._nodes.get(node_id) if node_id else None
        if node is None or node.state != "ready":
            return None
        if node_id == self._self_node:
            return self._mgr
        url = self.node_engines.get(node.hostname) or self.node_engines.get(node.name) or self.node_engines.get(node.id)
        if not url:
            return None
        if url not in self._engines:
            timeout = self.engine_timeout
            self._engines[url] = DockerRuntime(
                lambda: docker.DockerClient(base_url=url, version="auto", timeout=timeout),
                max_workers=4,
                read_cgroups=False,
                address=url,
                log=self.log,
            )
        return self._engines[url]

    # -- engine and nodes ----------------------------------------------------------------------

    async def ping(self) -> dict:
        facts = await self._mgr.ping()
        nodes = await self._refresh_nodes()
        facts.update(
            engine="swarm",
            manager=facts.get("node"),
            nodes=len(nodes),
            ready=sum(1 for n in nodes if n.ledger_state == "ready"),
        )
        return facts

    async def capacity(self) -> dict:
        """Total and per-node capacity: ``{"cpu", "mem", "node", "nodes": [node JSON...]}``.

        Totals count ready nodes carrying the required labels; ``nodes`` lists every node
        (``eligible`` says whether Berth may use it, ``ledger_state`` how the ledger records it).
        """
        found = await self._refresh_nodes()
        usable = [n for n in found if n.eligible and n.ledger_state == "ready"]
        manager = self._nodes.get(self._self_node)
        return {
            "cpu": sum(n.cpu for n in usable),
            "mem": sum(n.mem for n in usable),
            "node": manager.name if manager else None,
            "nodes": [n.to_json() for n in found],
        }

    # -- containers (services) ---------------------------------------------------------------

    async def _service_and_task(self, service_id: str) -> tuple[dict, TaskView]:
        service, task = await self.docker(service_and_task_sync, service_id)
        return service, task_view(task)

    def _info(self, service: dict, view: TaskView) -> ContainerInfo:
        """The service's state as a container's (see :func:`.swarm_services.container_info`)."""
        node = self._nodes.get(view.node_id) if view.node_id else None
        return container_info(service, view, node.name if node else view.node_id, self.registry)

    async def _full_info(self, service: dict, view: TaskView) -> ContainerInfo:
        """:meth:`_info`, plus the node engine's verdict (OOM, image id) for a task that ended."""
        await self._node_map()
        info = self._info(service, view)
        engine = self._engine(view.node_id)
        if engine is not None and view.container_id and info.status in DONE:
            try:
                local = await engine.inspect(view.container_id)
            except BerthError as e:
                self.log.debug("Swarm: node engine of %s did not answer: %s", info.name, e.message)
                local = None
            if local is not None:
                info.oom_killed = local.oom_killed
        return info

    async def run(self, spec: ContainerSpec) -> ContainerInfo:
        """Create the service and wait (bounded) for its one task to run; never waits on the service.

        A task that ends at once (a one-shot command) is returned as exited; one that Swarm
        rejects (missing image, bad mount) or cannot place is removed and reported.
        """
        service_spec(spec, image=spec.image)  # validate before touching the engine
        nodes = await self._node_map()
        node_name = spec.labels.get(NODE_LABEL)
        node = next((n for n in nodes.values() if n.name == node_name), None) if node_name else None
        if node_name and node is None:
            nodes = await self._node_map(max_age=0)
            node = next((n for n in nodes.values() if n.name == node_name), None)
            if node is None:
                raise NotFoundError(f"node {node_name} is not in the swarm (any more); start the kernel again")
        if spec.ip:
            self.log.debug("Swarm: %s cannot keep address %s (Swarm assigns overlay addresses)", spec.name, spec.ip)
        if spec.network:
            owner = spec.labels.get(key(OWNER))
            await self.ensure_network(spec.network, {"owner": owner} if owner else None)
        body = service_spec(
            spec,
            image=await self._image_for_nodes(spec.image),
            node_id=node.id if node else None,
            constraints=label_constraints(dict(self.node_labels)),
            stop_grace=self.stop_grace,
            volume_options=self._volume_options,
        )

        try:
            service_id = await self.docker(create_service_sync, body)
        except ConflictError as e:
            raise ConflictError(
                f"a Swarm service named {body['Name']} already exists; stop or remove it first",
                log_message=e.log_message,
            ) from e
        try:
            return await self._await_task(service_id, body["Name"], node_name)
        except BaseException:
            await asyncio.shield(self.remove(service_id))
            raise

    async def _await_task(self, service_id: str, name: str, node_name: str | None) -> ContainerInfo:
        loop = asyncio.get_running_loop()
        started = loop.time()
        delay = 0.1
        pending_since = None
        while True:
            service, view = await self._service_and_task(service_id)
            if view.state == "running" or (
                view.state in ("complete", "failed") and view.container_id and view.exit_code is not None
            ):
                return await self._full_info(service, view)
            where = f" on node {node_name}" if node_name else ""
            if view.state in FINAL_STATES:
                text = view.message.lower()
                if "no such image" in text or ("manifest" in text and "not found" in text):
                    raise NotFoundError(
                        f"{name}: node{'' if not node_name else ' ' + node_name} cannot get the image: {view.message}; "
                        "push the image to the registry (c.SwarmRuntime.registry) or load it on every node"
                    )
                raise EngineError(f"Swarm could not start {name}{where}: {view.state}: {view.message}")
            now = loop.time()
            if view.state == "pending" and "no suitable node" in view.message.lower():
                pending_since = pending_since or now
                if now - pending_since >= self.pending_grace:
                    raise CapacityError(
                        f"Swarm finds no room for {name}{where}: {view.message}. Berth's ledger had room there, so "
                        "something outside Berth holds Swarm reservations on that node; try again, or ask an admin",
                        resource="node",
                        never_fits=False,
                    )
            else:
                pending_since = None
            if now - started >= self.start_timeout:
                raise EngineError(
                    f"{name}: its Swarm task stayed '{view.state}'{where} for {self.start_timeout:g} s "
                    f"({view.message}); the start was abandoned (c.SwarmRuntime.start_timeout)"
                )
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 0.5)

    async def inspect(self, container_id: str) -> ContainerInfo | None:
        try:
            service, view = await self._service_and_task(container_id)
        except EngineObjectGone:
            return None
        return await self._full_info(service, view)

    async def list(self, labels: dict[str, str] | None = None, all: bool = True) -> list[ContainerInfo]:
        wanted = full_labels(labels)
        wanted[key(MANAGED)] = MANAGED_VALUE
        filters = {"label": [f"{k}={v}" for k, v in sorted(wanted.items())]}

        found = await self.docker(services_with_tasks_sync, filters)
        await self._node_map()
        infos = [self._info(s, task_view(t)) for s, t in found]
        return [i for i in infos if all or i.running]

    async def signal(self, container_id: str, signum: int) -> bool:
        try:
            service, view = await self._service_and_task(container_id)
        except EngineObjectGone:
            return False
        if view.state != "running" or not view.container_id:
            return False
        await self._node_map()
        engine = self._engine(view.node_id)
        if engine is None:
            node = self._nodes.get(view.node_id)
            where = node.hostname if node else view.node_id
            raise EngineError(
                f"cannot send signal {int(signum)} to {service['Spec']['Name']} on node {where}: Swarm has no signal API "
                f"and Berth has no address for that node's engine; add it to c.SwarmRuntime.node_engines"
            )
        return await engine.signal(view.container_id, signum)

    async def stop(self, container_id: str, timeout: float = 5) -> None:
        """Stop the task: through its node's engine (``timeout`` honoured) or by scaling the service to 0."""
        try:
            service, view = await self._service_and_task(container_id)
        except EngineObjectGone:
            return
        if view.state in FINAL_STATES:
            return
        await self._node_map()
        engine = self._engine(view.node_id)
        if engine is not None and view.container_id:
            await engine.stop(view.container_id, timeout=timeout)
        else:
            await self._scale_to_zero(container_id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(timeout, self.stop_grace) + 15
        while loop.time() < deadline:
            try:
                _, view = await self._service_and_task(container_id)
            except EngineObjectGone:
                return
            if view.state in FINAL_STATES or view.state == "none":
                return
            await asyncio.sleep(0.2)
        self.log.warning("Swarm: %s still %s after stop; removing it", container_id, view.state)

    async def _scale_to_zero(self, service_id: str) -> None:
        try:
            await self.docker(scale_to_zero_sync, service_id)
        except EngineObjectGone:
            pass

    async def remove(self, container_id: str, force: bool = True) -> None:
        try:
            await self.docker("remove_service", container_id)
        except EngineObjectGone:
            pass

    async def usage(self, container_id: str) -> ContainerUsage | None:
        """``docker stats`` of the task's container through its node's engine; ``None`` without one."""
        try:
            _, view = await self._service_and_task(container_id)
        except EngineObjectGone:
            return None
        if view.state != "running" or not view.container_id:
            return None
        await self._node_map()
        engine = self._engine(view.node_id)
        if engine is None:
            return None
        try:
            return await engine.usage(view.container_id)
        except EngineError as e:
            self.log.debug("Swarm: no usage sample for %s: %s", container_id, e.message)
            return None

    async def update_resources(self, container_id: str, resources: Resources) -> None:
        raise EngineError(
            "the Swarm runtime cannot change a running kernel's limits: Swarm would replace its task, "
            "which restarts the kernel; start a new kernel with the new resources instead"
        )

    async def wait(self, container_id: str, timeout: float | None = None) -> ContainerInfo:
        return await self._poll_until(
            container_id, timeout, lambda info: info.status in DONE, what="service", interval=0.25
        )

    async def logs(self, container_id: str, tail: int | None = 50) -> str:
        try:
            _, view = await self._service_and_task(container_id)
        except EngineObjectGone:
            return ""
        await self._node_map()
        engine = self._engine(view.node_id)
        if engine is not None and view.container_id:
            return await engine.logs(view.container_id, tail=tail)

        try:
            return (await self.docker(service_logs_sync, container_id, tail)).decode("utf-8", "replace")
        except EngineObjectGone:
            return ""

    # -- networks ----------------------------------------------------------------------------

    def overlay_subnets(self, owner: str, prefix: int | None = None) -> list[str]:
        """The candidate overlay subnets of ``owner``'s network, from :attr:`subnet_pool`."""
        return user_subnets(owner, self.subnet_pool, prefix or self.subnet_prefix)

    async def ensure_network(
        self, name: str, labels: dict[str, str] | None = None, subnets: list[str] | None = None
    ) -> str:
        """Create the user's attachable overlay network unless it exists; return its id.

        ``subnets`` offered by the caller come from the single-host pool; overlay networks are
        cluster-wide and take theirs from :attr:`subnet_pool` instead (same per-user order,
        same prefix length).
        """
        validate_name(name, "network")
        net_labels = creation_labels(labels)
        owner = (labels or {}).get("owner")
        if owner:
            prefix = ipaddress.ip_network(subnets[0]).prefixlen if subnets else None
            subnets = self.overlay_subnets(owner, prefix)
        locks = self._net_locks.setdefault(asyncio.get_running_loop(), {})
        async with locks.setdefault(name, asyncio.Lock()):
            network_id = await self.docker(ensure_overlay_sync, name, net_labels, subnets)
            await self._attach_hub(network_id, name)  # the hub's proxy reaches servers on it (swarm_access)
            return network_id

    async def remove_network(self, name: str) -> None:
        try:
            await self.docker(networks.remove_network_sync, name)
        except EngineObjectGone:
            pass
        except EngineError as e:
            if "active endpoints" in e.message or "in use" in e.message:
                raise ConflictError(
                    f"network {name} still has containers attached; stop them first", log_message=e.log_message
                ) from e
            raise

    def close(self) -> None:
        self._mgr.close()
        for engine in self._engines.values():
            engine.close()
        self._engines.clear()


__all__ = ["SwarmRuntime"]

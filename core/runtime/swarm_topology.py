"""The shape of a Docker Swarm as berth sees it: nodes, overlay networks, leaving.

Functions here take a docker-py ``APIClient`` of a **manager** engine and block: call them
through the runtime's executor. :func:`swarm_nodes` turns ``docker node ls`` into
:class:`SwarmNode` records (capacity, labels, state, GPUs advertised as Swarm generic
resources); :func:`ensure_overlay_sync` makes a per-user attachable overlay network once
even when callers race; :func:`leave_swarm` leaves and removes the ``docker_gwbridge``
network Docker leaves behind.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import asdict, dataclass, field

import docker.errors
import docker.types

from ..errors import EngineError
from ..resources import parse_memory
from .networks import ensure_network_sync, networks_named
from .swarm_spec import GPU_RESOURCE_KIND

log = logging.getLogger(__name__)

#: Node label giving the memory of each of the node's GPUs (Swarm does not know it), e.g. ``16G``.
GPU_MEMORY_LABEL = "berth.gpu-memory"
#: The bridge Docker creates for Swarm's overlay traffic and leaves behind on ``swarm leave``.
GWBRIDGE = "docker_gwbridge"


@dataclass
class SwarmNode:
    """One Swarm node: identity, state, what it offers and (when its engine is reachable) its images."""

    id: str
    hostname: str
    name: str  #: ledger name: the hostname, or hostname-<id prefix> when two nodes share a hostname
    role: str  #: "manager" or "worker"
    state: str  #: Swarm's node state: "ready", "down", "unknown", "disconnected"
    availability: str  #: "active", "pause" or "drain"
    address: str
    cpu: float  #: cores the node's engine reports
    mem: int  #: bytes
    labels: dict[str, str]
    gpus: list[dict] = field(default_factory=list)  #: ledger GPU inventory entries (declared by the node)
    engine_version: str = ""
    eligible: bool = True  #: carries the node labels berth requires (c.SwarmRuntime.node_labels)
    images: list[dict] | None = None  #: kernel images present (None: not asked or engine unreachable)
    images_error: str | None = None

    @property
    def ledger_state(self) -> str:
        """``ready`` (takes kernels), ``draining`` (Swarm availability pause/drain) or ``down``."""
        if self.state != "ready":
            return "down"
        return "ready" if self.availability == "active" else "draining"

    def to_json(self) -> dict:
        out = asdict(self)
        out["ledger_state"] = self.ledger_state
        return out


def _gpus(node: dict, name: str) -> list[dict]:
    """GPUs the node advertises (``dockerd --node-generic-resource NVIDIA-GPU=<uuid>``)."""
    resources = ((node.get("Description") or {}).get("Resources") or {}).get("GenericResources") or []
    labels = (node.get("Spec") or {}).get("Labels") or {}
    try:
        memory = parse_memory(labels[GPU_MEMORY_LABEL], GPU_MEMORY_LABEL) if labels.get(GPU_MEMORY_LABEL) else 0
    except Exception as e:  # noqa: BLE001 - a bad label must not hide the node
        log.warning("node %s: ignoring label %s: %s", name, GPU_MEMORY_LABEL, e)
        memory = 0
    uuids = []
    for r in resources:
        named = r.get("NamedResourceSpec") or {}
        if named.get("Kind") == GPU_RESOURCE_KIND and named.get("Value"):
            uuids.append(named["Value"])
    return [
        {
            "index": i,
            "uuid": uuid,
            "name": f"NVIDIA GPU on Swarm node {name}",
            "memory_bytes": memory,
            "mig_mode": False,
            "declared": True,
            "node": name,
        }
        for i, uuid in enumerate(sorted(uuids))
    ]


def swarm_nodes(api, node_labels: dict[str, str] | None = None) -> list[SwarmNode]:
    """Every node of the swarm, by ledger name. Raises ``EngineError`` when the engine is no manager."""
    try:
        raw = api.nodes()
    except docker.errors.APIError as e:
        if (
            e.status_code == 503
            or "not a swarm manager" in str(e).lower()
            or "swarm" in str(e.explanation or "").lower()
        ):
            raise EngineError(
                "the Docker engine Berth talks to is not a Swarm manager; run `docker swarm init` there (or point "
                "c.SwarmRuntime.manager_url at a manager), see docs/admin-scale-out.md",
                log_message=str(e),
            ) from e
        raise
    counts = Counter(((n.get("Description") or {}).get("Hostname") or n["ID"]) for n in raw)
    wanted = dict(node_labels or {})
    out = []
    for n in raw:
        desc = n.get("Description") or {}
        spec = n.get("Spec") or {}
        hostname = desc.get("Hostname") or n["ID"]
        name = hostname if counts[hostname] == 1 else f"{hostname}-{n['ID'][:8]}"
        labels = dict(spec.get("Labels") or {})
        resources = desc.get("Resources") or {}
        out.append(
            SwarmNode(
                id=n["ID"],
                hostname=hostname,
                name=name,
                role=spec.get("Role") or "worker",
                state=(n.get("Status") or {}).get("State") or "unknown",
                availability=spec.get("Availability") or "active",
                address=(n.get("Status") or {}).get("Addr") or "",
                cpu=(resources.get("NanoCPUs") or 0) / 1e9,
                mem=int(resources.get("MemoryBytes") or 0),
                labels=labels,
                gpus=_gpus(n, name),
                engine_version=(desc.get("Engine") or {}).get("EngineVersion") or "",
                eligible=all(labels.get(k) == v for k, v in wanted.items()),
            )
        )
    return sorted(out, key=lambda node: node.name)


def ensure_overlay_sync(api, name: str, labels: dict[str, str], subnets: list[str] | None = None) -> str:
    """The id of the attachable overlay network ``name``, created with ``labels`` when missing
    (see :func:`~.networks.ensure_network_sync`)."""
    network_id = ensure_network_sync(api, name, labels, subnets, kind="overlay")
    driver = api.inspect_network(network_id).get("Driver")
    if driver and driver != "overlay":
        raise EngineError(
            f"a {driver} network named {name} exists on the manager (left from the single-host "
            "runtime?); kernels on Swarm need an overlay network of that name: remove it with `docker network rm "
            f"{name}` once nothing uses it, or set another c.BerthService.network_prefix"
        )
    return network_id


def remove_gwbridge(api, wait: float = 10.0) -> bool:
    """Remove ``docker_gwbridge`` once nothing is attached to it; ``True`` if it was removed.

    Right after ``swarm leave`` the engine is still taking down the ingress sandbox and the
    tasks' endpoints on it, so this waits up to ``wait`` seconds for them to go.
    """
    deadline = time.monotonic() + wait
    while True:
        nets = networks_named(api, GWBRIDGE)
        if not nets:
            return False
        attached = api.inspect_network(nets[0]["Id"]).get("Containers") or {}
        if not attached:
            try:
                api.remove_network(nets[0]["Id"])
            except docker.errors.NotFound:
                pass
            return True
        if time.monotonic() >= deadline:
            log.info("%s still has endpoints %s; left in place", GWBRIDGE, sorted(attached))
            return False
        time.sleep(0.2)


def leave_swarm(api, force: bool = True) -> dict:
    """Leave the swarm (when in one) and remove the ``docker_gwbridge`` network Docker leaves behind.

    ``docker swarm leave`` keeps ``docker_gwbridge``; a later ``swarm init``/``join`` reuses a
    stale one, and its subnet stays taken. Returns ``{"left": bool, "gwbridge_removed": bool}``.
    """
    state = (api.info().get("Swarm") or {}).get("LocalNodeState") or "inactive"
    left = False
    if state != "inactive":
        api.leave_swarm(force=force)
        left = True
    return {"left": left, "gwbridge_removed": remove_gwbridge(api)}

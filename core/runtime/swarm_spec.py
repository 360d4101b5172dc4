"""Turn a :class:`ContainerSpec` into a Docker Swarm service, and a Swarm task back into a
:class:`ContainerInfo`. Pure functions (no engine calls), tested without a swarm.

A berth container on Swarm is a service with exactly one replica and restart condition
``none`` (a kernel that ends stays ended; Berth decides what comes next), endpoint mode
``dnsrr`` (no virtual IP: nothing is published, and the VIP load balancer needs IPVS,
which some hosts lack), reservations equal to limits (Swarm places by reservations, the
kernel is held to its limits) and a placement constraint on the node Berth's admission
chose (``node.id==…``) plus the admin's node-label constraints.

Isolation (design decision 4) as far as the Swarm API of Docker 20.10 (API 1.41) goes:

* non-root numeric user, Docker socket never mounted, valid names: the same checks as
  :mod:`.hardening`;
* all capabilities dropped (``CapabilityDrop: [ALL]``), never privileged (Swarm cannot);
* CPU (``NanoCPUs``), memory and pids limits; shared memory as a ``tmpfs`` on
  ``/dev/shm`` of the asked size;
* **not expressible per service in API 1.41**: ``no-new-privileges`` (start every node's
  ``dockerd`` with ``--no-new-privileges``), memory+swap = memory (Swarm leaves swap at
  the engine default: run nodes without swap) and the IPC mode (the engine default,
  ``private``, is what berth wants). docs/admin-scale-out.md lists these node settings.
  A spec that needs another IPC mode (``host``: an NVIDIA MPS client, see
  :mod:`jupyter_berth.gpu.enforcement`) is refused rather than started without it.
* GPUs reach a Swarm container only through ``NVIDIA_VISIBLE_DEVICES`` (services have no
  device requests), read by the ``nvidia`` runtime as the node's default runtime.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import RequestError
from ..resources import resource_kinds
from .base import ContainerSpec, parse_engine_time
from .hardening import container_labels, create_kwargs, validate_mount
from .labels import key

#: Label carrying the Swarm node Berth's admission placed a container on (ledger node name).
NODE_LABEL = key("node")
#: Swarm generic resource kind nodes advertise their NVIDIA GPUs under (``dockerd --node-generic-resource
#: NVIDIA-GPU=<uuid>``); Berth reads it for the inventory, it does not reserve it (see :func:`service_spec`).
GPU_RESOURCE_KIND = "NVIDIA-GPU"
#: Task states before the container runs.
STARTING_STATES = ("new", "allocated", "pending", "assigned", "accepted", "preparing", "ready", "starting")
#: Task states after which the task never runs again.
FINAL_STATES = ("complete", "failed", "shutdown", "rejected", "orphaned", "remove")

_SERVICE_NAME_RE = re.compile(r"[^a-zA-Z0-9-]")


def service_name(name: str) -> str:
    """A Swarm service name (letters, digits and '-', at most 63) for a container name."""
    return _SERVICE_NAME_RE.sub("-", name)[:63].strip("-") or "berth"


def split_registry(ref: str) -> tuple[str | None, str]:
    """``"reg:5000/berth/python:3.11"`` → ``("reg:5000", "berth/python:3.11")``; no registry → ``(None, ref)``.

    The first path component is a registry host when it has a '.' or ':' or is ``localhost``
    (Docker's own rule).
    """
    first, sep, rest = ref.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first, rest
    return None, ref


def registry_ref(image: str, registry: str | None) -> str:
    """The reference nodes pull: ``image`` under ``registry`` unless it names a registry itself."""
    host, _ = split_registry(image)
    if not registry or host is not None:
        return image
    return f"{registry.rstrip('/')}/{image}"


def user_facing_ref(ref: str, registry: str | None) -> str:
    """Strip the berth registry from a reference (``reg:5000/berth/python:3.11`` → ``berth/python:3.11``)."""
    host, rest = split_registry(ref)
    return rest if registry and host == registry.rstrip("/") else ref


def _mount(m, volume_options: dict | None = None) -> dict:
    validate_mount(m)
    if m.source.startswith("/"):
        return {"Type": "bind", "Source": m.source, "Target": m.target, "ReadOnly": bool(m.read_only)}
    out = {"Type": "volume", "Source": m.source, "Target": m.target, "ReadOnly": bool(m.read_only)}
    if (volume_options or {}).get(m.source):
        out["VolumeOptions"] = dict(volume_options[m.source])  # labels and driver, for the node that creates it
    return out


def service_spec(
    spec: ContainerSpec,
    *,
    image: str,
    node_id: str | None = None,
    constraints: list[str] | None = None,
    stop_grace: float = 5.0,
    volume_options: dict[str, dict] | None = None,
) -> dict:
    """The ``POST /services/create`` body for one berth container.

    ``image`` is the reference nodes pull (registry and digest included); ``node_id`` the
    Swarm node Berth chose (``None``: Swarm picks among nodes that pass ``constraints``);
    ``volume_options`` the ``VolumeOptions`` (labels, driver) of named volumes, by name.
    Raises :class:`RequestError` for a spec that breaks the isolation rules.
    """
    checked = create_kwargs(spec)  # validates name, user, image
    if spec.ipc_mode not in (None, "", "private"):
        raise RequestError(
            "gpu_enforcement",
            f"this container needs the {spec.ipc_mode!r} IPC namespace (an NVIDIA MPS client, gpu_enforcement='mps'), "
            "which a Swarm service cannot ask for: Docker's service API has no IPC mode. On the Swarm runtime use "
            "gpu_enforcement='interception' or 'none'",
        )
    res = spec.resources
    labels = container_labels(spec)
    env = {str(k): str(v) for k, v in spec.env.items()}
    if spec.gpu_device_ids:
        env["NVIDIA_VISIBLE_DEVICES"] = ",".join(str(d) for d in spec.gpu_device_ids)
    mounts = [_mount(m, volume_options) for m in spec.mounts]
    if res.shm:
        mounts.append({"Type": "tmpfs", "Target": "/dev/shm", "TmpfsOptions": {"SizeBytes": int(res.shm)}})
    container = {
        "Image": image,
        "Labels": labels,
        "User": checked["user"],
        "Env": [f"{k}={v}" for k, v in env.items()],
        "Mounts": mounts,
        "CapabilityDrop": ["ALL"],
        "StopGracePeriod": int(max(0.0, stop_grace) * 1e9),
        "Init": bool(spec.init),
    }
    if spec.command:
        container["Args"] = list(spec.command)  # Args, not Command: the image's entrypoint (tini) stays
    if spec.entrypoint is not None:
        container["Command"] = list(spec.entrypoint)  # Berth's mounted launcher (the folder must exist on every node)
    if spec.working_dir:
        container["Dir"] = spec.working_dir
    if spec.hostname:
        container["Hostname"] = spec.hostname
    limits, reservations = {}, {}
    for kind in resource_kinds():  # each kind's limits (and reservations), as the registry maps them to Swarm
        limit = kind.swarm(getattr(res, kind.name))
        limits.update(limit)
        if kind.swarm_reserved:
            reservations.update(limit)
    # No Swarm generic-resource reservation for GPUs: Berth's ledger assigns devices (whole or shares)
    # and pins the node. Docker 20.10's constraint enforcer also rejects a *running* task that
    # reserves generic resources whenever its node is updated (a label change, or the node joining
    # an overlay network for the first time) — measured on this project's test swarm.
    placement = list(constraints or [])
    if node_id:
        placement.append(f"node.id=={node_id}")
    task = {
        "ContainerSpec": container,
        "Resources": {"Limits": limits, "Reservations": reservations},
        "RestartPolicy": {"Condition": "none", "MaxAttempts": 0},
        "Placement": {"Constraints": placement},
    }
    if spec.network:
        task["Networks"] = [{"Target": spec.network}]
    return {
        "Name": service_name(spec.name),
        "Labels": labels,
        "TaskTemplate": task,
        "Mode": {"Replicated": {"Replicas": 1}},
        "EndpointSpec": {"Mode": "dnsrr"},
    }


def label_constraints(node_labels: dict[str, str] | None) -> list[str]:
    """``{"berth.kernels": "true"}`` → ``["node.labels.berth.kernels==true"]``."""
    for k in node_labels or {}:
        if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*$", k):
            raise RequestError("node_labels", f"{k!r} is not a node label name; use letters, digits, '.', '_' or '-'")
    return [f"node.labels.{k}=={v}" for k, v in sorted((node_labels or {}).items())]


@dataclass
class TaskView:
    """What berth reads from a service's newest task."""

    state: str  #: Swarm's task state ("running", "failed", ...) or "none" before Swarm made one
    message: str  #: Swarm's status message, and its error when there is one
    container_id: str | None
    node_id: str | None
    exit_code: int | None
    timestamp: object  #: datetime of the last state change (aware UTC) or None
    addresses: dict  #: network id → address (no prefix length)

    @property
    def status(self) -> str:
        """The state as :class:`ContainerInfo` names states (Docker container words)."""
        if self.state == "running":
            return "running"
        if self.state in ("complete", "failed", "shutdown"):
            return "exited"
        if self.state in ("rejected", "orphaned", "remove"):
            return "dead"
        return "created"


def newest_task(tasks: list[dict]) -> dict | None:
    """The task that matters for a one-replica service: the most recently created."""
    return max(tasks, key=lambda t: (t.get("CreatedAt") or "", t.get("ID") or "")) if tasks else None


def task_view(task: dict | None) -> TaskView:
    if task is None:
        return TaskView("none", "Swarm has not scheduled a task yet", None, None, None, None, {})
    status = task.get("Status") or {}
    cstatus = status.get("ContainerStatus") or {}
    message = status.get("Message") or ""
    if status.get("Err"):
        message = f"{message}: {status['Err']}" if message else status["Err"]
    addresses = {}
    for attachment in task.get("NetworksAttachments") or []:
        net = attachment.get("Network") or {}
        for addr in attachment.get("Addresses") or []:
            addresses[net.get("ID")] = addr.split("/")[0]
            addresses[(net.get("Spec") or {}).get("Name")] = addr.split("/")[0]
    state = status.get("State") or "new"
    exit_code = cstatus.get("ExitCode") if state in ("complete", "failed", "shutdown") else None
    return TaskView(
        state=state,
        message=message,
        container_id=cstatus.get("ContainerID") or None,
        node_id=task.get("NodeID") or None,
        exit_code=exit_code,
        timestamp=parse_engine_time(status.get("Timestamp")),
        addresses=addresses,
    )


def network_of(service: dict) -> str | None:
    """The network (name or id, as given) the service's task is attached to."""
    nets = ((service.get("Spec") or {}).get("TaskTemplate") or {}).get("Networks") or []
    return nets[0].get("Target") if nets else None

"""What a kernel container looks like: command, connection, mounts, labels.

Every kernel container runs ``berth-kernel`` (baked into Berth kernel images),
which writes the connection info it receives in ``BERTH_CONNECTION`` to a private
file and execs ``python -m ipykernel_launcher -f <file>``. The kernel binds
``0.0.0.0`` on fixed ports inside its own network namespace, so no two kernels
collide and no port is published on the host: clients reach the kernel at the
container's address on the user's private network. (A runtime without containers,
the process runtime, binds the host's loopback on ports it picks and says which in
the info it returns; the service passes them on, see :meth:`KernelConnection.for_client`.)
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import json
from dataclasses import dataclass

from .resources import Resources, format_bytes
from .runtime import site_scope
from .runtime.base import ContainerInfo, ContainerSpec, Mount
from .runtime.labels import make_labels

#: Ports the kernel listens on inside its container.
KERNEL_PORTS = {"shell_port": 50001, "iopub_port": 50002, "stdin_port": 50003, "control_port": 50004, "hb_port": 50005}
KERNEL_COMMAND = ["berth-kernel"]
FOLDERS_ROOT = "/home/jovyan/folders"


def user_network(prefix: str, user: str, site: str = "") -> str:
    """The user's bridge network on this site (:func:`site_scope.network_name`)."""
    return site_scope.network_name(prefix, site, user)


@functools.lru_cache(maxsize=1024)
def user_subnets(user: str, pool: str = "10.213.0.0/16", prefix: int = 24) -> tuple[str, ...]:
    """Candidate subnets for a user's network: all of ``pool``, starting at one picked by name.

    Every process that creates the network (the service, the spawner) tries them in the same order.
    Remembered per user: every start asks, and listing a /16 in /26s costs milliseconds.
    """
    nets = list(ipaddress.ip_network(pool).subnets(new_prefix=prefix))
    start = int(hashlib.sha256(user.encode()).hexdigest(), 16) % len(nets)
    return tuple(str(n) for n in nets[start:] + nets[:start])


@dataclass(frozen=True)
class KernelConnection:
    """The secret half of a kernel's connection info (the address comes from the engine)."""

    key: str
    signature_scheme: str = "hmac-sha256"
    transport: str = "tcp"

    def for_container(self) -> dict:
        return {
            "ip": "0.0.0.0",
            "transport": self.transport,
            "key": self.key,
            "signature_scheme": self.signature_scheme,
            **KERNEL_PORTS,
        }

    def for_client(self, ip: str, ports: dict | None = None) -> dict:
        """Where clients reach the kernel: ``ip`` and the fixed ports, or the ``ports`` the runtime picked
        (a process kernel listens on free ports of the host's loopback)."""
        return {
            "ip": ip,
            "transport": self.transport,
            "key": self.key.encode(),
            "signature_scheme": self.signature_scheme,
            **KERNEL_PORTS,
            **(ports or {}),
        }


def kernel_spec(
    *,
    owner: str,
    kernel_id: str,
    allocation_id: str,
    image: str,
    resources: Resources,
    connection: KernelConnection,
    network: str,
    cwd: str | None = None,
    mounts: list[Mount] | None = None,
    env: dict | None = None,
    gpu_device_ids: list[str] | None = None,
    kind: str = "kernel",
    site: str = "",
) -> ContainerSpec:
    """Build the container spec for one kernel."""
    all_env = {
        "BERTH_CONNECTION": json.dumps(connection.for_container()),
        "BERTH_KERNEL_ID": kernel_id,
        "BERTH_USER": owner,
        "BERTH_LIMITS": resources.describe(),
        "HOME": "/home/jovyan",
        "JUPYTER_PLATFORM_DIRS": "1",
    }
    all_env.update(env or {})
    return ContainerSpec(
        name=site_scope.container_name(site, kind, owner, kernel_id),
        image=image,
        command=list(KERNEL_COMMAND),
        resources=resources,
        labels=make_labels(
            owner=owner, kind=kind, subject=kernel_id, allocation=allocation_id, image_ref=image, site=site
        ),
        env=all_env,
        mounts=list(mounts or []),
        network=network,
        working_dir=cwd,
        gpu_device_ids=list(gpu_device_ids or []),
    )


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

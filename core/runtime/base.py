"""The runtime interface: what the service asks of a container engine.

A :class:`Runtime` runs one :class:`ContainerSpec` as a container and reports
on it as :class:`ContainerInfo` and :class:`ContainerUsage`. Every method is a
coroutine; implementations keep blocking engine calls off the event loop.
Errors are :mod:`jupyter_berth.errors` types: ``EngineError`` when the engine
does not answer or refuses, ``NotFoundError`` for a missing image,
``ConflictError`` for a name already taken, ``RequestError`` for a spec that
breaks the isolation rules (root user, Docker socket mount).

Operations on a container that has already gone (``stop``, ``remove``,
``signal``) are no-ops, and ``inspect`` answers ``None``: the service races
with users, culling and crashes, and a vanished container is a normal outcome.
"""

from __future__ import annotations

import abc
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from traitlets.config import LoggingConfigurable

from ..resources import Resources
from .labels import parse_labels

#: Container states as Docker names them.
STATUSES = ("created", "running", "paused", "restarting", "exited", "dead", "removing")

_TIME_RE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$")


def parse_engine_time(value: str | None) -> datetime | None:
    """An engine's RFC 3339 timestamp (nanoseconds allowed) → aware UTC datetime.

    Docker's "zero" time (``0001-01-01T00:00:00Z``, never started/finished) → ``None``.
    """
    if not value or value.startswith("0001-01-01"):
        return None
    m = _TIME_RE.match(value)
    if not m:
        return None
    fraction = (m.group(2) or "0")[:6].ljust(6, "0")
    zone = "+00:00" if m.group(3) == "Z" else m.group(3)
    return datetime.fromisoformat(f"{m.group(1)}.{fraction}{zone}").astimezone(timezone.utc)


@dataclass(frozen=True)
class Mount:
    """A host folder (absolute path) or named volume mounted into the container."""

    source: str
    target: str
    read_only: bool = False
    #: bind propagation (``"rslave"``: host mounts made under the source later appear inside; see
    #: :mod:`jupyter_berth.pool.mount_handover`); ``None``: the engine's default (private)
    propagation: str | None = None


@dataclass
class ContainerSpec:
    """Everything needed to start one berth container.

    ``labels`` are full label keys (build them with
    :func:`~jupyter_berth.runtime.labels.make_labels`); ``network`` is the
    per-user bridge network, created when missing; ``gpu_device_ids`` are NVIDIA
    device UUIDs or indices (empty: no GPU); ``init`` asks the engine to add its
    own init process (berth images carry tini as entrypoint, so it stays off).
    """

    name: str
    image: str
    command: list[str]
    resources: Resources
    labels: dict[str, str]
    env: dict[str, str] = field(default_factory=dict)
    mounts: list[Mount] = field(default_factory=list)
    network: str | None = None
    working_dir: str | None = None
    user: str = "1000:1000"
    hostname: str | None = None
    gpu_device_ids: list[str] = field(default_factory=list)
    init: bool = False
    #: fixed address on ``network`` (which must have a subnet); a restarted kernel keeps its address
    ip: str | None = None
    #: IPC namespace: ``None`` = a private one; ``"host"`` only for NVIDIA MPS clients (the GPU plan asks)
    ipc_mode: str | None = None
    #: replaces the image's entrypoint (``None``: keep it); Berth's mounted launcher for images not built on its base
    entrypoint: list[str] | None = None
    #: an admin's extra ``create_host_config`` / ``create_container`` arguments, merged after the hardening
    #: from an allowlist (:mod:`.extra_config`; DockerSpawner's ``extra_host_config`` / ``extra_create_kwargs``)
    extra_host_config: dict = field(default_factory=dict)
    extra_create: dict = field(default_factory=dict)


@dataclass
class ContainerInfo:
    """What the engine says about one container.

    ``labels`` holds every label under its full key (``berth_labels`` the berth
    ones by short name); ``image`` is the reference it was started from and
    ``image_id`` the image's content id (``sha256:...``), the reproducible part.
    ``exit_code`` is ``None`` until the container has exited; ``ip`` is its
    address on the network it was started on (or its first network).
    """

    id: str
    name: str
    status: str
    labels: dict[str, str]
    image: str
    image_id: str
    exit_code: int | None
    oom_killed: bool
    started_at: datetime | None
    finished_at: datetime | None
    ip: str | None
    node: str | None = None

    @property
    def running(self) -> bool:
        return self.status == "running"

    @property
    def berth_labels(self) -> dict[str, str]:
        """The berth labels by short name (``owner``, ``kind``, ``subject``...)."""
        return parse_labels(self.labels)


@dataclass
class ContainerUsage:
    """One sample of a container's consumption.

    ``cpu_seconds`` is cumulative CPU time since the container started (compare
    two samples for a rate); ``mem_bytes`` is memory in use without reclaimable
    page cache (as ``docker stats`` shows it); ``mem_peak_bytes`` the highest
    charge seen, cache included (0 when the engine does not record it).
    """

    cpu_seconds: float
    mem_bytes: int
    mem_peak_bytes: int
    pids: int
    at: datetime


class RuntimeMeta(abc.ABCMeta, type(LoggingConfigurable)):
    """Lets :class:`Runtime`, an ABC, be a traitlets configurable too (jupyter_client's provisioner base
    does the same): a runtime's settings are ``c.<RuntimeClass>.*`` and abstract methods are enforced."""


class Runtime(abc.ABC, LoggingConfigurable, metaclass=RuntimeMeta):
    """A container engine as the berth service uses it.

    A ``LoggingConfigurable``: subclasses declare their settings as traits (``config=True``) and
    take ``parent``/``config``/``log`` keyword arguments; an ``__init__`` of their own must pass
    its other keyword arguments on to ``super().__init__``.
    """

    #: short name shown in logs and ``berth engine status`` (``"docker"``...)
    name: str = "abstract"
    #: True for runtimes on a Docker engine: :meth:`docker` runs docker-py calls there (image
    #: operations and bind-mount lookups need it; other runtimes have no such engine).
    has_docker_api: bool = False

    async def docker(self, method: Any, *args, **kwargs) -> Any:
        """Run a docker-py ``APIClient`` method (by name) or ``callable(api, ...)`` off the event loop, with
        Docker's errors translated into :mod:`jupyter_berth.errors`. Only where :attr:`has_docker_api`."""
        from ..errors import EngineError

        raise EngineError(f"this needs a Docker engine, and the {self.name} runtime has none")

    @abc.abstractmethod
    async def ping(self) -> dict:
        """Engine version and facts; raises ``EngineError`` when it does not answer."""

    @abc.abstractmethod
    async def capacity(self) -> dict:
        """``{"cpu": cores, "mem": bytes, "node": hostname}`` of the host."""

    @abc.abstractmethod
    async def run(self, spec: ContainerSpec) -> ContainerInfo:
        """Create and start a container; on any failure remove what was created."""

    @abc.abstractmethod
    async def inspect(self, container_id: str) -> ContainerInfo | None:
        """The container's state, or ``None`` when it is gone."""

    @abc.abstractmethod
    async def list(self, labels: dict[str, str] | None = None, all: bool = True) -> list[ContainerInfo]:
        """Berth containers (``managed=1``), filtered by labels (short or full keys)."""

    @abc.abstractmethod
    async def signal(self, container_id: str, signum: int) -> bool:
        """Send a signal to the container's main process; ``False`` if it is not running."""

    @abc.abstractmethod
    async def stop(self, container_id: str, timeout: float = 5) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds; a gone container is fine."""

    @abc.abstractmethod
    async def remove(self, container_id: str, force: bool = True) -> None:
        """Remove the container (killing it when ``force``); a gone container is fine."""

    @abc.abstractmethod
    async def usage(self, container_id: str) -> ContainerUsage | None:
        """A cheap usage sample, or ``None`` when the container is not running."""

    async def disk_mode(self):
        """How containers are held to their ``disk`` limit (``runtime/disk_quota.py``); here: not at all."""
        from .disk_quota import UNBOUNDED

        return UNBOUNDED

    async def disk_written(self, container_id: str) -> int | None:
        """Bytes the container wrote to its writable layer; ``None``: not measured by this runtime."""
        return None

    @abc.abstractmethod
    async def update_resources(self, container_id: str, resources: Resources) -> None:
        """Change CPU, memory and pids limits of a running container."""

    @abc.abstractmethod
    async def wait(self, container_id: str, timeout: float | None = None) -> ContainerInfo:
        """Wait until the container is no longer running; ``TimeoutError`` after ``timeout``."""

    async def _poll_until(
        self,
        container_id: str,
        timeout: float | None,
        done,
        *,
        what: str,
        interval: float,
        backoff: float = 1.0,
        max_interval: float | None = None,
    ) -> ContainerInfo:
        """:meth:`wait` for runtimes with nothing to block on: inspect every ``interval`` s until ``done(info)``
        (the pause grows by ``backoff`` each round, up to ``max_interval``; no thread is held meanwhile).

        ``NotFoundError`` when it is gone, ``TimeoutError`` (naming ``what`` and its status) after ``timeout``.
        """
        import asyncio

        from ..errors import NotFoundError

        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        pause = interval
        while True:
            info = await self.inspect(container_id)
            if info is None:
                raise NotFoundError(f"{what} {container_id} is gone")
            if done(info):
                return info
            if deadline is not None and loop.time() >= deadline:
                raise TimeoutError(f"{what} {info.name} still {info.status} after {timeout} s")
            await asyncio.sleep(pause if deadline is None else max(0.0, min(pause, deadline - loop.time())))
            pause = min(pause * backoff, max_interval or pause * backoff)

    @abc.abstractmethod
    async def list_images(self, label: str | None = None) -> list[tuple[str, dict]]:
        """``(reference, engine attributes)`` of the images on this host, filtered by a label."""

    @abc.abstractmethod
    async def logs(self, container_id: str, tail: int | None = 50) -> str:
        """The container's combined stdout/stderr (its last ``tail`` lines)."""

    @abc.abstractmethod
    async def ensure_network(self, name: str, labels: dict[str, str] | None = None) -> str:
        """Create the bridge network ``name`` unless it exists; return its id."""

    @abc.abstractmethod
    async def remove_network(self, name: str) -> None:
        """Remove a network; a gone network is fine."""

    # -- optional: what the warm pool needs (moving a running container) -------------------
    # Runtimes that cannot do this keep these defaults and get no warm pool.

    async def ensure_isolated_network(self, name: str, labels: dict[str, str] | None = None) -> str:
        """Create ``name`` unless it exists: a network whose containers cannot reach each other
        (only the host reaches them); return its id."""
        from ..errors import EngineError

        raise EngineError(f"the {self.name} runtime has no isolated networks (the warm pool needs one)")

    async def connect_network(self, container_id: str, network: str, ip: str | None = None) -> str | None:
        """Attach a running container to ``network`` (at ``ip`` when given); return its address there."""
        from ..errors import EngineError

        raise EngineError(f"the {self.name} runtime cannot attach a running container to a network")

    async def disconnect_network(self, container_id: str, network: str) -> None:
        """Detach a container from ``network``; a gone container or network is fine."""
        from ..errors import EngineError

        raise EngineError(f"the {self.name} runtime cannot detach a running container from a network")

    async def rename(self, container_id: str, name: str) -> None:
        """Give a container another name (``ConflictError`` when the name is taken)."""
        from ..errors import EngineError

        raise EngineError(f"the {self.name} runtime cannot rename containers")

    def close(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Release clients and threads (idempotent)."""

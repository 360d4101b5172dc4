"""The Docker runtime: berth containers on one Docker engine.

Every blocking docker-py call goes through one executor wrapper,
``await self.docker("method", *args)`` (the low-level ``APIClient`` method of
that name, or a callable run with the client), as dockerspawner does. Docker's
exceptions are translated there into :mod:`jupyter_berth.errors`:
unreachable engine → ``EngineError`` saying to run ``berth engine up``; missing
image → ``NotFoundError`` saying how to get it; a taken name → ``ConflictError``;
any other refusal → ``EngineError`` with the engine's explanation.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any

import docker
import docker.errors
import requests.exceptions

from ..errors import BerthError, ConflictError, EngineError, NotFoundError
from ..resources import Resources
from . import cgroups, networks, site_scope
from .base import ContainerInfo, ContainerSpec, ContainerUsage, Runtime, parse_engine_time
from .disk_quota import DiskQuota
from .hardening import create_kwargs, host_config_kwargs, update_body, validate_name
from .labels import MANAGED, MANAGED_VALUE, creation_labels, full_labels, key

log = logging.getLogger(__name__)

_FULL_ID_RE = re.compile(r"^[0-9a-f]{64}$")
_DONE = ("exited", "dead")


class EngineObjectGone(NotFoundError):
    """The engine has no such container, service or network (Docker's 404). The Docker-engine runtimes
    (this one and Swarm's) turn it into their "already gone is fine" answers; it never reaches the service."""


def default_client_factory() -> docker.DockerClient:
    """``jupyter_berth.engine.engine_client()`` when available, else ``docker.from_env``."""
    try:
        from ..engine import engine_client
    except ImportError:
        return docker.from_env(timeout=30)
    return engine_client()


def _image_name(explanation: str) -> str:
    m = re.search(r"no such image:\s*(\S+)", explanation, re.IGNORECASE)
    return m.group(1) if m else explanation


class DockerRuntime(DiskQuota, Runtime):
    """Containers on the Docker engine that ``DOCKER_HOST`` (or the default socket) names."""

    name = "docker"
    has_docker_api = True

    def __init__(
        self,
        client_factory: Callable[[], docker.DockerClient] | None = None,
        max_workers: int = 8,
        read_cgroups: bool = True,
        address: str | None = None,
        **kwargs,
    ):
        """``client_factory`` makes the docker-py client; ``max_workers`` bounds concurrent engine calls;
        ``read_cgroups=False``: :meth:`usage` asks the engine, not cgroup files; ``address`` names the engine
        in errors (a Swarm manager's or node's). Others: the configurable's (``parent``, ``log``)."""
        super().__init__(**kwargs)
        self.address = address
        self._client_factory = client_factory or default_client_factory
        self._client: docker.DockerClient | None = None
        self._client_lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="berth-docker")
        #: per event loop, per network name: serialises ensure_network within this process
        self._network_locks: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._networks_known: dict[str, tuple[str, float]] = {}  #: name → (id, when seen): one lookup a start
        self._cgroups: dict[str, cgroups.ContainerCgroup] = {}
        self._layout = cgroups.detect_layout() if read_cgroups else None
        self._node: str | None = None

    # -- the one executor wrapper --------------------------------------------------------

    @property
    def client(self) -> docker.DockerClient:
        """The docker-py client, created (and pinged) on first use. Blocking: call from a thread."""
        with self._client_lock:
            if self._client is None:
                self._client = self._client_factory()
            return self._client

    def _call(self, method: str | Callable, args: tuple, kwargs: dict) -> Any:
        what = method if isinstance(method, str) else getattr(method, "__name__", "call").strip("_")
        try:
            api = self.client.api
            fn = getattr(api, method) if isinstance(method, str) else (lambda *a, **k: method(api, *a, **k))
            return fn(*args, **kwargs)
        except BerthError:
            raise
        except docker.errors.ImageNotFound as e:
            image = _image_name(str(e.explanation or e))
            raise NotFoundError(
                f"the image {image} is not on this host; run `berth images bootstrap` to build the kernel images, "
                "or `berth images list` to see the images available",
                log_message=str(e),
            ) from e
        except docker.errors.NotFound as e:
            raise EngineObjectGone(str(e.explanation or e)) from e
        except docker.errors.APIError as e:
            explanation = str(e.explanation or e)
            if e.status_code == 409:
                raise ConflictError(explanation, log_message=f"docker {what}: {e}") from e
            raise EngineError(f"the Docker engine refused {what}: {explanation}", log_message=str(e)) from e
        except (requests.exceptions.RequestException, docker.errors.DockerException, ConnectionError) as e:
            raise EngineError(
                f"the Docker engine at {self.engine_address()} does not answer ({type(e).__name__}); run `berth engine up`",
                log_message=f"docker {what}: {e!r}",
            ) from e

    def _submit(self, method: str | Callable, *args, **kwargs) -> Future:
        return self._executor.submit(self._call, method, args, kwargs)

    async def docker(self, method: str | Callable, *args, **kwargs) -> Any:
        """Run a docker-py ``APIClient`` method (by name) or ``callable(api, ...)`` off the loop."""
        return await asyncio.wrap_future(self._submit(method, *args, **kwargs))

    def engine_address(self) -> str:
        """The engine this runtime talks to, as errors name it."""
        return self.address or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"

    # -- engine ----------------------------------------------------------------------------

    async def ping(self) -> dict:
        def version_and_info(api):
            return api.version(), api.info()

        version, info = await self.docker(version_and_info)
        self._node = info.get("Name")
        return {
            "engine": "docker",
            "version": version.get("Version"),
            "api_version": version.get("ApiVersion"),
            "os": info.get("OperatingSystem"),
            "kernel": info.get("KernelVersion"),
            "cgroup_version": info.get("CgroupVersion"),
            "cgroup_driver": info.get("CgroupDriver"),
            "cgroup_reader": self._layout.description if self._layout else None,
            "ncpu": info.get("NCPU"),
            "mem": info.get("MemTotal"),
            "node": self._node,
            "address": self.engine_address(),
        }

    async def capacity(self) -> dict:
        info = await self.docker("info")
        self._node = info.get("Name")
        return {"cpu": info.get("NCPU"), "mem": info.get("MemTotal"), "node": self._node}

    # -- containers ------------------------------------------------------------------------

    def _info(self, attrs: dict) -> ContainerInfo:
        state = attrs.get("State") or {}
        status = state.get("Status") or "unknown"
        networks = (attrs.get("NetworkSettings") or {}).get("Networks") or {}
        mode = (attrs.get("HostConfig") or {}).get("NetworkMode")
        ip = (networks.get(mode) or {}).get("IPAddress") or next(
            (n.get("IPAddress") for n in networks.values() if n.get("IPAddress")), None
        )
        return ContainerInfo(
            id=attrs["Id"],
            name=attrs.get("Name", "").lstrip("/"),
            status=status,
            labels=dict((attrs.get("Config") or {}).get("Labels") or {}),
            image=(attrs.get("Config") or {}).get("Image", ""),
            image_id=attrs.get("Image", ""),
            exit_code=state.get("ExitCode") if status in _DONE else None,
            oom_killed=bool(state.get("OOMKilled")),
            started_at=parse_engine_time(state.get("StartedAt")),
            finished_at=parse_engine_time(state.get("FinishedAt")) if status in _DONE else None,
            ip=ip or None,
            node=self._node,
        )

    def _create_sync(self, api, spec: ContainerSpec) -> str:
        kwargs = create_kwargs(spec)
        kwargs["host_config"] = api.create_host_config(**self._host_kwargs_sync(api, spec))
        if spec.network:
            endpoint = api.create_endpoint_config(ipv4_address=spec.ip) if spec.ip else api.create_endpoint_config()
            kwargs["networking_config"] = api.create_networking_config({spec.network: endpoint})
        try:
            return api.create_container(**kwargs)["Id"]
        except docker.errors.APIError as e:
            if e.status_code == 409:
                raise ConflictError(
                    f"a container named {spec.name} already exists; stop or remove it first, or pick another name",
                    log_message=str(e),
                ) from e
            raise

    def _remove_quietly(self, container_id: str) -> None:
        try:
            self._call("remove_container", (container_id,), {"force": True, "v": True})
        except BerthError as e:
            log.warning("could not remove container %s after a failed start: %s", container_id[:12], e.log_message)

    async def run(self, spec: ContainerSpec) -> ContainerInfo:
        create_kwargs(spec)  # validate before touching the engine
        host_config_kwargs(spec)
        if spec.network:
            owner = spec.labels.get(key("owner"))
            await self.ensure_network(spec.network, {"owner": owner} if owner else None)
        created = self._submit(self._create_sync, spec)
        try:
            container_id = await asyncio.shield(asyncio.wrap_future(created))
        except EngineObjectGone:  # e.g. the network was removed behind this process's back: looked up again
            self._networks_known.pop(spec.network or "", None)
            raise
        except asyncio.CancelledError:
            # The create runs on in its thread: remove whatever it makes.
            created.add_done_callback(lambda f: f.exception() is None and self._remove_quietly(f.result()))
            raise
        try:
            await self.docker("start", container_id)
            attrs = await self.docker(self._inspect_sync, container_id)
        except BaseException as e:
            cleanup = self._executor.submit(self._remove_quietly, container_id)
            if not isinstance(e, asyncio.CancelledError):
                await asyncio.wrap_future(cleanup)
            if isinstance(e, EngineError):
                raise EngineError(
                    f"could not start {spec.name} from {spec.image}: {e.message}", log_message=e.log_message
                ) from e
            raise
        return self._info(attrs)

    async def inspect(self, container_id: str) -> ContainerInfo | None:
        try:
            return self._info(await self.docker(self._inspect_sync, container_id))
        except EngineObjectGone:
            return None

    def _inspect_sync(self, api, container_id: str) -> dict:
        """``docker inspect``; learns the engine's node name on first use."""
        if self._node is None:
            self._node = api.info().get("Name")
        return api.inspect_container(container_id)

    def _list_sync(self, api, filters: dict, all: bool) -> list[dict]:
        if self._node is None:
            self._node = api.info().get("Name")
        found = []
        for summary in api.containers(all=all, filters=filters):
            try:
                found.append(api.inspect_container(summary["Id"]))
            except docker.errors.NotFound:
                continue  # removed between list and inspect
        return found

    async def list(self, labels: dict[str, str] | None = None, all: bool = True) -> list[ContainerInfo]:
        wanted = full_labels(labels)
        wanted[key(MANAGED)] = MANAGED_VALUE
        filters = {"label": [f"{k}={v}" for k, v in sorted(wanted.items())]}
        return [self._info(a) for a in await self.docker(self._list_sync, filters, all)]

    async def signal(self, container_id: str, signum: int) -> bool:
        try:
            await self.docker("kill", container_id, signal=int(signum))
        except (EngineObjectGone, ConflictError):  # gone, or not running
            return False
        return True

    async def stop(self, container_id: str, timeout: float = 5) -> None:
        try:
            await self.docker("stop", container_id, timeout=max(0, int(round(timeout))))
        except EngineObjectGone:
            pass
        self._cgroups.pop(container_id, None)

    async def remove(self, container_id: str, force: bool = True) -> None:
        try:
            await self.docker("remove_container", container_id, force=force, v=True)
        except EngineObjectGone:
            pass
        except ConflictError as e:
            if "already in progress" not in e.message:
                raise ConflictError(
                    f"container {container_id} cannot be removed: {e.message}", log_message=e.log_message
                ) from e
        self._cgroups.pop(container_id, None)

    async def list_images(self, label: str | None = None) -> list[tuple[str, dict]]:
        """``(reference, inspect attributes)`` for every tagged image, filtered by a label (``key=value``)."""

        def images(api):
            out = []
            for summary in api.images(filters={"label": label} if label else None):
                tags = [t for t in summary.get("RepoTags") or [] if t != "<none>:<none>"]
                if tags:
                    attrs = api.inspect_image(summary["Id"])
                    out.extend((tag, attrs) for tag in tags)
            return out

        return await self.docker(images)

    async def logs(self, container_id: str, tail: int | None = 50) -> str:
        try:
            data = await self.docker("logs", container_id, stdout=True, stderr=True, tail=tail if tail else "all")
        except EngineObjectGone:
            return ""
        return data.decode("utf-8", "replace")

    async def wait(self, container_id: str, timeout: float | None = None) -> ContainerInfo:
        """Poll (no thread held while waiting) until the container has exited."""
        return await self._poll_until(
            container_id,
            timeout,
            lambda info: info.status in _DONE,
            what="container",
            interval=0.05,
            backoff=1.5,
            max_interval=0.5,
        )

    # -- usage and limits ------------------------------------------------------------------

    def _usage_sync(self, api, container_id: str) -> dict | None:
        cg = self._cgroups.get(container_id)
        if cg is None and self._layout is not None:
            full_id, pid = container_id, None
            if not _FULL_ID_RE.match(container_id):
                state = api.inspect_container(container_id)
                full_id, pid = state["Id"], (state.get("State") or {}).get("Pid")
            cg = cgroups.find_container_cgroup(full_id, pid, self._layout)
            if cg is None and pid is None:
                pid = (api.inspect_container(full_id).get("State") or {}).get("Pid")
                cg = cgroups.find_container_cgroup(full_id, pid, self._layout) if pid else None
        if cg is not None:
            try:
                sample = cgroups.read_usage(cg)
            except OSError as e:  # unreadable here (permissions): the engine's numbers will do
                log.debug("cgroup files of %s unreadable: %s", container_id[:12], e)
                sample = None
            if sample is not None:
                self._cgroups[container_id] = cg
                return sample
            self._cgroups.pop(container_id, None)
        return self._stats_sample(api, container_id)

    @staticmethod
    def _stats_sample(api, container_id: str) -> dict | None:
        """The engine's own numbers (one-shot ``docker stats``), when cgroups cannot be read."""
        stats = api.stats(container_id, stream=False, one_shot=True)
        memory = stats.get("memory_stats") or {}
        if not memory or "usage" not in memory:
            return None  # not running
        inner = memory.get("stats") or {}
        inactive = inner.get("total_inactive_file", inner.get("inactive_file", 0))
        return {
            "cpu_seconds": ((stats.get("cpu_stats") or {}).get("cpu_usage") or {}).get("total_usage", 0) / 1e9,
            "mem_bytes": max(0, memory["usage"] - inactive),
            "mem_peak_bytes": memory.get("max_usage", 0),
            "pids": (stats.get("pids_stats") or {}).get("current", 0),
            "at": datetime.now(timezone.utc),
        }

    async def usage(self, container_id: str) -> ContainerUsage | None:
        try:
            sample = await self.docker(self._usage_sync, container_id)
        except EngineObjectGone:
            self._cgroups.pop(container_id, None)
            return None
        return ContainerUsage(**sample) if sample else None

    async def update_resources(self, container_id: str, resources: Resources) -> None:
        def update(api, cid, body):
            result = api._result(api._post_json(api._url("/containers/{0}/update", cid), data=body), True)
            for warning in (result or {}).get("Warnings") or []:
                log.warning("docker update %s: %s", cid[:12], warning)

        try:
            await self.docker(update, container_id, update_body(resources))
        except EngineObjectGone as e:
            raise NotFoundError(f"container {container_id} is gone; its limits cannot be changed") from e

    # -- networks --------------------------------------------------------------------------

    async def ensure_network(
        self, name: str, labels: dict[str, str] | None = None, subnets: list[str] | None = None
    ) -> str:
        """Create the bridge network unless it exists. ``subnets``: candidates tried in order
        (a network with its own subnet lets a restarted kernel keep its address)."""
        validate_name(name, "network")
        known = self._networks_known.get(name)
        if known and time.monotonic() - known[1] < networks.KNOWN_TTL:
            return known[0]
        locks = self._network_locks.setdefault(asyncio.get_running_loop(), {})
        async with locks.setdefault(name, asyncio.Lock()):
            nid = await self.docker(networks.ensure_network_sync, name, creation_labels(labels), subnets)
        self._networks_known[name] = (nid, time.monotonic())
        return nid

    async def remove_network(self, name: str) -> None:
        self._networks_known.pop(name, None)
        try:
            await self.docker(networks.remove_network_sync, name)
        except EngineObjectGone:
            pass
        except EngineError as e:
            if "active endpoints" in e.message:
                raise ConflictError(
                    f"network {name} still has containers attached; stop them first", log_message=e.log_message
                ) from e
            raise

    # -- moving running containers (the warm pool) -----------------------------------------

    async def ensure_isolated_network(self, name: str, labels: dict[str, str] | None = None) -> str:
        """A bridge network with inter-container traffic off: only the host reaches its containers."""
        validate_name(name, "network")
        net_labels = creation_labels(labels)
        locks = self._network_locks.setdefault(asyncio.get_running_loop(), {})
        async with locks.setdefault(name, asyncio.Lock()):
            return await self.docker(networks.ensure_isolated_network_sync, name, net_labels)

    async def connect_network(self, container_id: str, network: str, ip: str | None = None) -> str | None:
        def connect(api):
            api.connect_container_to_network(container_id, network, ipv4_address=ip)
            attrs = api.inspect_container(container_id)
            return (((attrs.get("NetworkSettings") or {}).get("Networks") or {}).get(network) or {}).get(
                "IPAddress"
            ) or None

        try:
            return await self.docker(connect)
        except EngineObjectGone as e:
            raise NotFoundError(f"container {container_id} or network {network} is gone", log_message=str(e)) from e

    async def disconnect_network(self, container_id: str, network: str) -> None:
        try:
            await self.docker("disconnect_container_from_network", container_id, network)
        except EngineObjectGone:
            pass

    async def rename(self, container_id: str, name: str) -> None:
        validate_name(name)
        try:
            await self.docker("rename", container_id, name)
        except EngineObjectGone as e:
            raise NotFoundError(f"container {container_id} is gone; it cannot be renamed") from e

    async def ensure_volume(self, name: str, labels: dict[str, str] | None = None) -> str:
        """Create the named volume with ``labels`` unless it exists; refuse one of another site."""
        validate_name(name, "volume")
        vol_labels = creation_labels(labels)
        site = vol_labels.get(key(site_scope.SITE))

        def ensure(api):
            try:
                found = api.inspect_volume(name)
            except docker.errors.NotFound:
                return api.create_volume(name, labels=vol_labels)["Name"]
            if site and found.get("Labels") and not site_scope.belongs_to(found.get("Labels"), site):
                raise EngineError(site_scope.foreign_message("volume", name, found.get("Labels"), site))
            return found["Name"]  # unlabelled: a volume from before sites (DockerSpawner made it); used as is

        return await self.docker(ensure)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        with self._client_lock:
            if self._client is not None:
                self._client.close()
                self._client = None


__all__ = ["DockerRuntime", "EngineObjectGone", "default_client_factory"]

"""Disk limits on the Docker engine: enforced by the engine where it can, else measured by Berth.

A kernel's or server's ``disk`` (the resource registry, ``resources.py``) bounds what its container
writes outside its volumes and folders: its writable layer. Which way applies depends on the
engine's storage (:func:`detect`, once per runtime, logged and shown by ``berth info``):

* ``enforced``: the engine bounds the writable layer itself (``--storage-opt size=…``): the
  ``overlay2`` driver on XFS mounted with project quotas (``pquota``), or the ``btrfs`` or ``zfs``
  drivers. A write over the limit fails in the kernel (``ENOSPC``, on btrfs ``EDQUOT``); nothing
  is stopped. btrfs counts the image's files in the size: Berth adds the image's size to the limit
  so that the same ``disk`` means the same number of written bytes on every engine.
* ``measured``: any other storage (``overlay2`` on ext4, as Docker installs by default). The engine
  cannot bound a container's size (it refuses ``storage_opt``), so Berth does not ask: the usage
  sampler measures each running container's writable layer (``SizeRw`` of ``docker inspect
  --size``, which walks the layer: every ``c.UsageTracker.disk_interval`` seconds, not every
  sample) and ``disk_enforcement`` warns, then stops a kernel or server over its limit.

The named volumes and folders a container mounts are not counted (folders have their own quota,
``folder_quota.max_bytes``).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from ..errors import BerthError
from .base import ContainerSpec
from .hardening import host_config_kwargs

log = logging.getLogger("jupyter_berth.disk")

ENFORCED, MEASURED, NONE = "enforced", "measured", "none"
#: The engine feature a kind's ``engine_feature`` names for a writable-layer quota.
DISK_QUOTA = "disk_quota"
#: Storage drivers that bound a container's size without further conditions.
_QUOTA_DRIVERS = ("btrfs", "zfs")
_HOW_TO = (
    "for the engine to enforce it, give Docker a data-root on XFS mounted with project quotas "
    "(mount -o pquota, storage driver overlay2) or on btrfs (docs/disk-limits.md)"
)


@dataclass(frozen=True)
class DiskMode:
    """How a runtime holds containers to their ``disk`` limit."""

    mode: str  #: ``enforced``, ``measured`` or ``none``
    why: str  #: in words: what was found, and what an admin can change
    driver: str | None = None
    backing: str | None = None
    image_counted: bool = False  #: the engine counts the image's files in the size (btrfs)

    @property
    def features(self) -> frozenset[str]:
        return frozenset({DISK_QUOTA}) if self.mode == ENFORCED else frozenset()

    def to_json(self) -> dict:
        return {"mode": self.mode, "why": self.why, "driver": self.driver, "backing_filesystem": self.backing}


#: Runtimes that cannot bound or measure a container's disk (process kernels; Swarm tasks).
UNBOUNDED = DiskMode(NONE, "this runtime bounds no disk use (no container layer Berth can measure or limit)")


def _probe(api) -> str | None:
    """Create (never start) a container with a size limit, then remove it; ``None`` if the engine took it,
    else its refusal."""
    images = api.images()
    if not images:
        return "no image on the engine to probe with"
    tags = [t for t in images[0].get("RepoTags") or () if t != "<none>:<none>"]
    image = tags[0] if tags else images[0]["Id"]
    size = int(images[0].get("Size") or 0) + 256 * 1024**2  # btrfs counts the image: leave room beyond it
    try:
        created = api.create_container(
            image,
            command=["true"],
            labels={"io.jupyter.berth.probe": "disk"},
            host_config=api.create_host_config(storage_opt={"size": str(size)}, network_mode="none"),
        )
    except Exception as e:  # noqa: BLE001 - the refusal is the answer
        return str(getattr(e, "explanation", None) or e)
    api.remove_container(created["Id"], force=True)
    return None


def detect(api) -> DiskMode:
    """Which way the engine ``api`` talks to holds containers to their disk limit (see the module doc)."""
    info = api.info()
    driver = info.get("Driver")
    backing = dict(info.get("DriverStatus") or []).get("Backing Filesystem")
    on = f"storage driver {driver}" + (f" on {backing}" if backing else "")
    if driver in _QUOTA_DRIVERS or (driver == "overlay2" and backing == "xfs"):
        refused = _probe(api)
        if refused is None:
            return DiskMode(
                ENFORCED,
                f"the engine bounds each container's writable layer ({on}, --storage-opt size)",
                driver,
                backing,
                image_counted=driver == "btrfs",
            )
        return DiskMode(
            MEASURED,
            f"the engine refused a size limit ({on}: {refused}); Berth measures each container's writable "
            f"layer and stops one over its limit; {_HOW_TO}",
            driver,
            backing,
        )
    return DiskMode(
        MEASURED,
        f"the engine cannot bound a container's size ({on}); Berth measures each container's writable layer "
        f"and stops one over its limit; {_HOW_TO}",
        driver,
        backing,
    )


class DiskQuota:
    """The Docker runtime's side of disk limits (a mixin of ``DockerRuntime``): detect the mode once, map
    the limit into a create, measure a container's writable layer."""

    _disk: DiskMode | None = None
    _disk_lock = threading.Lock()

    def _disk_mode_sync(self, api) -> DiskMode:
        with self._disk_lock:
            if self._disk is None:
                self._disk = detect(api)
                log.info("Berth disk limits: %s, because %s", self._disk.mode, self._disk.why)
            return self._disk

    async def disk_mode(self) -> DiskMode:
        """How this engine holds containers to their ``disk`` limit (detected once, then remembered)."""
        return self._disk or await self.docker(self._disk_mode_sync)

    def _host_kwargs_sync(self, api, spec: ContainerSpec) -> dict:
        """``host_config_kwargs`` with the disk limit when the engine enforces it (plus the image's size where
        the engine counts it)."""
        mode = self._disk_mode_sync(api)
        kwargs = host_config_kwargs(spec, mode.features)
        if "storage_opt" in kwargs and mode.image_counted:
            image_size = int(api.inspect_image(spec.image).get("Size") or 0)
            kwargs["storage_opt"] = {"size": str(int(kwargs["storage_opt"]["size"]) + image_size)}
        return kwargs

    async def disk_written(self, container_id: str) -> int | None:
        """Bytes in the container's writable layer (``SizeRw``); ``None`` when it is gone or the engine
        does not say. Walks the layer: call it seldom (``c.UsageTracker.disk_interval``)."""

        def size(api):
            return api._result(api._get(api._url("/containers/{0}/json", container_id), params={"size": 1}), True)

        try:
            attrs = await self.docker(size)
        except BerthError:
            return None
        written = attrs.get("SizeRw")
        return int(written) if written is not None else None

"""Read a container's cgroup counters straight from the host's cgroup filesystem.

``docker stats`` costs an API round trip and, without ``one-shot``, a second of
sampling per container; the usage sampler reads a few small files instead.

Two layouts are understood:

* **cgroup v1** (each controller mounted on its own, e.g. ``/sys/fs/cgroup/memory``):
  Docker's cgroupfs driver puts a container in ``<controller>/docker/<full id>/``,
  the systemd driver in ``<controller>/system.slice/docker-<full id>.scope/``.
  Counters: ``cpuacct.usage`` (ns), ``memory.usage_in_bytes``,
  ``memory.max_usage_in_bytes``, ``memory.stat``, ``pids.current``.
* **cgroup v2** (one unified hierarchy): ``system.slice/docker-<id>.scope/``
  (systemd driver) or ``docker/<id>/`` (cgroupfs driver). Counters:
  ``cpu.stat`` (``usage_usec``), ``memory.current``, ``memory.peak``,
  ``memory.stat``, ``pids.current``.

Controller mount points come from ``/proc/self/mounts``, so unusual mount
locations work. When the container's main pid is known, its
``/proc/<pid>/cgroup`` is tried as well (covers ``--cgroup-parent``). When
nothing is found (berth itself runs in a container, for instance),
:func:`find_container_cgroup` answers ``None`` and the caller falls back to the
engine's stats API.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from datetime import datetime, timezone

MOUNTS_FILE = "/proc/self/mounts"
V1_CONTROLLERS = ("cpuacct", "memory", "pids", "cpu")


@dataclass(frozen=True)
class CgroupLayout:
    """Where the host's cgroup hierarchies are mounted."""

    version: int  # 1 or 2 (hybrid hosts whose controllers are on v1 count as 1)
    #: v1: controller name → mount point; v2: {"unified": mount point}
    mounts: dict

    @property
    def description(self) -> str:
        if self.version == 2:
            return f"cgroup v2 at {self.mounts['unified']}"
        return "cgroup v1 (" + ", ".join(f"{c} at {p}" for c, p in sorted(self.mounts.items())) + ")"


@dataclass(frozen=True)
class ContainerCgroup:
    """The cgroup directories of one container."""

    version: int
    #: v1: controller → directory; v2: {"unified": directory}
    dirs: dict

    def path(self, controller: str, filename: str) -> str | None:
        base = self.dirs.get("unified" if self.version == 2 else controller)
        return os.path.join(base, filename) if base else None


def detect_layout(mounts_file: str = MOUNTS_FILE) -> CgroupLayout | None:
    """Read the mount table; ``None`` when no cgroup filesystem is mounted."""
    v1: dict[str, str] = {}
    unified = None
    try:
        with open(mounts_file, encoding="utf-8") as f:
            lines = f.readlines()
    except OSError:
        return None
    for line in lines:
        parts = line.split()
        if len(parts) < 4:
            continue
        mount_point, fstype, options = parts[1], parts[2], parts[3].split(",")
        if fstype == "cgroup":
            for controller in V1_CONTROLLERS:
                if controller in options and controller not in v1:
                    v1[controller] = mount_point
        elif fstype == "cgroup2" and unified is None:
            unified = mount_point
    if "memory" in v1:
        return CgroupLayout(1, v1)
    if unified is not None:
        return CgroupLayout(2, {"unified": unified})
    return None


def _proc_cgroup_paths(pid: int) -> dict[str, str]:
    """``/proc/<pid>/cgroup`` as controller → path (``"unified"`` for the v2 line)."""
    paths: dict[str, str] = {}
    try:
        with open(f"/proc/{pid}/cgroup", encoding="utf-8") as f:
            for line in f:
                _, controllers, path = line.rstrip("\n").split(":", 2)
                if not controllers:
                    paths["unified"] = path
                for controller in controllers.split(","):
                    paths.setdefault(controller, path)
    except (OSError, ValueError):
        pass
    return paths


def _candidates(container_id: str) -> list[str]:
    return [f"docker/{container_id}", f"system.slice/docker-{container_id}.scope"]


def find_container_cgroup(
    container_id: str, pid: int | None = None, layout: CgroupLayout | None = None
) -> ContainerCgroup | None:
    """The cgroup directories of a running container, given its full 64-hex id.

    ``None`` when they cannot be found from here.
    """
    layout = layout or detect_layout()
    if layout is None or not container_id:
        return None
    from_pid = _proc_cgroup_paths(pid) if pid else {}
    if layout.version == 2:
        root = layout.mounts["unified"]
        options = _candidates(container_id)
        if "unified" in from_pid:
            options.insert(0, from_pid["unified"].lstrip("/"))
        for rel in options:
            directory = os.path.join(root, rel)
            if os.path.isfile(os.path.join(directory, "memory.current")):
                return ContainerCgroup(2, {"unified": directory})
        return None
    dirs: dict[str, str] = {}
    for controller, root in layout.mounts.items():
        options = _candidates(container_id)
        if controller in from_pid:
            options.insert(0, from_pid[controller].lstrip("/"))
        for rel in options:
            directory = os.path.join(root, rel)
            if os.path.isdir(directory):
                dirs[controller] = directory
                break
    if "memory" not in dirs:
        return None
    return ContainerCgroup(1, dirs)


def _read_int(path: str | None) -> int | None:
    if path is None:
        return None
    with open(path, encoding="ascii") as f:
        text = f.read().strip()
    return None if text == "max" else int(text)


def _read_keyed(path: str | None) -> dict[str, int]:
    """A ``key value`` file (``memory.stat``, ``cpu.stat``) as a dict."""
    values: dict[str, int] = {}
    if path is None:
        return values
    with open(path, encoding="ascii") as f:
        for line in f:
            name, _, value = line.partition(" ")
            try:
                values[name] = int(value)
            except ValueError:
                continue
    return values


def _optional(read, path: str | None, default=0):
    try:
        value = read(path)
    except FileNotFoundError:
        return default
    return default if value is None else value


def read_usage(cg: ContainerCgroup) -> dict | None:
    """Counters of a container: ``cpu_seconds``, ``mem_bytes``, ``mem_peak_bytes``, ``pids``, ``at``.

    ``None`` when the directories have vanished (the container stopped).
    """
    try:
        if cg.version == 2:
            cpu = _read_keyed(cg.path("cpu", "cpu.stat")).get("usage_usec", 0) / 1e6
            current = _read_int(cg.path("memory", "memory.current")) or 0
            stat = _read_keyed(cg.path("memory", "memory.stat"))
            inactive = stat.get("inactive_file", 0)
            peak = _optional(_read_int, cg.path("memory", "memory.peak"))
        else:
            cpu_path = cg.path("cpuacct", "cpuacct.usage") or cg.path("cpu", "cpuacct.usage")
            cpu = (_read_int(cpu_path) or 0) / 1e9
            current = _read_int(cg.path("memory", "memory.usage_in_bytes")) or 0
            stat = _read_keyed(cg.path("memory", "memory.stat"))
            inactive = stat.get("total_inactive_file", stat.get("inactive_file", 0))
            peak = _optional(_read_int, cg.path("memory", "memory.max_usage_in_bytes"))
        pids = _optional(_read_int, cg.path("pids", "pids.current"))
    except (FileNotFoundError, ProcessLookupError):
        return None
    except OSError as e:  # ENODEV and friends while the cgroup is being torn down
        if e.errno in (errno.ENODEV, errno.ENOENT, errno.ESRCH):
            return None
        raise
    mem = current - inactive if inactive < current else current
    return {
        "cpu_seconds": cpu,
        "mem_bytes": int(mem),
        "mem_peak_bytes": int(peak),
        "pids": int(pids),
        "at": datetime.now(timezone.utc),
    }


def read_limits(cg: ContainerCgroup) -> dict | None:
    """Enforced limits: ``mem`` (bytes), ``cpu`` (cores), ``pids`` (``None`` = unlimited)."""
    try:
        if cg.version == 2:
            mem = _read_int(cg.path("memory", "memory.max"))
            with open(cg.path("cpu", "cpu.max"), encoding="ascii") as f:
                quota, _, period = f.read().strip().partition(" ")
            cpu = None if quota == "max" else int(quota) / int(period or 100000)
        else:
            mem = _read_int(cg.path("memory", "memory.limit_in_bytes"))
            quota = _read_int(cg.path("cpu", "cpu.cfs_quota_us"))
            period = _read_int(cg.path("cpu", "cpu.cfs_period_us")) or 100000
            cpu = None if quota is None or quota < 0 else quota / period
        pids = _optional(_read_int, cg.path("pids", "pids.max"), None)
    except (FileNotFoundError, TypeError):
        return None
    return {"mem": mem, "cpu": cpu, "pids": pids}

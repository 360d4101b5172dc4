"""Limits and usage of process kernels: a cgroup each where the cgroup filesystem is writable, rlimits otherwise.

:func:`plan_limits` decides, per kernel, what bounds it and prepares it:

* **cgroup** (v1 or v2): a directory ``berth-kernels/<id>`` below the server's own
  cgroup (or below ``cgroup_parent``) with ``memory.limit_in_bytes`` /
  ``memory.max`` (no swap), the CPU quota (``cpu.cfs_quota_us`` / ``cpu.max``) and
  ``pids.max``; the kernel joins it before it runs any code
  (:mod:`.process_exec`). The kernel's processes are charged there, an allocation
  past the memory limit gets the kernel OOM-killed (as in a container), and the
  cgroup's counters are its usage.
* **rlimit**, where no cgroup can be made (not root, a read-only cgroup
  filesystem, cgroup v2 without delegation): ``RLIMIT_AS`` = the memory limit plus
  ``as_allowance`` (address space the interpreter reserves without using:
  thread stacks, allocator arenas), so an allocation past it fails with
  ``MemoryError`` instead of killing the kernel; ``RLIMIT_NPROC`` = the pids
  limit plus the processes the user already has (it counts every process of the
  user, and root is exempt from it). CPU is **not** bounded: an rlimit can only
  kill a process after so many CPU-seconds (``RLIMIT_CPU``), not hold it to a
  share of the machine. Usage then comes from ``/proc`` (the kernel's session).

Whatever applied is returned as a report (``LimitPlan.report``) that the runtime
stores with the kernel and shows in its info.
"""

from __future__ import annotations

import errno
import os
import signal
from dataclasses import dataclass, field
from datetime import datetime, timezone

from ..errors import EngineError
from ..resources import Resources, format_bytes, resource_kinds
from . import cgroups

GROUP = "berth-kernels"
CPU_PERIOD = 100_000


def _v2_controllers() -> tuple[str, ...]:
    """The cgroup controllers that bound the registered resource kinds (the registry's ``cgroup_controller``)."""
    return tuple(dict.fromkeys(k.cgroup_controller for k in resource_kinds() if k.cgroup_controller))


def _v1_controllers() -> tuple[str, ...]:
    return (*_v2_controllers(), "cpuacct")  # cpuacct: the usage counters on v1


CPU_NOT_BOUNDED = (
    "not enforced: an rlimit cannot hold a process to a CPU share (RLIMIT_CPU only kills after N CPU-seconds)"
)


@dataclass
class LimitPlan:
    """How one kernel is bounded: the cgroup directories it joins and the rlimits it gets."""

    mechanism: str  #: "cgroup v1", "cgroup v2" or "rlimit"
    cgroup: dict = field(default_factory=dict)  #: controller ("unified" on v2) → directory
    rlimits: dict = field(default_factory=dict)  #: "RLIMIT_AS" → value
    report: dict = field(default_factory=dict)  #: per resource, what enforces it (shown in the kernel's info)


class _NoCgroup(Exception):
    """No cgroup can be made here (the message says why)."""


def _write(path: str, value) -> None:
    with open(path, "w", encoding="ascii") as f:
        f.write(str(value))


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii") as f:
            return f.read().strip()
    except OSError:
        return None


def own_cgroup_paths() -> dict[str, str]:
    """This process's cgroup per controller (``"unified"`` for v2), from ``/proc/self/cgroup``."""
    return cgroups._proc_cgroup_paths(os.getpid())


# -- cgroup v1 ---------------------------------------------------------------------------------


def _v1_dirs(layout: cgroups.CgroupLayout, parent: str | None, key: str) -> dict[str, str]:
    own = own_cgroup_paths()
    dirs: dict[str, str] = {}
    for controller in _v1_controllers():
        mount = layout.mounts.get(controller)
        if mount is None:
            continue
        base = parent if parent is not None else own.get(controller, "/")
        dirs[controller] = os.path.join(mount, base.strip("/"), GROUP, key)
    return dirs


def _apply_v1(dirs: dict[str, str], resources: Resources, creating: bool) -> dict:
    report = {}
    for d in set(dirs.values()):
        if creating:
            os.makedirs(d, exist_ok=True)
    memory = dirs["memory"]
    limit, memsw = os.path.join(memory, "memory.limit_in_bytes"), os.path.join(memory, "memory.memsw.limit_in_bytes")
    # no swap beyond the limit (memory = memory+swap, as for containers); memsw may never be below the limit,
    # so when the limit grows memsw is raised first, when it shrinks it is lowered last
    order = [limit]
    if os.path.exists(memsw):
        order = [memsw, limit] if resources.mem > (_int(_read(memsw)) or 0) else [limit, memsw]
    for path in order:
        _write(path, resources.mem)
    report["mem"] = (
        f"cgroup v1 memory.limit_in_bytes={resources.mem} ({format_bytes(resources.mem)}); past it the kernel is OOM-killed"
    )
    if "cpu" in dirs:
        _write(os.path.join(dirs["cpu"], "cpu.cfs_period_us"), CPU_PERIOD)
        _write(os.path.join(dirs["cpu"], "cpu.cfs_quota_us"), max(1000, int(resources.cpu * CPU_PERIOD)))
        report["cpu"] = (
            f"cgroup v1 cpu.cfs_quota_us={max(1000, int(resources.cpu * CPU_PERIOD))} ({resources.cpu:g} CPU)"
        )
    else:
        report["cpu"] = "not enforced: no cpu controller mounted"
    if "pids" in dirs:
        _write(os.path.join(dirs["pids"], "pids.max"), resources.pids)
        report["pids"] = f"cgroup v1 pids.max={resources.pids}"
    else:
        report["pids"] = "not enforced: no pids controller mounted"
    return report


# -- cgroup v2 ---------------------------------------------------------------------------------


def _enable_controllers(directory: str, wanted: tuple[str, ...]) -> list[str]:
    """Hand ``wanted`` controllers (those available) down to ``directory``'s children; returns them."""
    available = (_read(os.path.join(directory, "cgroup.controllers")) or "").split()
    enabled = (_read(os.path.join(directory, "cgroup.subtree_control")) or "").split()
    missing = [c for c in wanted if c in available and c not in enabled]
    if missing:
        _write(os.path.join(directory, "cgroup.subtree_control"), " ".join(f"+{c}" for c in missing))
    return [c for c in wanted if c in available]


def _v2_dir(layout: cgroups.CgroupLayout, parent: str | None, key: str) -> tuple[str, str]:
    base = parent if parent is not None else own_cgroup_paths().get("unified", "/")
    top = os.path.join(layout.mounts["unified"], base.strip("/"))
    return top, os.path.join(top, GROUP, key)


def _prepare_v2(top: str) -> list[str]:
    try:
        controllers = _enable_controllers(top, _v2_controllers())
    except OSError as e:
        if e.errno == errno.EBUSY:
            raise _NoCgroup(
                f"cgroup v2: {top} holds processes, so its controllers cannot be handed to child "
                "cgroups; set c.ProcessRuntime.cgroup_parent to a delegated cgroup"
            ) from e
        raise
    if "memory" not in controllers:
        raise _NoCgroup(f"cgroup v2: the memory controller is not available in {top}")
    group = os.path.join(top, GROUP)
    os.makedirs(group, exist_ok=True)
    _enable_controllers(group, _v2_controllers())
    return controllers


def _apply_v2(directory: str, resources: Resources, controllers: list[str]) -> dict:
    report = {}
    _write(os.path.join(directory, "memory.max"), resources.mem)
    if os.path.exists(os.path.join(directory, "memory.swap.max")):
        _write(os.path.join(directory, "memory.swap.max"), 0)
    report["mem"] = (
        f"cgroup v2 memory.max={resources.mem} ({format_bytes(resources.mem)}); past it the kernel is OOM-killed"
    )
    if "cpu" in controllers:
        quota = max(1000, int(resources.cpu * CPU_PERIOD))
        _write(os.path.join(directory, "cpu.max"), f"{quota} {CPU_PERIOD}")
        report["cpu"] = f"cgroup v2 cpu.max={quota} {CPU_PERIOD} ({resources.cpu:g} CPU)"
    else:
        report["cpu"] = "not enforced: the cpu controller is not delegated"
    if "pids" in controllers:
        _write(os.path.join(directory, "pids.max"), resources.pids)
        report["pids"] = f"cgroup v2 pids.max={resources.pids}"
    else:
        report["pids"] = "not enforced: the pids controller is not delegated"
    return report


# -- the plan ----------------------------------------------------------------------------------


def user_task_count(uid: int) -> int:
    """Processes and threads of ``uid`` (what RLIMIT_NPROC counts)."""
    count = 0
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            st = os.stat(f"/proc/{name}")
            if st.st_uid != uid:
                continue
            count += len(os.listdir(f"/proc/{name}/task"))
        except OSError:
            continue
    return count


def rlimit_plan(resources: Resources, as_allowance: int, why: str) -> LimitPlan:
    uid = os.getuid()
    limit_as = resources.mem + as_allowance
    rlimits = {"RLIMIT_AS": limit_as}
    report = {
        "mem": f"RLIMIT_AS={limit_as} (the {format_bytes(resources.mem)} limit + {format_bytes(as_allowance)} of "
        "address space reserved but unused); past it allocations fail with MemoryError",
        "cpu": CPU_NOT_BOUNDED,
    }
    if uid == 0:
        report["pids"] = "not enforced: root is exempt from RLIMIT_NPROC"
    else:
        nproc = resources.pids + user_task_count(uid)
        rlimits["RLIMIT_NPROC"] = nproc
        report["pids"] = (
            f"RLIMIT_NPROC={nproc} (the {resources.pids} limit + the processes the user already has; it counts them all)"
        )
    report["why"] = why
    return LimitPlan("rlimit", rlimits=rlimits, report=report)


def _make_cgroup(layout: cgroups.CgroupLayout, resources: Resources, key: str, parent: str | None) -> LimitPlan:
    created: dict[str, str] = {}
    try:
        if layout.version == 1:
            dirs = _v1_dirs(layout, parent, key)
            if "memory" not in dirs:
                raise _NoCgroup("cgroup v1 has no memory controller mounted")
            created = dirs
            return LimitPlan("cgroup v1", cgroup=dirs, report=_apply_v1(dirs, resources, creating=True))
        top, directory = _v2_dir(layout, parent, key)
        controllers = _prepare_v2(top)
        os.makedirs(directory, exist_ok=True)
        created = {"unified": directory}
        return LimitPlan("cgroup v2", cgroup=created, report=_apply_v2(directory, resources, controllers))
    except OSError as e:
        remove_cgroup(created)
        if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise _NoCgroup(f"the cgroup filesystem is not writable here ({e.strerror}: {e.filename})") from e
        raise _NoCgroup(f"no cgroup could be made ({e})") from e
    except _NoCgroup:
        remove_cgroup(created)
        raise


def plan_limits(
    resources: Resources, key: str, *, mode: str = "auto", parent: str | None = None, as_allowance: int = 256 * 1024**2
) -> LimitPlan:
    """Create and configure the kernel's cgroup (``mode`` "auto" or "cgroup") or fall back to rlimits.

    ``mode="cgroup"`` raises :class:`EngineError` when no cgroup can be made; ``"rlimit"`` never tries.
    """
    if mode == "rlimit":
        return rlimit_plan(resources, as_allowance, "c.ProcessRuntime.limits = 'rlimit'")
    layout = cgroups.detect_layout()
    try:
        if layout is None:
            raise _NoCgroup("no cgroup filesystem is mounted")
        return _make_cgroup(layout, resources, key, parent)
    except _NoCgroup as e:
        why = str(e)
    if mode == "cgroup":
        raise EngineError(
            f"the process runtime cannot give this kernel a cgroup: {why}; run the server as a user who "
            "may write the cgroup filesystem, or set c.ProcessRuntime.limits = 'rlimit'"
        )
    return rlimit_plan(resources, as_allowance, why)


def update_limits(record_cgroup: dict, resources: Resources) -> dict:
    """New limits for a running kernel's cgroup; returns the new report."""
    if "unified" in record_cgroup:
        parent_dir = os.path.dirname(os.path.dirname(record_cgroup["unified"]))
        enabled = (_read(os.path.join(parent_dir, GROUP, "cgroup.subtree_control")) or "").split()
        return _apply_v2(record_cgroup["unified"], resources, enabled)
    return _apply_v1(record_cgroup, resources, creating=False)


def cgroup_pids(dirs: dict) -> list[int]:
    """Every process in the kernel's cgroup (its memory, or unified, directory)."""
    d = dirs.get("unified") or dirs.get("memory")
    text = _read(os.path.join(d, "cgroup.procs")) if d else None
    return [int(p) for p in (text or "").split() if p.isdigit()]


def oom_killed(dirs: dict) -> bool:
    """True when the kernel OOM-killed a process of this cgroup."""
    if "unified" in dirs:
        text = _read(os.path.join(dirs["unified"], "memory.events")) or ""
    else:
        text = _read(os.path.join(dirs.get("memory", ""), "memory.oom_control")) or ""
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name == "oom_kill" and value.strip().isdigit():
            return int(value) > 0
    return False


def remove_cgroup(dirs: dict) -> None:
    """Kill what is left in the cgroup, remove it, and its ``berth-kernels`` parent when that is empty."""
    if not dirs:
        return
    for pid in cgroup_pids(dirs):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for d in sorted(set(dirs.values())):
        for path in (d, os.path.dirname(d)):
            try:
                os.rmdir(path)
            except OSError:
                pass  # busy (the kill not yet done, other kernels' cgroups in the parent) or gone


def cgroup_usage(dirs: dict) -> dict | None:
    version = 2 if "unified" in dirs else 1
    return cgroups.read_usage(cgroups.ContainerCgroup(version, dict(dirs)))


# -- /proc: usage without a cgroup, and the host's size ------------------------------------------------


def session_usage(sid: int) -> dict | None:
    """Usage of every process in session ``sid`` (the kernel leads its own session); ``None`` when none runs."""
    ticks = os.sysconf("SC_CLK_TCK")
    page = os.sysconf("SC_PAGE_SIZE")
    cpu, mem, tasks, peak, found = 0.0, 0, 0, 0, False
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", encoding="ascii", errors="replace") as f:
                rest = f.read().rsplit(")", 1)[1].split()
            if int(rest[3]) != sid or rest[0] == "Z":
                continue
            with open(f"/proc/{name}/statm", encoding="ascii") as f:
                resident = int(f.read().split()[1]) * page
        except (OSError, IndexError, ValueError):
            continue
        found = True
        cpu += (int(rest[11]) + int(rest[12]) + int(rest[13]) + int(rest[14])) / ticks
        mem += resident
        tasks += int(rest[17])
        if int(name) == sid:
            for line in open(f"/proc/{name}/status", encoding="ascii", errors="replace"):
                if line.startswith("VmHWM:"):
                    peak = int(line.split()[1]) * 1024
    if not found:
        return None
    return {
        "cpu_seconds": cpu,
        "mem_bytes": mem,
        "mem_peak_bytes": max(peak, mem),
        "pids": tasks,
        "at": datetime.now(timezone.utc),
    }


def _up(mount: str, rel: str):
    """``mount/rel`` and each of its parents up to ``mount``."""
    rel = rel.strip("/")
    while True:
        yield os.path.join(mount, rel)
        if not rel:
            return
        rel = os.path.dirname(rel)


def _int(text: str | None) -> int | None:
    return int(text) if text and text.lstrip("-").isdigit() else None


def host_capacity() -> dict:
    """CPU and memory this server may use: the machine's, bounded by its own cgroups (a Binder's 2 GB)."""
    try:
        cpu = float(len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        cpu = float(os.cpu_count() or 1)
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    layout, own = cgroups.detect_layout(), own_cgroup_paths()
    if layout is not None and layout.version == 2:
        for d in _up(layout.mounts["unified"], own.get("unified", "/")):
            mem = min(mem, _int(_read(os.path.join(d, "memory.max"))) or mem)
            quota, _, period = (_read(os.path.join(d, "cpu.max")) or "max").partition(" ")
            if quota.isdigit() and (_int(period) or 0) > 0:
                cpu = min(cpu, int(quota) / int(period))
    elif layout is not None:
        if "memory" in layout.mounts:
            for d in _up(layout.mounts["memory"], own.get("memory", "/")):
                mem = min(mem, _int(_read(os.path.join(d, "memory.limit_in_bytes"))) or mem)
        if "cpu" in layout.mounts:
            for d in _up(layout.mounts["cpu"], own.get("cpu", "/")):
                quota, period = (
                    _int(_read(os.path.join(d, "cpu.cfs_quota_us"))),
                    _int(_read(os.path.join(d, "cpu.cfs_period_us"))),
                )
                if quota and quota > 0 and period:
                    cpu = min(cpu, quota / period)
    return {"cpu": round(cpu, 3), "mem": int(mem)}

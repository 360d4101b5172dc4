"""The kernel benchmarks' probes: the percentile summary, /proc readings, a kernel's memory and the machine's facts.

Used by ``kernel_start.py`` and ``idle_kernels.py`` (and, for :func:`summary`, by ``environments.py`` through it).
"""

from __future__ import annotations

import os
import platform
import statistics


# -- summary and /proc ------------------------------------------------------------------------------
def summary(values: list[float]) -> dict:
    values = sorted(values)
    p95 = statistics.quantiles(values, n=20, method="inclusive")[18] if len(values) > 1 else values[0]
    return {
        "n": len(values),
        "p50": statistics.median(values),
        "p95": p95,
        "min": values[0],
        "max": values[-1],
        "mean": statistics.fmean(values),
    }


def proc_kib(pid: int, field: str, path: str = "status") -> int | None:
    """A ``kB`` field of /proc/<pid>/status (VmRSS) or smaps_rollup (Pss), in KiB."""
    try:
        with open(f"/proc/{pid}/{path}") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def parent(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def mem_available() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def machine_facts(engine: dict) -> dict:
    with open("/proc/meminfo") as f:
        total = int(f.readline().split()[1]) * 1024
    import ipykernel
    import jupyter_client

    return {
        "cores": os.cpu_count(),
        "mem_gib": round(total / 2**30, 1),
        "docker": engine.get("version"),
        "cgroup": f"v{engine.get('cgroup_version')} ({engine.get('cgroup_driver')})",
        "os": engine.get("os"),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "ipykernel_local": ipykernel.__version__,
        "jupyter_client": jupyter_client.__version__,
        "loadavg_start": os.getloadavg(),
    }


async def kernel_memory(service, container_id: str) -> dict:
    """A kernel container's memory: its cgroup's, the kernel process's RSS and PSS, its shim's RSS (MiB)."""
    usage = await service.runtime.usage(container_id)
    attrs = await service.runtime.docker("inspect_container", container_id)
    tini = (attrs.get("State") or {}).get("Pid")
    kernel = children(tini)[0] if tini and children(tini) else None
    shim = parent(tini) if tini else None
    return {
        "cgroup_mib": usage.mem_bytes / 2**20 if usage else None,
        "rss_mib": (proc_kib(kernel, "VmRSS") or 0) / 1024 if kernel else None,
        "pss_mib": (proc_kib(kernel, "Pss", "smaps_rollup") or 0) / 1024 if kernel else None,
        "shim_rss_mib": (proc_kib(shim, "VmRSS") or 0) / 1024 if shim else None,
    }

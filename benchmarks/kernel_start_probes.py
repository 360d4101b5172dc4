"""The kernel start benchmark's probes: the percentile summary, /proc readings and the machine's facts.

Used by ``kernel_start.py`` (and, for :func:`summary`, by ``environments.py`` through it).
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

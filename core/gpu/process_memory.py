"""GPU memory per kernel, from NVML's list of processes on each device.

NVML names the processes using a device by host PID (``nvmlDeviceGetComputeRunningProcesses``, and
``nvmlDeviceGetMPSComputeRunningProcesses`` for MPS clients, merged by PID in
:func:`~jupyter_berth.gpu.inventory.running_processes`, collected by
:func:`~jupyter_berth.gpu.inventory.device_metrics` as ``processes``). A process
belongs to the container whose 64-hex id appears in its ``/proc/<pid>/cgroup`` (Docker's
cgroupfs and systemd layouts, v1 and v2). Summing per container gives each kernel's GPU
memory. Where the driver cannot tell a process's memory (some drivers, MPS clients on older
ones) it is ``None`` and that process counts as zero; where Berth cannot see the host's ``/proc`` (the
service in a container of its own without ``pid: host``), nothing is attributed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from ..runtime.cgroups import _proc_cgroup_paths

_CONTAINER_ID = re.compile(r"(?<![0-9a-f])([0-9a-f]{64})(?![0-9a-f])")


def container_of_pid(pid: int) -> str | None:
    """The id of the container ``pid`` runs in, from its cgroup paths; ``None`` when none (or gone)."""
    try:
        paths = _proc_cgroup_paths(int(pid))
    except (TypeError, ValueError):
        return None
    for path in paths.values():
        match = _CONTAINER_ID.search(path)
        if match:
            return match.group(1)
    return None


def gpu_memory_by_container(metrics: Mapping[str, Mapping], containers: Iterable[str] | None = None) -> dict[str, int]:
    """Bytes of GPU memory per container id, over every device in ``metrics`` (NVML's answer per UUID).

    ``containers`` limits the answer to those ids (the kernels asked about); each appears with 0
    when NVML lists none of its processes.
    """
    wanted = set(containers) if containers is not None else None
    out: dict[str, int] = {c: 0 for c in wanted} if wanted is not None else {}
    for device in metrics.values():
        for process in device.get("processes") or ():
            container = container_of_pid(process.get("pid", -1))
            if container is None or (wanted is not None and container not in wanted):
                continue
            out[container] = out.get(container, 0) + int(process.get("used_memory_bytes") or 0)
    return out

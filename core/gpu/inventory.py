"""GPU inventory: which NVIDIA devices this host has, from NVML or from config.

Two sources, never mixed:

* **declared** — the admin lists devices in config (``uuid``, ``name``,
  ``memory``, optionally ``index`` and ``node``). Used for tests on machines
  without a GPU, for hosts where the service cannot load NVML (the service runs
  in a container without the driver library), for MIG instances (declare their
  ``MIG-…`` UUIDs) and for Swarm nodes other than this one. Declared devices
  carry ``declared=True`` so reports and the sidebar can say so.
* **nvml** — :func:`discover` asks the NVIDIA Management Library through
  ``pynvml`` (package ``nvidia-ml-py``): device count, then per device its
  index, UUID, name, total memory and MIG mode, plus driver and CUDA versions.

NVML fails soft: with no driver, no library or no device, :func:`discover`
returns an empty inventory whose ``message`` starts with
``"no NVIDIA GPU on this host"`` and says why; it never raises. NVML calls
block (they can take a second on a cold driver): async code uses
:func:`discover_async` and :func:`device_metrics_async`, which run them in a
worker thread.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from ..errors import RequestError
from ..resources import format_bytes, parse_memory

log = logging.getLogger(__name__)

#: What a declared device entry may hold (used in error messages).
DECLARED_FIELDS = ("uuid", "name", "memory", "index", "node", "utilization")
#: A UUID goes into ``NVIDIA_VISIBLE_DEVICES`` (comma-separated) and MPS limit
#: strings (``key=value``), so commas, ``=`` and spaces are refused.
_UUID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,127}$")
NO_GPU = "no NVIDIA GPU on this host"

Source = Literal["nvml", "declared", "none"]


@dataclass(frozen=True)
class GpuDevice:
    """One device that can be handed out (a whole GPU, or a MIG instance when declared)."""

    index: int
    uuid: str
    name: str
    memory_bytes: int
    mig_mode: bool = False  #: MIG is enabled on this GPU (hand out its instances, not shares of it)
    declared: bool = False  #: listed in config rather than detected by NVML
    node: str | None = None  #: Swarm node name the device sits on (None: this host)
    #: a declared device's fixed utilization reading in percent (NVML cannot read a declared device);
    #: the utilization idle rule reads it, None = unknown (that rule then never fires)
    declared_utilization: float | None = None

    def to_json(self) -> dict:
        out = asdict(self)
        if out["declared_utilization"] is None:
            del out["declared_utilization"]
        out["memory"] = format_bytes(self.memory_bytes)
        return out


@dataclass
class GpuInventory:
    """What :func:`discover` found. ``message`` is one line an admin can act on."""

    devices: list[GpuDevice]
    driver_version: str | None
    cuda_version: str | None
    source: Source
    message: str
    errors: list[str] = field(default_factory=list)  #: devices NVML listed but could not read

    def __bool__(self) -> bool:
        return bool(self.devices)

    def by_uuid(self) -> dict[str, GpuDevice]:
        return {d.uuid: d for d in self.devices}

    def to_json(self) -> dict:
        return {
            "devices": [d.to_json() for d in self.devices],
            "driver_version": self.driver_version,
            "cuda_version": self.cuda_version,
            "source": self.source,
            "message": self.message,
            "errors": list(self.errors),
        }


# ---------------------------------------------------------------------------
# declared devices


def parse_declared(entries: Iterable[Mapping[str, Any]], where: str = "gpus") -> list[GpuDevice]:
    """Validate devices declared in config; errors name the entry and field (``gpus[1].memory``)."""
    if isinstance(entries, (str, bytes, Mapping)):
        raise RequestError(where, "expected a list of devices such as [{uuid: GPU-…, name: A100, memory: 40G}]")
    devices: list[GpuDevice] = []
    seen_uuids: dict[str, int] = {}
    seen_indices: dict[int, int] = {}
    for position, entry in enumerate(entries):
        at = f"{where}[{position}]"
        if not isinstance(entry, Mapping):
            raise RequestError(at, f"{entry!r} is not a device; expected a mapping with uuid, name and memory")
        unknown = sorted(set(entry) - set(DECLARED_FIELDS))
        if unknown:
            raise RequestError(
                f"{at}.{unknown[0]}", f"unknown field; a declared device has {', '.join(DECLARED_FIELDS)}"
            )
        for required in ("uuid", "name", "memory"):
            if entry.get(required) in (None, ""):
                raise RequestError(f"{at}.{required}", "is required (a device needs uuid, name and memory such as 16G)")
        uuid = entry["uuid"]
        if not isinstance(uuid, str) or not _UUID_RE.match(uuid):
            raise RequestError(
                f"{at}.uuid",
                f"{uuid!r} is not a device UUID; expected the form nvidia-smi -L shows, such as GPU-5f3c… or MIG-…"
                " (letters, digits, '-', '_', '.', ':'; no commas or spaces)",
            )
        if uuid in seen_uuids:
            raise RequestError(f"{at}.uuid", f"{uuid!r} is declared twice (also {where}[{seen_uuids[uuid]}])")
        name = entry["name"]
        if not isinstance(name, str):
            raise RequestError(f"{at}.name", f"{name!r} is not a name; expected text such as 'NVIDIA A100 80GB PCIe'")
        memory = parse_memory(entry["memory"], f"{at}.memory")  # names the field itself
        index = entry.get("index", position)
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise RequestError(f"{at}.index", f"{index!r} is not a device index; expected a whole number ≥ 0")
        if index in seen_indices:
            raise RequestError(f"{at}.index", f"index {index} is used twice (also {where}[{seen_indices[index]}])")
        node = entry.get("node")
        if node is not None and (not isinstance(node, str) or not node):
            raise RequestError(f"{at}.node", f"{node!r} is not a node name; expected the Swarm node's hostname")
        utilization = entry.get("utilization")
        if utilization is not None and (
            isinstance(utilization, bool) or not isinstance(utilization, (int, float)) or not 0 <= utilization <= 100
        ):
            raise RequestError(f"{at}.utilization", f"{utilization!r} is not a percentage; expected 0 to 100")
        seen_uuids[uuid] = position
        seen_indices[index] = position
        devices.append(
            GpuDevice(
                index=index,
                uuid=uuid,
                name=name,
                memory_bytes=memory,
                declared=True,
                node=node,
                declared_utilization=None if utilization is None else float(utilization),
            )
        )
    return sorted(devices, key=lambda d: (d.node or "", d.index))


# ---------------------------------------------------------------------------
# NVML


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _nvml_failure(pynvml: Any, error: Exception) -> str:
    """Turn an NVML error into the reason an admin reads."""
    if isinstance(error, getattr(pynvml, "NVMLError_LibraryNotFound", ())):
        return "the NVIDIA driver library libnvidia-ml.so.1 was not found: no NVIDIA driver is installed"
    if isinstance(error, getattr(pynvml, "NVMLError_DriverNotLoaded", ())):
        return "the NVIDIA driver is installed but not loaded (is the nvidia kernel module loaded?)"
    if isinstance(error, getattr(pynvml, "NVMLError_NoPermission", ())):
        return "NVML refused access (the service's user cannot open /dev/nvidiactl)"
    return f"NVML failed: {error}"


def _cuda_version(pynvml: Any) -> str | None:
    try:
        version = int(pynvml.nvmlSystemGetCudaDriverVersion())
    except (pynvml.NVMLError, AttributeError):
        return None
    return f"{version // 1000}.{(version % 1000) // 10}"


def _mig_enabled(pynvml: Any, handle: Any) -> bool:
    try:
        current, _pending = pynvml.nvmlDeviceGetMigMode(handle)
    except pynvml.NVMLError:  # NotSupported on GPUs without MIG
        return False
    return current == getattr(pynvml, "NVML_DEVICE_MIG_ENABLE", 1)


def _discover_nvml() -> GpuInventory:
    try:
        import pynvml
    except ImportError:
        return GpuInventory([], None, None, "none", f"{NO_GPU} (the nvidia-ml-py package is not installed)")
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as e:
        return GpuInventory([], None, None, "none", f"{NO_GPU} ({_nvml_failure(pynvml, e)})")
    except OSError as e:  # a broken library file: dlopen errors surface as OSError
        return GpuInventory([], None, None, "none", f"{NO_GPU} (could not load NVML: {e})")
    try:
        devices: list[GpuDevice] = []
        errors: list[str] = []
        try:
            driver = _text(pynvml.nvmlSystemGetDriverVersion())
        except pynvml.NVMLError:
            driver = None
        cuda = _cuda_version(pynvml)
        count = pynvml.nvmlDeviceGetCount()
        for index in range(count):
            try:
                handle = pynvml.nvmlDeviceGetHandleByIndex(index)
                devices.append(
                    GpuDevice(
                        index=index,
                        uuid=_text(pynvml.nvmlDeviceGetUUID(handle)),
                        name=_text(pynvml.nvmlDeviceGetName(handle)),
                        memory_bytes=int(pynvml.nvmlDeviceGetMemoryInfo(handle).total),
                        mig_mode=_mig_enabled(pynvml, handle),
                    )
                )
            except pynvml.NVMLError as e:  # a lost or faulty GPU must not hide the others
                errors.append(f"device {index}: {e}")
                log.warning("NVML could not read GPU %d: %s", index, e)
    except pynvml.NVMLError as e:
        return GpuInventory([], None, None, "none", f"{NO_GPU} ({_nvml_failure(pynvml, e)})")
    finally:
        try:
            pynvml.nvmlShutdown()
        except pynvml.NVMLError:
            pass
    if not devices:
        reason = "the driver reports no devices" if not errors else "; ".join(errors)
        return GpuInventory([], driver, cuda, "none", f"{NO_GPU} ({reason})", errors)
    message = (
        f"{len(devices)} NVIDIA GPU{'s' if len(devices) != 1 else ''} found by NVML (driver {driver}, CUDA {cuda})"
    )
    if errors:
        message += f"; {len(errors)} could not be read: {'; '.join(errors)}"
    return GpuInventory(devices, driver, cuda, "nvml", message, errors)


def discover(declared: list[Mapping[str, Any]] | None = None, where: str = "gpus") -> GpuInventory:
    """The host's GPUs: the ``declared`` list if given (validated), else NVML.

    Raises :class:`RequestError` only for a malformed declared list (config
    errors must stop start-up); NVML problems give an empty inventory.
    """
    if declared:
        devices = parse_declared(declared, where)
        n = len(devices)
        return GpuInventory(
            devices,
            None,
            None,
            "declared",
            f"{n} GPU{'s' if n != 1 else ''} declared in configuration ({where}); not detected by NVML",
        )
    return _discover_nvml()


async def discover_async(declared: list[Mapping[str, Any]] | None = None, where: str = "gpus") -> GpuInventory:
    """:func:`discover` in a worker thread (NVML calls block)."""
    return await asyncio.to_thread(discover, declared, where)


# ---------------------------------------------------------------------------
# live metrics


#: NVML's two process lists: plain CUDA contexts, and the clients of an MPS server (which the
#: first list does not show; NVML API reference, nvmlDeviceGetMPSComputeRunningProcesses).
PROCESS_QUERIES = ("nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetMPSComputeRunningProcesses")


def running_processes(pynvml: Any, handle: Any) -> list[dict]:
    """Compute processes on a device from both NVML lists, merged by PID (host PID namespace).

    A PID in both lists appears once, with the memory NVML could tell (the larger when both tell);
    ``used_memory_bytes`` is None where neither could (older drivers under MPS). A list the driver
    does not support is skipped.
    """
    merged: dict[int, int | None] = {}
    for query in PROCESS_QUERIES:
        function = getattr(pynvml, query, None)
        if function is None:
            continue
        try:
            found = function(handle)
        except pynvml.NVMLError:
            continue
        for p in found:
            pid = int(p.pid)
            used = None if p.usedGpuMemory is None else int(p.usedGpuMemory)
            known = merged.get(pid)
            merged[pid] = used if known is None else (known if used is None else max(known, used))
    return [{"pid": pid, "used_memory_bytes": used} for pid, used in merged.items()]


def device_metrics(uuids: Iterable[str]) -> dict[str, dict]:
    """Live use of the named devices via NVML; ``{}`` where there is no NVML.

    Per device: ``utilization_percent`` (None if unsupported),
    ``memory_used_bytes``, ``memory_total_bytes`` and ``processes``
    (``[{pid, used_memory_bytes}]`` from NVML's compute *and* MPS-client lists,
    merged by PID; PIDs are in the host's PID namespace, ``used_memory_bytes`` is
    None where the driver cannot tell).
    A device NVML cannot find or read is left out. Never raises.
    """
    uuids = list(uuids)
    if not uuids:
        return {}
    try:
        import pynvml
    except ImportError:
        return {}
    try:
        pynvml.nvmlInit()
    except (pynvml.NVMLError, OSError):
        return {}
    out: dict[str, dict] = {}
    try:
        for uuid in uuids:
            try:
                handle = pynvml.nvmlDeviceGetHandleByUUID(uuid)
                memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            except pynvml.NVMLError as e:
                log.debug("NVML has no readable device %s: %s", uuid, e)
                continue
            try:
                utilization = int(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu)
            except pynvml.NVMLError:
                utilization = None
            processes = running_processes(pynvml, handle)
            out[uuid] = {
                "utilization_percent": utilization,
                "memory_used_bytes": int(memory.used),
                "memory_total_bytes": int(memory.total),
                "processes": processes,
            }
    finally:
        try:
            pynvml.nvmlShutdown()
        except pynvml.NVMLError:
            pass
    return out


async def device_metrics_async(uuids: Iterable[str]) -> dict[str, dict]:
    """:func:`device_metrics` in a worker thread."""
    return await asyncio.to_thread(device_metrics, list(uuids))

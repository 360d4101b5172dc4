"""GPU shares: the service's GPU manager (``service.gpus``, settings ``c.GpuManager.*``): inventory at
start, the allocator inside admission, and the enforcement plan applied to each kernel container
(design decision 5).

Without a driver the inventory is empty ("no NVIDIA GPU on this host") and a GPU request is
refused with that message; devices may also be declared in config (labelled declared).
"""

from __future__ import annotations

import asyncio
import os

from traitlets import Dict, Enum, Float, List, Unicode, validate

from ..admission import share_assigner
from ..area import AreaManager
from ..runtime.base import Mount
from . import allocator, enforcement, inventory, process_memory, startup_caps

#: Where the framework-caps startup file is mounted by default (IPython runs it): the IPython
#: startup directory for HOME=/home/jovyan, which Berth sets in every kernel container.
STARTUP_MOUNT = startup_caps.startup_mount_target(startup_caps.DEFAULT_STARTUP_DIR)


class GpuManager(AreaManager):
    """GPU devices and shares (``service.gpus``): what the host has, who holds which share, how a share is enforced."""

    data_dir = Unicode(help="The service's data directory (BerthService.data_dir): the framework-caps file goes there.")
    devices = List(
        Dict(),
        config=True,
        help="Declared GPU devices, for hosts NVML cannot see (and tests): "
        "[{uuid, name, memory: '16G', index}]. Empty: ask NVML. Declared devices are labelled as such.",
    )
    gpu_policy = Enum(
        ["pack", "spread"],
        "pack",
        config=True,
        help="Placement of fractions: pack fills partly used devices first (keeps whole devices free); spread uses the emptiest.",
    )
    gpu_quantum = Float(0.05, config=True, help="GPU fractions must be multiples of this share.")
    gpu_shareable = List(
        Unicode(),
        None,
        allow_none=True,
        config=True,
        help="UUIDs of devices that may be split into fractions (None: all but MIG-enabled devices).",
    )
    gpu_enforcement = Enum(
        ["none", "mps", "interception"],
        "none",
        config=True,
        help="How a fraction's memory cap is enforced beyond the framework caps (always applied): "
        "NVIDIA MPS limits, or an admin-supplied CUDA interception library. See docs/admin-gpus.md.",
    )
    gpu_mps_pipe_directory = Unicode(
        enforcement.DEFAULT_MPS_PIPE_DIRECTORY,
        config=True,
        help="The MPS control daemon's pipe directory (its CUDA_MPS_PIPE_DIRECTORY), mounted into MPS kernels only. "
        "Not NVIDIA's default /tmp/nvidia-mps, which the NVIDIA runtime mounts into every GPU container.",
    )
    gpu_interception_library = Unicode(
        None,
        allow_none=True,
        config=True,
        help="Host path of a CUDA interception library (preloaded in GPU kernels when gpu_enforcement='interception').",
    )
    gpu_interception_env = Dict(
        config=True,
        help="Variables for the interception library; values may use {memory_mb}, {memory_bytes}, {share_percent}.",
    )

    gpu_interception_mounts = List(
        config=True,
        help="Extra host paths the interception library needs in GPU kernels under gpu_enforcement='interception', "
        "each (host path, container path, read_only) or 'host:container[:ro]'; read-write by default. HAMi-core "
        "shares a lock directory: [('/tmp/vgpulock', '/tmp/vgpulock', False)].",
    )

    @validate("gpu_interception_mounts")
    def _valid_interception_mounts(self, proposal):
        return enforcement.parse_interception_mounts(proposal["value"])

    gpu_caps_startup_dir = Unicode(
        startup_caps.DEFAULT_STARTUP_DIR,
        config=True,
        help="IPython startup directory inside GPU containers, where the framework-caps file is mounted read-only. "
        "Berth sets HOME=/home/jovyan in kernel containers, so the default fits them; for single-user servers "
        "from images whose IPython directory differs (another HOME, or IPYTHONDIR), set "
        "$IPYTHONDIR/profile_default/startup of that image.",
    )

    @validate("gpu_caps_startup_dir")
    def _valid_caps_startup_dir(self, proposal):
        return startup_caps.check_startup_dir(proposal["value"])

    gpu_inventory: inventory.GpuInventory | None = None

    async def discover_gpus(self) -> inventory.GpuInventory:
        self.gpu_inventory = await inventory.discover_async(self.devices or None)
        if not self.gpu_inventory.devices:
            self.log.info("Berth GPUs: %s", self.gpu_inventory.message)
        else:
            self.log.info(
                "Berth GPUs (%s): %s",
                self.gpu_inventory.source,
                ", ".join(f"{d.name} {d.uuid}" for d in self.gpu_inventory.devices),
            )
        if self.gpu_enforcement == "mps":
            warning = enforcement.mps_pipe_directory_warning(self.gpu_mps_pipe_directory)
            if warning:
                self.log.warning("Berth GPUs: %s", warning)
        self._caps_file = startup_caps.write_startup_file(os.path.join(self.data_dir, "gpu"))
        return self.gpu_inventory

    def gpu_assigner(self):
        """The admission hook for this host's devices (None: no GPU, a GPU request is refused)."""
        devices = list(self.gpu_inventory.devices) if self.gpu_inventory else []
        if not devices:
            return None
        shareable = set(self.gpu_shareable) if self.gpu_shareable is not None else None
        return share_assigner(allocator.make_gpu_assigner(devices, self.gpu_policy, self.gpu_quantum, shareable))

    def gpu_container(self, gpu_devices) -> tuple[list[str], dict, list[Mount], enforcement.GpuPlan]:
        """Device ids, environment and mounts that enforce a grant (an empty grant hides all GPUs)."""
        devices = list(self.gpu_inventory.devices) if self.gpu_inventory else []
        plan = enforcement.plan(
            list(gpu_devices or ()),
            devices,
            self.gpu_enforcement,
            self.gpu_interception_library,
            self.gpu_interception_env,
            mps_pipe_directory=self.gpu_mps_pipe_directory,
            interception_mounts=self.gpu_interception_mounts,
        )
        mounts = [Mount(source=src, target=dst, read_only=ro) for src, dst, ro in plan.mounts]
        if gpu_devices:
            target = startup_caps.startup_mount_target(self.gpu_caps_startup_dir)
            mounts.append(Mount(source=str(self._caps_file), target=target, read_only=True))
        return plan.device_ids, dict(plan.env), mounts, plan

    async def gpu_memory_of(self, allocations) -> dict[str, int]:
        """GPU memory in use per container of ``allocations`` that hold a share (NVML only; ``{}`` otherwise)."""
        inv = self.gpu_inventory
        holders = [a for a in allocations if a.gpu_devices and a.container_id]
        if inv is None or inv.source != "nvml" or not holders:
            return {}
        uuids = sorted({dict(d)["uuid"] for a in holders for d in a.gpu_devices})
        metrics = await inventory.device_metrics_async(uuids)
        return await asyncio.to_thread(
            process_memory.gpu_memory_by_container, metrics, [a.container_id for a in holders]
        )

    async def gpu_summary(self) -> dict:
        """Devices, their free shares (from the ledger's live grants) and NVML metrics where there are any."""
        inv = self.gpu_inventory or await self.discover_gpus()
        live = await self._db(self.ledger.live_allocations)
        used = allocator.used_by_device(a.gpu_devices or () for a in live)
        free = allocator.free_shares(inv.devices, used)
        metrics = await inventory.device_metrics_async([d.uuid for d in inv.devices]) if inv.source == "nvml" else {}
        chosen = set(self.gpu_shareable) if self.gpu_shareable is not None else None
        shareable = [d.uuid for d in inv.devices if allocator.is_shareable(d, chosen)]
        return {
            "source": inv.source,
            "message": inv.message,
            "quantum": self.gpu_quantum,
            "policy": self.gpu_policy,
            "enforcement": self.gpu_enforcement,
            "devices": [d.to_json() for d in inv.devices],
            "free": free,
            "shareable": shareable,
            "metrics": metrics,
        }

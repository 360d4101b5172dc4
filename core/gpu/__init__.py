"""GPUs: inventory (NVML or declared), the fraction allocator, enforcement plans.

* :mod:`.inventory` — which devices the host has (:func:`discover`), live
  per-device metrics (:func:`device_metrics`); NVML fails soft.
* :mod:`.allocator` — which device(s) a request gets (:func:`assign`, pure,
  exact share arithmetic), and :func:`make_gpu_assigner` for admission.
* :mod:`.enforcement` — container settings for a grant (:func:`plan`):
  visible devices, framework caps, MPS limits or an interception library.
* :mod:`.startup_caps` — the IPython startup file that applies PyTorch and
  TensorFlow memory caps inside a kernel.

Admin guide: ``docs/admin-gpus.md``.
"""

from .allocator import (
    UNITS,
    GpuCapacityError,
    GpuShare,
    assign,
    format_share,
    free_shares,
    make_gpu_assigner,
    used_by_device,
)
from .enforcement import GpuPlan, docker_device_requests, docker_mounts, docker_run_kwargs, plan
from .inventory import (
    GpuDevice,
    GpuInventory,
    device_metrics,
    device_metrics_async,
    discover,
    discover_async,
    parse_declared,
)
from .startup_caps import STARTUP_CAPS_SOURCE, STARTUP_FILENAME, write_startup_file

__all__ = [
    "UNITS",
    "GpuCapacityError",
    "GpuDevice",
    "GpuInventory",
    "GpuPlan",
    "GpuShare",
    "STARTUP_CAPS_SOURCE",
    "STARTUP_FILENAME",
    "assign",
    "device_metrics",
    "device_metrics_async",
    "discover",
    "discover_async",
    "docker_device_requests",
    "docker_mounts",
    "docker_run_kwargs",
    "format_share",
    "free_shares",
    "make_gpu_assigner",
    "parse_declared",
    "plan",
    "used_by_device",
    "write_startup_file",
]

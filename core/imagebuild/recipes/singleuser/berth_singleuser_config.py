# jupyter-berth: settings of a user's server in a Berth hub (baked into berth/singleuser).
#
# BerthSpawner passes the user's policy in the environment:
#   BERTH_KERNEL_IDLE_TIMEOUT  seconds after which an idle kernel is culled (0: never)
#   BERTH_DEFAULT_KERNEL       the kernelspec a new notebook gets
# Kernels are Berth containers started by the hub's Berth service (BERTH_SERVICE_URL);
# ipykernel's local "python3" kernel is not offered: it would run inside this server's
# own limits instead of a kernel's.
import os

c = get_config()  # noqa: F821 - defined by the config loader

# BERTH_LOCAL_KERNEL=1 offers it all the same (used to compare with plain DockerSpawner).
c.KernelSpecManager.ensure_native_kernel = os.environ.get("BERTH_LOCAL_KERNEL") == "1"
c.MappingKernelManager.default_kernel_name = os.environ.get("BERTH_DEFAULT_KERNEL") or "berth-python-3.11"

_idle = int(float(os.environ.get("BERTH_KERNEL_IDLE_TIMEOUT") or 0))
if _idle > 0:
    c.MappingKernelManager.cull_idle_timeout = _idle
    # check often enough that a kernel never outlives its timeout by more than a quarter
    c.MappingKernelManager.cull_interval = max(5, min(300, _idle // 4))
    # idle means "ran nothing": an open but unused notebook tab does not keep a kernel alive
    c.MappingKernelManager.cull_connected = True
    c.MappingKernelManager.cull_busy = False

"""How a GPU grant becomes container settings: devices, environment, mounts.

:func:`plan` turns the shares the allocator chose into a :class:`GpuPlan` a
runtime applies to the container it starts. Layers, weakest first:

* **always** — ``NVIDIA_VISIBLE_DEVICES`` with the granted UUIDs and a Docker
  device request for exactly those devices (the container sees no other GPU;
  a kernel without GPU gets ``NVIDIA_VISIBLE_DEVICES=void`` so an image that
  sets ``all`` under a default ``nvidia`` runtime still sees none), plus
  ``BERTH_GPU_SHARE`` and ``BERTH_GPU_MEMORY_BYTES`` (share × device memory)
  for the kernel and the sidebar to read.
* **framework caps** (every fraction; fractions of 1 under interception, whose
  library reports the budget as the device total) — ``BERTH_JAX_MEMORY_FRACTION``
  (turned into exactly one of JAX's two names, see :func:`jax_fraction_variable`),
  ``XLA_PYTHON_CLIENT_PREALLOCATE=false``, ``TF_FORCE_GPU_ALLOW_GROWTH=true``
  and the variables the IPython startup file
  (:mod:`jupyter_berth.gpu.startup_caps`) turns into PyTorch's per-process
  memory fraction and TensorFlow's logical-device memory limit. Cooperative
  only: user code can undo them.
* **mps** — NVIDIA MPS client limits: ``CUDA_MPS_ACTIVE_THREAD_PERCENTAGE``
  (compute) and ``CUDA_MPS_PINNED_DEVICE_MEM_LIMIT`` (device memory, enforced by
  the MPS server), the pipe directory mounted, host IPC. The variables live in the
  kernel's environment and bind each *process* (not the container): a process
  started without them gets the control daemon's defaults, which the admin sets
  as the ceiling (docs/admin-gpus.md). Every other plan with a device sets
  ``CUDA_MPS_PIPE_DIRECTORY`` to :data:`NO_MPS_PIPE_DIRECTORY`, so CUDA there
  never connects to a daemon whose directory the NVIDIA runtime mounted.
* **interception** — an admin-supplied CUDA interception library (such as
  HAMi-core's ``libvgpu.so``) mounted read-only and ``LD_PRELOAD``-ed, with
  the admin's limit variables filled in. Nothing is vendored.

Whole devices get no caps: the kernel owns them. Pure functions, no engine.
"""

from __future__ import annotations

import posixpath
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from ..errors import RequestError
from .allocator import UNITS, GpuShare, format_share, to_units
from .inventory import GpuDevice

Mechanism = Literal["none", "mps", "interception"]
MECHANISMS = ("none", "mps", "interception")

MiB = 1024**2
#: NVIDIA's own default pipe directory. libnvidia-container mounts it into *every* container with
#: the compute capability when it exists on the host (``lookup_ipcs`` in src/nvc_info.c, the IPC
#: mounts in src/nvc_mount.c), so a daemon there reaches kernels that were never meant to use MPS.
NVIDIA_DEFAULT_MPS_PIPE_DIRECTORY = "/tmp/nvidia-mps"
#: Berth's default pipe directory for the MPS daemon: not NVIDIA's, so only MPS kernels see it.
DEFAULT_MPS_PIPE_DIRECTORY = "/run/nvidia-mps"
#: ``CUDA_MPS_PIPE_DIRECTORY`` for every GPU plan that is not an MPS client: a path that can never
#: exist (nothing can be created under /dev/null), so CUDA's connection attempt to a control daemon
#: fails and the process runs without MPS, as nvidia-cuda-mps-control(1) describes, even when a
#: daemon's pipe directory was mounted into the container by the NVIDIA runtime.
NO_MPS_PIPE_DIRECTORY = "/dev/null/berth-no-mps"
#: Where the interception library appears inside the container.
INTERCEPTION_DIR_IN_CONTAINER = "/opt/berth/gpu"
#: Placeholders an admin may use in interception limit variables.
TEMPLATE_FIELDS = ("memory_mb", "memory_bytes", "share", "share_percent", "device_uuid")


@dataclass
class GpuPlan:
    """Container settings for one grant. ``mounts`` are ``(host path, container path, read_only)``."""

    device_ids: list[str]
    env: dict[str, str]
    mounts: list[tuple[str, str, bool]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: IPC namespace the container needs (``"host"`` for MPS clients), None = engine default.
    ipc_mode: str | None = None
    mechanism: str = "none"  #: the mechanism that actually applies ("none" for whole devices)
    memory_bytes: int = 0  #: device memory this grant may use (sum over devices)

    def to_json(self) -> dict:
        return {
            "device_ids": list(self.device_ids),
            "env": dict(self.env),
            "mounts": [list(m) for m in self.mounts],
            "notes": list(self.notes),
            "ipc_mode": self.ipc_mode,
            "mechanism": self.mechanism,
            "memory_bytes": self.memory_bytes,
        }


def _fill_template(name: str, template: str, values: Mapping[str, str]) -> str:
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as e:
        raise RequestError(f"gpu_interception_env.{name}", f"{template!r} is not a valid template ({e})") from None
    for f in fields:
        if f not in values:
            raise RequestError(
                f"gpu_interception_env.{name}",
                f"unknown placeholder {{{f}}} in {template!r}; use {', '.join('{' + k + '}' for k in TEMPLATE_FIELDS)}",
            )
    return template.format_map(values)


def parse_interception_mounts(
    value: Iterable | None, field: str = "gpu_interception_mounts"
) -> list[tuple[str, str, bool]]:
    """Normalise extra mounts an interception library needs to ``(host path, container path, read_only)``.

    Each entry is ``(host, container[, read_only])``, ``{"source", "target"[, "read_only"]}`` or the
    string ``"host:container[:ro|rw]"``; read-write unless said otherwise (HAMi-core's lock directory
    must be writable). Both paths must be absolute.
    """
    out: list[tuple[str, str, bool]] = []
    for position, entry in enumerate(value or ()):
        at = f"{field}[{position}]"
        if isinstance(entry, str):
            parts = entry.split(":")
            if len(parts) == 3 and parts[2] in ("ro", "rw"):
                src, dst, ro = parts[0], parts[1], parts[2] == "ro"
            elif len(parts) in (1, 2):
                src, dst, ro = parts[0], parts[-1], False
            else:
                raise RequestError(at, f"{entry!r} is not a mount; write 'host:container', optionally ':ro' or ':rw'")
        elif isinstance(entry, Mapping):
            unknown = sorted(set(entry) - {"source", "target", "read_only"})
            if unknown or "source" not in entry:
                raise RequestError(at, f"{entry!r} is not a mount; expected source, target and optionally read_only")
            src, dst, ro = entry["source"], entry.get("target", entry["source"]), entry.get("read_only", False)
        elif isinstance(entry, (list, tuple)) and len(entry) in (2, 3):
            src, dst, ro = entry[0], entry[1], entry[2] if len(entry) == 3 else False
        else:
            raise RequestError(at, f"{entry!r} is not a mount; expected (host path, container path, read_only)")
        if not (isinstance(src, str) and isinstance(dst, str) and posixpath.isabs(src) and posixpath.isabs(dst)):
            raise RequestError(at, f"{entry!r}: both paths must be absolute, such as /tmp/vgpulock")
        if not isinstance(ro, bool):
            raise RequestError(at, f"{entry!r}: read_only must be true or false")
        out.append((src, dst, ro))
    return out


#: JAX's memory-fraction variable, and the name it replaced. Current jaxlib refuses to start its GPU
#: client when both are set ("XLA_CLIENT_MEM_FRACTION is specified together with
#: XLA_PYTHON_CLIENT_MEM_FRACTION"), and reads the deprecated one when it is the only one.
JAX_FRACTION = "XLA_CLIENT_MEM_FRACTION"
JAX_FRACTION_DEPRECATED = "XLA_PYTHON_CLIENT_MEM_FRACTION"


def jax_fraction_variable(image_env: Mapping[str, str] | None) -> str | None:
    """Which JAX fraction variable a container may carry without setting both.

    A container's environment is the image's plus the plan's; Docker cannot unset an image's
    variable. So: the new name when the image sets it (the image chose it; Berth overrides the
    value), else the deprecated name, which every jaxlib with either name reads. ``None`` when the
    image's environment is unknown: then the plan sets neither and the IPython startup file picks
    the name inside the kernel from ``BERTH_JAX_MEMORY_FRACTION`` (:mod:`.startup_caps`).
    """
    if image_env is None:
        return None
    return JAX_FRACTION if JAX_FRACTION in image_env else JAX_FRACTION_DEPRECATED


def image_environment(config_env: Iterable[str] | None) -> dict[str, str]:
    """An image's ``Config.Env`` (``["K=V", ...]``, as the engine reports it) as a mapping."""
    out: dict[str, str] = {}
    for item in config_env or ():
        key, _, value = str(item).partition("=")
        out[key] = value
    return out


def check_mps_pipe_directory(path: str) -> str:
    """Refuse a pipe directory Berth cannot use; return it unchanged."""
    if not isinstance(path, str) or not posixpath.isabs(path):
        raise RequestError(
            "gpu_mps_pipe_directory", f"{path!r} must be an absolute path such as {DEFAULT_MPS_PIPE_DIRECTORY}"
        )
    if posixpath.normpath(path) == NO_MPS_PIPE_DIRECTORY:
        raise RequestError("gpu_mps_pipe_directory", f"{path!r} is the directory Berth uses for 'no MPS'; pick another")
    return path


def mps_pipe_directory_warning(path: str) -> str | None:
    """What an admin should hear about ``path`` as the MPS pipe directory (None: nothing)."""
    if posixpath.normpath(path) == NVIDIA_DEFAULT_MPS_PIPE_DIRECTORY:
        return (
            f"gpu_mps_pipe_directory is NVIDIA's default {NVIDIA_DEFAULT_MPS_PIPE_DIRECTORY}: the NVIDIA runtime mounts "
            "it into every GPU container, Berth's and others'. Berth's own non-MPS kernels are kept off the daemon "
            f"(CUDA_MPS_PIPE_DIRECTORY={NO_MPS_PIPE_DIRECTORY}), other GPU containers on this host are not; start the "
            f"daemon with CUDA_MPS_PIPE_DIRECTORY={DEFAULT_MPS_PIPE_DIRECTORY} and set gpu_mps_pipe_directory to match"
        )
    return None


def plan(
    shares: Iterable[GpuShare | Mapping],
    devices: Iterable[GpuDevice],
    mechanism: Mechanism = "none",
    interception_library: str | None = None,
    interception_env: Mapping[str, str] | None = None,
    *,
    mps_pipe_directory: str = DEFAULT_MPS_PIPE_DIRECTORY,
    interception_mounts: Iterable[tuple[str, str, bool]] = (),
    image_env: Mapping[str, str] | None = None,
) -> GpuPlan:
    """Container settings for ``shares`` (from the allocator) on ``devices``.

    ``interception_env`` values may use ``{memory_mb}``, ``{memory_bytes}``,
    ``{share}``, ``{share_percent}`` and ``{device_uuid}``; e.g. for HAMi-core
    ``{"CUDA_DEVICE_MEMORY_LIMIT": "{memory_mb}m", "CUDA_DEVICE_SM_LIMIT":
    "{share_percent}"}``. ``interception_mounts`` are extra host paths the
    library needs (HAMi-core shares a lock directory between containers). ``image_env`` is the
    image's own environment when the caller knows it (``None``: unknown); it decides which of
    JAX's two fraction variables the plan sets (:func:`jax_fraction_variable`).
    """
    if mechanism not in MECHANISMS:
        raise RequestError("gpu_enforcement", f"{mechanism!r} is not a mechanism; use one of {', '.join(MECHANISMS)}")
    shares = [GpuShare.from_dict(s) for s in shares]
    by_uuid = {d.uuid: d for d in devices}
    if not shares:
        return GpuPlan(
            device_ids=[],
            env={"NVIDIA_VISIBLE_DEVICES": "void"},
            notes=["no GPU granted: NVIDIA_VISIBLE_DEVICES=void hides every GPU even under a default nvidia runtime"],
        )
    missing = [s.uuid for s in shares if s.uuid not in by_uuid]
    if missing:
        raise RequestError("gpu", f"device {missing[0]!r} is not in this host's GPU inventory (was it removed?)")
    if len(set(s.uuid for s in shares)) != len(shares):
        raise RequestError("gpu", "a grant names the same device twice")
    units = [to_units(s.share) for s in shares]
    fractions = [u for u in units if u < UNITS]
    if fractions and len(shares) > 1:
        raise RequestError("gpu", "a fraction of a GPU is granted on one device only; this grant names several")
    if any(u != UNITS for u in units) and not fractions:
        raise RequestError("gpu", "a share above 1 on one device is impossible; whole grants are 1.0 per device")

    uuids = [s.uuid for s in shares]
    total_units = sum(units)
    memory = sum(by_uuid[s.uuid].memory_bytes * u // UNITS for s, u in zip(shares, units))
    env = {
        "NVIDIA_VISIBLE_DEVICES": ",".join(uuids),
        "NVIDIA_DRIVER_CAPABILITIES": "compute,utility",
        "BERTH_GPU_SHARE": format_share(total_units),
        "BERTH_GPU_MEMORY_BYTES": str(memory),
    }
    result = GpuPlan(device_ids=uuids, env=env, memory_bytes=memory)
    if mechanism != "mps" or not fractions:  # the MPS branch below sets the daemon's directory
        env["CUDA_MPS_PIPE_DIRECTORY"] = NO_MPS_PIPE_DIRECTORY
    if not fractions:
        result.notes.append(
            f"{len(uuids)} whole device(s): no caps, the kernel owns them; "
            f"CUDA_MPS_PIPE_DIRECTORY={NO_MPS_PIPE_DIRECTORY} keeps it off any MPS daemon"
        )
        return result

    share_text = format_share(total_units)
    memory_mb = memory // MiB
    share_percent = max(1, total_units * 100 // UNITS)
    # Fractions are of the total the framework *sees*. An interception library such as HAMi-core
    # reports the budget itself as the device's total (its cuMemGetInfo_v2 and cuDeviceTotalMem_v2
    # hooks), so a fraction of the share there would cap the kernel twice (0.25 × 0.25 = 1/16):
    # under interception the frameworks get 1, the whole of what they see. TensorFlow's limit is
    # in MiB, not a fraction, and stays the budget either way.
    intercepted = mechanism == "interception"
    framework_fraction = "1" if intercepted else share_text
    env.update(
        {
            "BERTH_JAX_MEMORY_FRACTION": framework_fraction,
            "XLA_PYTHON_CLIENT_PREALLOCATE": "false",
            "TF_FORCE_GPU_ALLOW_GROWTH": "true",
            "BERTH_TF_MEMORY_LIMIT_MB": str(memory_mb),
        }
    )
    jax_variable = jax_fraction_variable(image_env)
    if jax_variable:
        env[jax_variable] = framework_fraction
    if not intercepted:
        env["BERTH_TORCH_MEMORY_FRACTION"] = share_text
    if intercepted:
        result.notes.append(
            f"framework caps under interception: JAX/XLA fraction 1 and no PyTorch fraction, because the library "
            f"reports the {memory_mb} MiB budget as the device's total; TensorFlow limited to {memory_mb} MiB"
        )
    else:
        result.notes.append(
            f"framework caps for {share_text} of {uuids[0]} ({memory_mb} MiB): JAX/XLA, TensorFlow and PyTorch "
            "(via the IPython startup file); cooperative, user code can raise them"
        )
    result.mechanism = "none"
    if mechanism == "mps":
        check_mps_pipe_directory(mps_pipe_directory)
        env["CUDA_MPS_PIPE_DIRECTORY"] = mps_pipe_directory
        env["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"] = str(share_percent)
        # Device ordinal as the client sees it: the one granted device is 0 inside
        # the container. (Limits keyed by UUID are not applied by some drivers; the
        # NVIDIA k8s device plugin switched to ordinals in 0.15 for that reason.)
        env["CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"] = f"0={memory_mb}M"
        result.mounts.append((mps_pipe_directory, mps_pipe_directory, False))
        result.ipc_mode = "host"
        result.mechanism = "mps"
        warning = mps_pipe_directory_warning(mps_pipe_directory)
        if warning:
            result.notes.append(warning)
        result.notes.append(
            f"MPS: {share_percent}% of the SMs and {memory_mb} MiB pinned device memory, enforced by the MPS server "
            "for processes that keep these variables (without them, the control daemon's defaults apply); "
            "the kernel must run as the MPS server's UID and shares the host IPC namespace"
        )
    elif mechanism == "interception":
        if not interception_library or not posixpath.isabs(interception_library):
            raise RequestError(
                "gpu_interception_library",
                f"{interception_library!r} must be the absolute host path of the CUDA interception library "
                "(such as /opt/hami/libvgpu.so) when gpu_enforcement is 'interception'",
            )
        target = posixpath.join(INTERCEPTION_DIR_IN_CONTAINER, posixpath.basename(interception_library))
        result.mounts.append((interception_library, target, True))
        result.mounts.extend(parse_interception_mounts(interception_mounts))
        env["LD_PRELOAD"] = target
        values = {
            "memory_mb": str(memory_mb),
            "memory_bytes": str(memory),
            "share": share_text,
            "share_percent": str(share_percent),
            "device_uuid": uuids[0],
        }
        for name, template in (interception_env or {}).items():
            env[name] = _fill_template(name, str(template), values)
        result.mechanism = "interception"
        result.notes.append(
            f"interception: {target} preloaded with {', '.join(sorted(interception_env or {})) or 'no limit variables'}; "
            "it enforces what the library implements (typically device-memory allocations)"
        )
    return result


def docker_device_requests(gpu_plan: GpuPlan) -> list:
    """docker-py ``DeviceRequest`` objects for the plan (``[]`` when no devices)."""
    if not gpu_plan.device_ids:
        return []
    from docker.types import DeviceRequest

    return [DeviceRequest(device_ids=list(gpu_plan.device_ids), capabilities=[["gpu"]])]


def docker_mounts(gpu_plan: GpuPlan) -> list:
    """docker-py bind ``Mount`` objects for the plan's mounts."""
    from docker.types import Mount

    return [Mount(target=dst, source=src, type="bind", read_only=ro) for src, dst, ro in gpu_plan.mounts]


def docker_run_kwargs(gpu_plan: GpuPlan) -> dict:
    """The GPU part of ``containers.create(**kwargs)``: merge ``environment`` and ``mounts`` into yours."""
    kwargs: dict = {"environment": dict(gpu_plan.env), "mounts": docker_mounts(gpu_plan)}
    requests = docker_device_requests(gpu_plan)
    if requests:
        kwargs["device_requests"] = requests
    if gpu_plan.ipc_mode:
        kwargs["ipc_mode"] = gpu_plan.ipc_mode
    return kwargs

"""GPU shares through BerthService. This host has no GPU: devices are *declared* in config and
the tests say so by name; the real NVML path is exercised for its "no GPU" answer."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from jupyter_berth.errors import CapacityError, EngineError, RequestError
from jupyter_berth.gpu.manager import STARTUP_MOUNT
from jupyter_berth.runtime.docker import DockerRuntime
from jupyter_berth.runtime.hardening import host_config_kwargs
from jupyter_berth.service import BerthService

from .berth_fixtures import service_config

pytestmark = [pytest.mark.docker]
GiB = 1024**3
DECLARED = [
    {"uuid": "GPU-declared-0000", "name": "Declared 16 GiB GPU", "memory": "16G", "index": 0},
    {"uuid": "GPU-declared-0001", "name": "Declared 16 GiB GPU", "memory": "16G", "index": 1},
]


async def new_service(tmp_path, **gpu_settings):
    config = service_config(str(tmp_path / "data"), max_gpu=1, total_gpu=2)
    for k, v in gpu_settings.items():
        setattr(config.GpuManager, k, v)
    service = BerthService(config=config, runtime=DockerRuntime())
    await service.start()
    return service


async def reserve_quarter(service, subject: str):
    """A 0.25 GPU share for ana, reserved through admission as a kernel start does."""
    from jupyter_berth.resources import Resources

    policy = await service.policy_for("ana")
    return await asyncio.to_thread(
        service.admission.reserve,
        owner="ana",
        groups=[],
        policy=policy,
        request=Resources.parse({"gpu": 0.25}),
        kind="kernel",
        subject=subject,
        image="berth/python:3.11",
        node=service.node_name,
        gpu_assigner=service.gpus.gpu_assigner(),
    )


async def test_declared_gpu_quarter_share_container_plan(tmp_path):
    service = await new_service(tmp_path, devices=DECLARED)
    try:
        alloc = await reserve_quarter(service, "k1")
        assert [dict(d)["uuid"] for d in alloc.gpu_devices] == ["GPU-declared-0000"]
        device_ids, env, mounts, plan = service.gpus.gpu_container(alloc.gpu_devices)
        assert device_ids == ["GPU-declared-0000"]
        assert env["NVIDIA_VISIBLE_DEVICES"] == "GPU-declared-0000"
        assert int(env["BERTH_GPU_MEMORY_BYTES"]) == 4 * GiB  # 0.25 × 16 GiB
        assert env["BERTH_JAX_MEMORY_FRACTION"] == "0.25" and "XLA_CLIENT_MEM_FRACTION" not in env
        assert any(m.target == STARTUP_MOUNT and m.read_only for m in mounts)  # framework caps in the kernel
        from jupyter_berth.kernel_launch import KernelConnection, kernel_spec

        spec = kernel_spec(
            owner="ana",
            kernel_id="k1",
            allocation_id=alloc.id,
            image="berth/python:3.11",
            resources=alloc.resources,
            connection=KernelConnection(key="k"),
            network="n",
        )
        spec.gpu_device_ids = device_ids
        (request,) = host_config_kwargs(spec)["device_requests"]
        assert request["DeviceIDs"] == ["GPU-declared-0000"] and request["Capabilities"] == [["gpu"]]
        summary = await service.gpus.gpu_summary()
        assert summary["source"] == "declared" and summary["free"] == {
            "GPU-declared-0000": 0.75,
            "GPU-declared-0001": 1.0,
        }
        assert all(d["declared"] for d in summary["devices"])
        assert summary["shareable"] == [
            "GPU-declared-0000",
            "GPU-declared-0001",
        ]  # what the sidebar bounds fractions by
        service.gpus.gpu_shareable = ["GPU-declared-0001"]
        assert (await service.gpus.gpu_summary())["shareable"] == ["GPU-declared-0001"]
    finally:
        await service.stop()


async def test_declared_gpu_start_without_a_driver_fails_and_reserves_nothing(tmp_path):
    service = await new_service(tmp_path, devices=DECLARED)
    try:
        with pytest.raises(EngineError):
            await service.start_kernel(
                "ana", kernel_id=f"g-{uuid.uuid4().hex[:6]}", request={"gpu": 0.5, "mem": "128M"}
            )
        assert await service.list_kernels() == []
    finally:
        await service.stop()


async def test_gpu_request_on_a_host_without_gpu_is_refused(tmp_path):
    service = await new_service(tmp_path)  # real NVML: no driver here
    try:
        assert (
            service.gpus.gpu_inventory.devices == []
            and "no NVIDIA GPU on this host" in service.gpus.gpu_inventory.message
        )
        with pytest.raises(CapacityError) as e:
            await service.start_kernel(
                "ana", kernel_id=f"g-{uuid.uuid4().hex[:6]}", request={"gpu": 0.5, "mem": "128M"}
            )
        assert "no GPU" in e.value.message and e.value.never_fits
        assert await service.list_kernels() == []
        # A kernel without a GPU share sees no GPU even on a host whose default runtime is nvidia.
        launch = await service.start_kernel("ana", kernel_id=f"n-{uuid.uuid4().hex[:6]}", request={"mem": "128M"})
        env = (await service.runtime.docker("inspect_container", launch.container_id))["Config"]["Env"]
        assert "NVIDIA_VISIBLE_DEVICES=void" in env
        await service.stop_kernel("ana", launch.kernel_id, now=True)
        assert (await service.gpus.gpu_summary())["devices"] == []
    finally:
        await service.stop()


async def test_declared_gpu_with_mps_gets_host_ipc_only_for_gpu_kernels(tmp_path):
    """MPS clients talk to the MPS server through host IPC: the plan asks, the container gets it; others stay private."""
    service = await new_service(tmp_path, devices=DECLARED, gpu_enforcement="mps")
    try:
        from jupyter_berth.kernel_launch import KernelConnection, kernel_spec

        alloc = await reserve_quarter(service, "k-mps")
        device_ids, env, mounts, plan = service.gpus.gpu_container(alloc.gpu_devices)
        assert plan.ipc_mode == "host" and env["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"] == "25"
        spec = kernel_spec(
            owner="ana",
            kernel_id="k-mps",
            allocation_id=alloc.id,
            image="berth/python:3.11",
            resources=alloc.resources,
            connection=KernelConnection(key="k"),
            network="n",
        )
        assert host_config_kwargs(spec)["ipc_mode"] == "private"  # no GPU: a private IPC namespace
        spec.gpu_device_ids, spec.ipc_mode = device_ids, plan.ipc_mode
        assert host_config_kwargs(spec)["ipc_mode"] == "host"
    finally:
        await service.stop()


async def test_declared_gpu_interception_mounts_trait_reaches_the_kernel_container(tmp_path):
    """gpu_interception_mounts is a real setting: HAMi-core's lock directory is shared read-write."""
    service = await new_service(
        tmp_path,
        devices=DECLARED,
        gpu_enforcement="interception",
        gpu_interception_library="/opt/hami/libvgpu.so",
        gpu_interception_env={"CUDA_DEVICE_MEMORY_LIMIT": "{memory_mb}m"},
        gpu_interception_mounts=["/tmp/vgpulock:/tmp/vgpulock", ("/var/lib/hami", "/hami", True)],
    )
    try:
        assert service.gpus.gpu_interception_mounts == [
            ("/tmp/vgpulock", "/tmp/vgpulock", False),
            ("/var/lib/hami", "/hami", True),
        ]
        alloc = await reserve_quarter(service, "k-int")
        _, env, mounts, plan = service.gpus.gpu_container(alloc.gpu_devices)
        assert plan.mechanism == "interception" and env["LD_PRELOAD"] == "/opt/berth/gpu/libvgpu.so"
        by_target = {m.target: m for m in mounts}
        assert by_target["/tmp/vgpulock"].source == "/tmp/vgpulock" and not by_target["/tmp/vgpulock"].read_only
        assert by_target["/hami"].source == "/var/lib/hami" and by_target["/hami"].read_only
        assert by_target["/opt/berth/gpu/libvgpu.so"].read_only
        with pytest.raises(RequestError) as e:
            service.gpus.gpu_interception_mounts = ["vgpulock:/tmp/vgpulock"]
        assert e.value.field == "gpu_interception_mounts[0]" and "absolute" in e.value.message
    finally:
        await service.stop()


async def test_declared_gpu_caps_file_follows_the_configured_ipython_startup_dir(tmp_path):
    """The startup file's mount no longer assumes /home/jovyan for every image."""
    service = await new_service(tmp_path, devices=DECLARED)
    try:
        alloc = await reserve_quarter(service, "k-home")
        _, _, mounts, _ = service.gpus.gpu_container(alloc.gpu_devices)
        assert STARTUP_MOUNT == "/home/jovyan/.ipython/profile_default/startup/00-berth-gpu-caps.py"
        assert [m.target for m in mounts if m.target.endswith("00-berth-gpu-caps.py")] == [STARTUP_MOUNT]
        service.gpus.gpu_caps_startup_dir = "/opt/ipython/profile_default/startup/"
        _, _, mounts, _ = service.gpus.gpu_container(alloc.gpu_devices)
        caps = [m for m in mounts if m.target.endswith("00-berth-gpu-caps.py")]
        assert [(m.target, m.read_only) for m in caps] == [
            ("/opt/ipython/profile_default/startup/00-berth-gpu-caps.py", True)
        ]
        with pytest.raises(RequestError) as e:
            service.gpus.gpu_caps_startup_dir = "ipython/startup"
        assert e.value.field == "gpu_caps_startup_dir"
        _, _, none_mounts, _ = service.gpus.gpu_container([])
        assert none_mounts == []  # no grant, no caps file
    finally:
        await service.stop()

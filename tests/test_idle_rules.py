"""Idle by utilization (``idle_cpu``, ``idle_gpu``): real kernel containers, real samples.

This host has no GPU: the GPU test's devices are *declared* in config with a fixed
utilization reading, and its container runs without a GPU under a GPU allocation.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from jupyter_berth.errors import NotFoundError, RequestError
from jupyter_berth.idle_enforcement import enforce
from jupyter_berth.idle_rules import IdleRule
from jupyter_berth.policies import PolicySpec, resolve
from jupyter_berth.resources import Resources
from jupyter_berth.runtime.base import ContainerSpec
from jupyter_berth.runtime.docker import DockerRuntime
from jupyter_berth.runtime.labels import make_labels
from jupyter_berth.service import BerthService

from .berth_fixtures import service_config
from .image_fixtures import run_code

IMAGE = "berth/python:3.11"


def test_idle_rules_parse_and_merge():
    spec = PolicySpec.parse({"idle_cpu": {"below": 5, "for": "30m"}, "idle_gpu": {"below": 1, "for": 7200}}, "group a")
    assert spec.idle_cpu == IdleRule(5.0, 1800.0) and spec.idle_gpu == IdleRule(1.0, 7200.0)
    assert spec.to_json()["idle_cpu"] == {"below": 5.0, "for": 1800.0}
    with pytest.raises(RequestError, match=r"idle_cpu.below: 150 is not a percentage"):
        PolicySpec.parse({"idle_cpu": {"below": 150, "for": "1h"}}, "group a")
    with pytest.raises(RequestError, match=r"idle_cpu.for: 'soon' is not a duration"):
        PolicySpec.parse({"idle_cpu": {"below": 5, "for": "soon"}}, "group a")
    with pytest.raises(RequestError, match=r"idle_gpu: expected \{'below'"):
        PolicySpec.parse({"idle_gpu": {"below": 5}}, "group a")
    specs = {
        "a": PolicySpec.parse({"idle_cpu": {"below": 5, "for": "30m"}}, "group a"),
        "b": PolicySpec.parse({"idle_cpu": {"below": 10, "for": "1h"}}, "group b"),
    }
    assert resolve("ada", ("a", "b"), None, specs).idle_cpu == IdleRule(5.0, 3600.0)  # the more generous of each


async def _service(tmp_path, **traits):
    config = service_config(str(tmp_path / "data"))
    for k, v in traits.items():
        setattr(config.BerthService, k, v)
    service = BerthService(config=config, runtime=DockerRuntime())
    await service.start()
    return service


@pytest.mark.docker
async def test_a_kernel_with_no_cpu_use_is_culled_by_the_idle_cpu_rule(tmp_path):
    service = await _service(tmp_path, default_policy={"idle_cpu": {"below": 5, "for": "3s"}})
    try:
        idle = f"idle-{uuid.uuid4().hex[:6]}"
        idle_launch = await service.start_kernel("erin", kernel_id=idle, request={"cpu": 0.5, "mem": "256M"})
        busy = await service.start_kernel(
            "erin", kernel_id=f"busy-{uuid.uuid4().hex[:6]}", request={"cpu": 0.5, "mem": "256M"}
        )
        await run_code(idle_launch, "pass")  # started up (a loaded host can take longer than any fixed sleep)

        def spin(api):  # the busy kernel's container computes for the whole test
            exec_id = api.exec_create(busy.container_id, ["python3", "-c", "while True: pass"], user="1000")
            api.exec_start(exec_id, detach=True)

        await service.runtime.docker(spin)
        await service.usage.sample_all()
        assert await enforce(service) == []  # younger than the rule's period in samples: left alone
        await asyncio.sleep(3.5)
        await service.usage.sample_all()
        culled = await service.fair.apply_usage_rules()
        assert culled == [("culled", idle, "idle_cpu")]
        assert [a.subject for a in await service.list_kernels("erin")] == [busy.kernel_id]
        (record,) = await asyncio.to_thread(service.ledger.usage_records, None, None)
        assert record.subject == idle and record.end_reason == "culled"
        assert record.message.startswith("idle_cpu: the kernel used 0.")
        assert "% of its 0.5 CPU over the last 3 s (the idle_cpu rule: below 5 % for 3 s, set by default)" in (
            record.message
        )
        with pytest.raises(NotFoundError, match="is no longer running: idle_cpu: the kernel used"):
            await service.kernel_state("erin", idle)
    finally:
        for a in await service.list_kernels():
            await service.stop_kernel(a.owner, a.subject, now=True)
        await service.stop()


DECLARED = [
    {"uuid": "GPU-declared-idle", "name": "Declared idle GPU", "memory": "16G", "index": 0, "utilization": 0},
    {"uuid": "GPU-declared-busy", "name": "Declared busy GPU", "memory": "16G", "index": 1, "utilization": 87},
]


@pytest.mark.docker
async def test_declared_gpu_kernel_with_zero_utilization_is_culled_by_the_idle_gpu_rule(tmp_path):
    policy = {"max_gpu": 1, "total_gpu": 2, "idle_gpu": {"below": 5, "for": "10m"}}
    service = await _service(tmp_path, gpus=DECLARED, default_policy=policy)
    started = []
    try:
        pol = await service.policy_for("finn")
        for name in ("gpu-idle", "gpu-busy"):  # 1.0 share each: one per device, in device order
            alloc = await asyncio.to_thread(
                service.admission.reserve, "finn", [], pol, Resources.parse({"gpu": 1, "mem": "128M"}), "kernel",
                name, IMAGE, node=service.node_name, gpu_assigner=service.gpus.gpu_assigner(),
            )  # fmt: skip
            # No NVIDIA runtime here: the container runs without the device, under the GPU allocation.
            info = await service.runtime.run(
                ContainerSpec(
                    name=f"berth-kernel-{name}-{uuid.uuid4().hex[:6]}", image=IMAGE, command=["sleep", "600"],
                    resources=Resources(cpu=0.1, mem=64 * 1024**2),
                    labels=make_labels(owner="finn", kind="kernel", subject=name, allocation=alloc.id, site=service.site_id),
                )
            )  # fmt: skip
            started.append(info.id)
            await asyncio.to_thread(service.ledger.mark_running, alloc.id, info.id)
        devices = {a.subject: a.gpu_devices[0]["uuid"] for a in await service.list_kernels("finn")}
        assert devices == {"gpu-idle": "GPU-declared-idle", "gpu-busy": "GPU-declared-busy"}
        now = datetime.now(timezone.utc)
        assert await enforce(service, now=now) == []  # below since now: not for 10 minutes yet
        assert await enforce(service, now=now + timedelta(minutes=5)) == []
        assert await enforce(service, now=now + timedelta(minutes=10)) == [("culled", "gpu-idle", "idle_gpu")]
        assert [a.subject for a in await service.list_kernels("finn")] == ["gpu-busy"]
        (record,) = await asyncio.to_thread(service.ledger.usage_records, None, None)
        assert record.end_reason == "culled" and record.message.startswith(
            "idle_gpu: the kernel's GPU was 0 % busy or less for 10 min (the idle_gpu rule: below 5 % for 10 min"
        )
    finally:
        for a in await service.list_kernels():
            await service.stop_kernel(a.owner, a.subject, now=True)
        for cid in started:
            await service.runtime.remove(cid)
        await service.stop()

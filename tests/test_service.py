"""BerthService against the real engine: reconciliation on start, usage sampling, ownership."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from jupyter_berth.errors import NotFoundError
from jupyter_berth.resources import Resources
from jupyter_berth.runtime.base import ContainerSpec
from jupyter_berth.runtime.docker import DockerRuntime
from jupyter_berth.runtime.labels import make_labels
from jupyter_berth.service import BerthService

from .berth_fixtures import service_config

pytestmark = [pytest.mark.docker]


async def new_service(data_dir, **traits):
    config = service_config(str(data_dir))
    for k, v in traits.items():  # "Class.name" for another section, else BerthService's
        section, _, name = k.rpartition(".")
        setattr(config[section or "BerthService"], name, v)
    service = BerthService(config=config, runtime=DockerRuntime())
    await service.start()
    return service


async def test_restart_adopts_running_releases_vanished_and_stops_strays(tmp_path, workdir):
    data = tmp_path / "data"
    first = await new_service(data)
    keep = await first.start_kernel(
        "alice", kernel_id=f"keep-{uuid.uuid4().hex[:6]}", request={"cpu": 0.25, "mem": "128M"}
    )
    gone = await first.start_kernel(
        "alice", kernel_id=f"gone-{uuid.uuid4().hex[:6]}", request={"cpu": 0.25, "mem": "128M"}
    )
    # A labelled container of this site with no allocation: left over from a crash mid-start.
    stray = await first.runtime.run(
        ContainerSpec(
            name=f"berth-kernel-stray-{uuid.uuid4().hex[:6]}",
            image="berth/python:3.11",
            command=["sleep", "600"],
            resources=Resources(cpu=0.1, mem=64 * 1024**2),
            labels=make_labels(
                owner="alice", kind="kernel", subject="stray", allocation="no-such-allocation", site=first.site_id
            ),
        )
    )
    # Another installation's container on the same engine must not be touched.
    foreign = await first.runtime.run(
        ContainerSpec(
            name=f"berth-kernel-foreign-{uuid.uuid4().hex[:6]}",
            image="berth/python:3.11",
            command=["sleep", "600"],
            resources=Resources(cpu=0.1, mem=64 * 1024**2),
            labels=make_labels(owner="bob", kind="kernel", subject="foreign", allocation="x", site="another-site"),
        )
    )
    await first.stop()  # the service goes away; its kernels keep running
    rt = DockerRuntime()
    await rt.remove(gone.container_id)  # one vanishes while nobody watches

    second = await new_service(data)
    try:
        live = {a.subject: a for a in await second.list_kernels()}
        assert set(live) == {keep.kernel_id}  # adopted
        assert (await second.kernel_state("alice", keep.kernel_id)).running
        released = await asyncio.to_thread(second.ledger.get_allocation, gone.allocation_id)
        assert released.state == "released" and released.release_reason == "lost"
        assert await second.runtime.inspect(stray.id) is None  # stray stopped and removed
        assert (await second.runtime.inspect(foreign.id)).running  # not ours: untouched
        # what the user can do with the adopted kernel still works
        reason, _ = await second.stop_kernel("alice", keep.kernel_id)
        assert reason == "shutdown"
    finally:
        await rt.remove(foreign.id)
        await rt.remove(stray.id)
        for a in await second.list_kernels():
            await second.stop_kernel(a.owner, a.subject, now=True)
        await second.stop()
        rt.close()


async def test_usage_is_sampled_while_running_so_a_crash_leaves_a_record(tmp_path):
    service = await new_service(tmp_path / "data", **{"UsageTracker.sample_interval": 0.5})
    try:
        launch = await service.start_kernel(
            "carol", kernel_id=f"busy-{uuid.uuid4().hex[:6]}", request={"cpu": 0.5, "mem": "256M"}
        )

        # Burn 1.5 s of CPU time (not wall time: a loaded host stretches it) inside the kernel's
        # container without a client; exec_start returns when the loop is done.
        def burn(api):
            exec_id = api.exec_create(
                launch.container_id,
                ["python3", "-c", "import time\nwhile time.process_time() < 1.5: pass"],
                user="1000",
            )
            api.exec_start(exec_id)

        await service.runtime.docker(burn)
        for _ in range(60):  # the next sampling rounds record it (bounded: 30 s)
            alloc = await asyncio.to_thread(service.ledger.get_allocation, launch.allocation_id)
            if alloc.cpu_seconds is not None and alloc.cpu_seconds > 1.0:
                break
            await asyncio.sleep(0.5)
        assert alloc.cpu_seconds is not None and alloc.cpu_seconds > 1.0
        assert alloc.mem_peak_bytes and alloc.mem_peak_bytes > 10 * 1024**2
        samples = await asyncio.to_thread(service.ledger.samples, launch.allocation_id)
        assert len(samples) >= 2
        # The service "crashes": its container is killed while nobody watches; the next start releases
        # the allocation and the usage record keeps the last sampled totals.
        await service.stop()
        rt = DockerRuntime()
        await rt.remove(launch.container_id)
        rt.close()
        service = await new_service(tmp_path / "data")
        (record,) = await asyncio.to_thread(service.ledger.usage_records, None, None)
        assert record.end_reason == "lost"
        assert record.cpu_seconds >= alloc.cpu_seconds
        assert record.image_digest
    finally:
        await service.stop()


async def test_users_cannot_reach_each_others_kernels(tmp_path):
    service = await new_service(tmp_path / "data")
    try:
        launch = await service.start_kernel(
            "alice", kernel_id=f"mine-{uuid.uuid4().hex[:6]}", request={"cpu": 0.25, "mem": "128M"}
        )
        for call in (
            service.kernel_state("bob", launch.kernel_id),
            service.signal_kernel("bob", launch.kernel_id, 2),
            service.stop_kernel("bob", launch.kernel_id),
        ):
            with pytest.raises(NotFoundError, match="no running kernel"):
                await call
        assert (await service.kernel_state("alice", launch.kernel_id)).running
        await service.stop_kernel("alice", launch.kernel_id, now=True)
    finally:
        await service.stop()

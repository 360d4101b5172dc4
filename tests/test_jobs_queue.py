"""Jobs sent with their notebook (as the REST API and hub mode send them) and jobs in the kernel start queue
(policy ``on_full: queue``): queued, in their place after a service restart, started in their turn, cancelled.
Real Docker engine, real kernels."""

from __future__ import annotations

import asyncio

import pytest

from jupyter_berth import start_queue
from jupyter_berth.errors import NotFoundError, RequestError
from jupyter_berth.runtime.docker import DockerRuntime
from jupyter_berth.service import BerthService

from .berth_fixtures import close_test_service, service_config

pytestmark = [pytest.mark.docker, pytest.mark.timeout(300)]


def notebook(*sources: str) -> dict:
    cells = [
        {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": s} for s in sources
    ]
    meta = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    return {"nbformat": 4, "nbformat_minor": 5, "metadata": meta, "cells": cells}


async def _service(data_dir) -> BerthService:
    service = BerthService(
        config=service_config(str(data_dir), on_full="queue", queue_timeout=120), runtime=DockerRuntime()
    )
    await service.start()
    return service


async def _until(check, timeout=30.0):
    for _ in range(int(timeout / 0.25)):
        value = await check()
        if value:
            return value
        await asyncio.sleep(0.25)
    raise AssertionError("timed out")


def test_a_sent_notebook_must_be_a_notebook():
    from jupyter_berth.jobs.notebook import check_notebook, notebook_name

    with pytest.raises(RequestError, match="nbformat 4 notebook as JSON"):
        check_notebook({"cells": "no"})
    with pytest.raises(RequestError, match="every cell"):
        check_notebook({"nbformat": 4, "cells": [1]})
    assert notebook_name("../../etc/train.ipynb") == "train.ipynb" and notebook_name("") == "notebook.ipynb"


async def test_a_job_waits_queued_keeps_its_place_across_a_restart_and_runs_in_its_turn(tmp_path):
    data = tmp_path / "data"
    service = await _service(data)
    host_cpu = (await asyncio.to_thread(service.ledger.get_node, service.node_name)).cpu
    big = {"cpu": min(host_cpu * 0.75, 2), "mem": "256M"}  # two of these never fit at once
    again = None
    try:
        kernel = await service.start_kernel("gus", kernel_id="fills-the-host", request=big)
        job = await service.jobs.submit(
            "hal", notebook="sub/train.ipynb", content=notebook("print('RAN', x)"), parameters={"x": 7}, request=big
        )
        assert (job.status, job.allocation_id, job.name) == ("queued", None, "train.ipynb")
        assert job.job_dir.startswith(str(data / "jobs" / "hal"))  # the service keeps a sent notebook's files
        with pytest.raises(RequestError, match="keeps its files with the Berth service"):
            await service.jobs.submit("hal", notebook="a.ipynb", content=notebook("1"), output_dir=str(tmp_path))
        line = await _until(lambda: asyncio.to_thread(start_queue.waiting, service.ledger))
        assert [(w["owner"], w["subject"]) for w in line] == [("hal", job.id)]
        assert await service.jobs.waiting_ahead("hal") == {job.id: 0}
        (mine,) = (await service.fair.my_queue("hal"))["waiting"]  # the sidebar's queue shows it too
        assert (mine["kernel_id"], mine["ahead"]) == (job.id, 0)
        with pytest.raises(NotFoundError, match="no output notebook yet"):
            await service.jobs.read_output("hal", job.id)

        # the service restarts while the job waits: the new one resumes its wait in the same place
        await service.jobs.stop()
        assert [w["subject"] for w in await asyncio.to_thread(start_queue.waiting, service.ledger)] == [job.id]
        again = BerthService(
            config=service_config(str(data), on_full="queue", queue_timeout=120), runtime=DockerRuntime()
        )
        await again.start()
        assert (await again.jobs.get("hal", job.id)).status == "queued"
        await service.stop_kernel("gus", kernel.kernel_id)  # room frees
        done = await again.jobs.wait("hal", job.id, timeout=120)
        assert (done.status, done.reason) == ("completed", "completed"), done.message
        assert done.started_at is not None and done.started_at >= done.created_at
        out = await again.jobs.read_output("hal", job.id)
        assert "RAN 7" in "".join(o.get("text", "") for c in out["cells"] for o in c.get("outputs", []))
        assert await asyncio.to_thread(start_queue.waiting, again.ledger) == []
        records = [r for r in await again._db(again.ledger.usage_records, owner="hal") if r.subject == job.id]
        assert [(r.kind, r.end_reason) for r in records] == [("job", "completed")]
    finally:
        await close_test_service(service)
        if again is not None:
            await close_test_service(again)


async def test_a_queued_job_is_cancelled_by_its_owner_only(tmp_path):
    service = await _service(tmp_path / "data")
    host_cpu = (await asyncio.to_thread(service.ledger.get_node, service.node_name)).cpu
    big = {"cpu": min(host_cpu * 0.75, 2), "mem": "256M"}
    try:
        await service.start_kernel("gus", kernel_id="fills-the-host", request=big)
        job = await service.jobs.submit("hal", notebook="w.ipynb", content=notebook("print(1)"), request=big)
        await _until(lambda: asyncio.to_thread(start_queue.waiting, service.ledger))
        # a small job that would fit does not jump the line: it queues behind the waiting one
        small = await service.jobs.submit(
            "ivy", notebook="s.ipynb", content=notebook("1"), request={"cpu": 0.1, "mem": "128M"}
        )
        assert small.status == "queued"
        assert await _until(lambda: service.jobs.waiting_ahead("ivy")) == {small.id: 1}
        await service.jobs.cancel("ivy", small.id)
        with pytest.raises(NotFoundError, match="no job"):
            await service.jobs.cancel("gus", job.id)
        assert (await service.jobs.get("hal", job.id)).status == "queued"
        done = await service.jobs.cancel("hal", job.id)
        assert (done.status, done.reason) == ("cancelled", "cancelled")
        assert "cancelled while it waited" in done.message
        assert await asyncio.to_thread(start_queue.waiting, service.ledger) == []
        assert await service._db(service.ledger.live_allocations, owner="hal") == []
    finally:
        await close_test_service(service)


async def test_berth_run_follows_a_queued_job_until_it_has_run(tmp_path):
    import io

    from jupyter_berth.cli.run_cmd import follow

    service = await _service(tmp_path / "data")
    host_cpu = (await asyncio.to_thread(service.ledger.get_node, service.node_name)).cpu
    big = {"cpu": min(host_cpu * 0.75, 2), "mem": "256M"}
    try:
        kernel = await service.start_kernel("gus", kernel_id="fills-the-host", request=big)
        job = await service.jobs.submit("hal", notebook="f.ipynb", content=notebook("print('FOLLOWED')"), request=big)
        assert job.status == "queued"
        out = io.StringIO()
        following = asyncio.ensure_future(follow(service, "hal", job.id, interval=0.2, out=out))
        await asyncio.sleep(1.5)
        assert not following.done()  # a queued job has not ended: berth run keeps waiting
        await service.stop_kernel("gus", kernel.kernel_id)
        done = await asyncio.wait_for(following, 120)
        assert done.status == "completed" and "FOLLOWED" in out.getvalue()
    finally:
        await close_test_service(service)

"""The kernel start queue (policy ``on_full: queue``): FIFO, atomic with admission, kept across restarts.

Ledger tests on SQLite and PostgreSQL; the service tests start real kernel containers.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import update

from jupyter_berth import start_queue
from jupyter_berth.admission import Admission
from jupyter_berth.errors import CapacityError, RequestError
from jupyter_berth.ledger.models_queue import StartQueueRow
from jupyter_berth.policies import PolicySpec, resolve
from jupyter_berth.resources import Resources

GiB = 1024**3
IMAGE = "berth/python:3.11"


def test_on_full_and_queue_timeout_parse_and_merge():
    spec = PolicySpec.parse({"on_full": "queue", "queue_timeout": 120}, "group a")
    assert (spec.on_full, spec.queue_timeout) == ("queue", 120)
    with pytest.raises(RequestError, match=r"on_full: 'wait' is not a choice"):
        PolicySpec.parse({"on_full": "wait"}, "group a")
    specs = {"a": PolicySpec.parse({"on_full": "refuse"}, "a"), "b": PolicySpec.parse({"on_full": "queue"}, "b")}
    assert resolve("ada", ("a", "b"), None, specs).on_full == "queue"
    assert resolve("ada", (), None, specs).on_full is None  # refuse


def test_the_gate_lets_only_the_oldest_live_waiter_through(ledger):
    ledger.set_node_capacity("n1", 4, 16 * GiB)
    admission = Admission(ledger)
    pol = resolve("ada", (), PolicySpec.parse({"on_full": "queue"}, "default_policy"))
    first = start_queue._join(ledger, "ada", "k1", Resources(cpu=1, mem=GiB), 60)
    second = start_queue._join(ledger, "bob", "k2", Resources(cpu=1, mem=GiB), 60)
    assert start_queue._join(ledger, "ada", "k1", Resources(cpu=1, mem=GiB), 60) == first  # found again: same place
    # neither the second in line nor a newcomer jumps it
    for queue_id, who, ahead in ((second, "bob", "1 start is"), (None, "cy", "2 starts are")):
        with pytest.raises(CapacityError, match=f"{ahead} waiting for room ahead of you") as e:
            admission.reserve(who, [], pol, Resources(cpu=1, mem=GiB), "kernel", "x", IMAGE, queue_id=queue_id)
        assert e.value.resource == "queue" and not e.value.never_fits
    admission.reserve("ada", [], pol, Resources(cpu=1, mem=GiB), "kernel", "k1", IMAGE, queue_id=first)
    assert [w["id"] for w in start_queue.waiting(ledger)] == [second]  # admitted in the same transaction
    # a failed turn (no room) rolls back: the waiter keeps its place
    with pytest.raises(CapacityError, match="cpu: no host has 3.5 CPU free"):
        admission.reserve("bob", [], pol, Resources(cpu=3.5, mem=GiB), "kernel", "k2", IMAGE, queue_id=second)
    assert [w["id"] for w in start_queue.waiting(ledger)] == [second]
    # a waiter gone quiet (its service restarted) does not hold up the line, and keeps its place
    with ledger.transaction() as s:
        s.execute(update(StartQueueRow).where(StartQueueRow.id == second).values(seen_at=datetime.now(timezone.utc) - timedelta(minutes=5)))  # fmt: skip
    admission.reserve("cy", [], pol, Resources(cpu=1, mem=GiB), "kernel", "k3", IMAGE)
    assert start_queue._join(ledger, "bob", "k2", Resources(cpu=1, mem=GiB), 60) == second
    # past its deadline a waiter is expired by the next reservation
    with ledger.transaction() as s:
        s.execute(update(StartQueueRow).where(StartQueueRow.id == second).values(deadline=datetime.now(timezone.utc) - timedelta(seconds=1)))  # fmt: skip
    admission.reserve("cy", [], pol, Resources(cpu=1, mem=GiB), "kernel", "k4", IMAGE)
    assert start_queue.waiting(ledger) == []


async def _service(tmp_path, **policy):
    from jupyter_berth.runtime.docker import DockerRuntime
    from jupyter_berth.service import BerthService

    from .berth_fixtures import service_config

    config = service_config(str(tmp_path / "data"), **policy)
    service = BerthService(config=config, runtime=DockerRuntime())
    await service.start()
    return service


@pytest.mark.docker
async def test_a_queued_start_proceeds_when_room_frees_and_is_refused_at_its_timeout(tmp_path):
    service = await _service(tmp_path, on_full="queue", queue_timeout=60)
    host_cpu = (await asyncio.to_thread(service.ledger.get_node, service.node_name)).cpu
    big = {"cpu": min(host_cpu * 0.75, 2), "mem": "256M"}  # two of these never fit at once
    try:
        first = await service.start_kernel("gus", kernel_id=f"q1-{uuid.uuid4().hex[:6]}", request=big)
        second_id = f"q2-{uuid.uuid4().hex[:6]}"
        waiter = asyncio.create_task(service.start_kernel("hal", kernel_id=second_id, request=big))
        for _ in range(40):
            await asyncio.sleep(0.25)
            line = await asyncio.to_thread(start_queue.waiting, service.ledger)
            if line:
                break
        assert [(w["owner"], w["subject"]) for w in line] == [("hal", second_id)] and not waiter.done()
        (mine,) = (await service.fair.my_queue("hal"))["waiting"]
        assert (
            mine["kernel_id"] == second_id
            and mine["ahead"] == 0
            and (await service.fair.my_queue("gus")) == {"waiting": []}
        )
        # a third user's small start does not jump the line
        with pytest.raises(CapacityError, match="waiting for room ahead of you"):
            await service._db(
                service.admission.reserve, "ivy", [], await service.policy_for("ivy"), Resources(cpu=0.1, mem=GiB // 8),
                "kernel", "small", IMAGE, node=service.node_name,
            )  # fmt: skip
        await service.stop_kernel("gus", first.kernel_id)
        second = await asyncio.wait_for(waiter, 30)
        assert second.kernel_id == second_id and await asyncio.to_thread(start_queue.waiting, service.ledger) == []
        # a waiting start can be cancelled; it then fails, saying so
        third = asyncio.create_task(service.start_kernel("hal", kernel_id="q-cancel", request=big))
        for _ in range(40):
            await asyncio.sleep(0.25)
            if (await service.fair.my_queue("hal"))["waiting"]:
                break
        await service.fair.cancel_queued_start("hal", "q-cancel")
        with pytest.raises(CapacityError, match="the start of kernel q-cancel was cancelled while it waited"):
            await asyncio.wait_for(third, 30)
        # with a short timeout the start is refused and says why
        await asyncio.to_thread(  # an admin shortens the timeout at run time (a stored default policy)
            service.ledger.set_policy, "default", None, {**service.default_policy, "queue_timeout": 2}
        )
        t0 = asyncio.get_running_loop().time()
        with pytest.raises(CapacityError) as e:
            await service.start_kernel("gus", kernel_id=f"q3-{uuid.uuid4().hex[:6]}", request=big)
        assert asyncio.get_running_loop().time() - t0 >= 2
        assert e.value.message.startswith(
            "waited 2 s in the start queue (queue_timeout 2 s) and there was still no room"
        )
        assert "cpu: no host has" in e.value.message
    finally:
        for a in await service.list_kernels():
            await service.stop_kernel(a.owner, a.subject, now=True)
        await service.stop()

"""Admission on SQLite and PostgreSQL: policy limits, totals, capacity, and no oversubscription under concurrency."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select

from jupyter_berth.admission import Admission, share_assigner
from jupyter_berth.errors import CapacityError, ConflictError, NotFoundError, PolicyError
from jupyter_berth.gpu.allocator import make_gpu_assigner
from jupyter_berth.gpu.inventory import GpuDevice
from jupyter_berth.ledger import gpu_shares_in_use
from jupyter_berth.ledger.models import AllocationRow
from jupyter_berth.policies import PolicySpec, resolve
from jupyter_berth.resources import Resources

GiB = 1024**3
IMAGE = "berth/python:3.11"


def policy(user="ada", groups=(), **spec):
    return resolve(user, groups, PolicySpec.parse(spec))


def req(cpu=1.0, mem=GiB, gpu=0.0):
    return Resources(cpu=cpu, mem=mem, gpu=gpu)


@pytest.fixture
def admission(ledger):
    return Admission(ledger)


def test_over_the_per_kernel_policy_is_refused_and_nothing_is_reserved(ledger, admission):
    ledger.set_node_capacity("n1", 16, 64 * GiB)
    with pytest.raises(PolicyError) as info:
        admission.reserve("ada", [], policy(max_cpu=2), req(cpu=3), "kernel", "k1", IMAGE)
    assert info.value.limit == "max_cpu"
    assert "you asked for 3 CPU per kernel but your policy allows at most 2 CPU" in info.value.message
    with pytest.raises(PolicyError, match="does not allow the image"):
        admission.reserve("ada", [], policy(allowed_images=["berth/r:*"]), req(), "kernel", "k1", IMAGE)
    assert ledger.live_allocations() == []


def test_totals_count_kernels_and_servers(ledger, admission):
    ledger.set_node_capacity("n1", 16, 64 * GiB)
    p = policy(total_cpu=4, total_mem="6G")
    admission.reserve("ada", ["physics"], p, req(cpu=2), "kernel", "k1", IMAGE)
    admission.reserve("ada", ["physics"], p, req(cpu=1), "server", "ada/", IMAGE)
    admission.reserve("bob", [], p, req(cpu=4), "kernel", "k9", IMAGE)  # other users do not count
    with pytest.raises(PolicyError) as info:
        admission.reserve("ada", ["physics"], p, req(cpu=2), "kernel", "k2", IMAGE)
    assert info.value.limit == "total_cpu" and info.value.status == 403
    assert info.value.message == (
        "cpu: starting this kernel would bring your total to 5 CPU, over your total_cpu limit of 4 CPU "
        "(set by default; you are using 3 CPU in 1 kernel and 1 server); stop a kernel or ask for 1 CPU or less"
    )
    with pytest.raises(PolicyError) as info:
        admission.reserve("ada", ["physics"], p, req(cpu=1, mem=5 * GiB), "kernel", "k2", IMAGE)
    assert info.value.limit == "total_mem"
    assert "would bring your total to 7 GiB, over your total_mem limit of 6 GiB" in info.value.message
    assert "ask for 4 GiB or less" in info.value.message
    last = admission.reserve("ada", ["physics"], p, req(cpu=1, mem=4 * GiB), "kernel", "k2", IMAGE)
    assert last.node == "n1" and ledger.user_usage("ada").cpu == 4
    with pytest.raises(PolicyError, match=r"you are using 4 CPU in 2 kernels and 1 server\); stop a kernel first"):
        admission.reserve("ada", ["physics"], p, req(cpu=0.5, mem=256 * 1024**2), "kernel", "k3", IMAGE)
    assert len(ledger.live_allocations(owner="ada")) == 3


def test_max_kernels_counts_only_live_kernels(ledger, admission):
    ledger.set_node_capacity("n1", 16, 64 * GiB)
    p = resolve("ada", ["students"], PolicySpec.parse({}), {"students": PolicySpec.parse({"max_kernels": 2})})
    first = admission.reserve("ada", [], p, req(), "kernel", "k1", IMAGE)
    admission.reserve("ada", [], p, req(), "kernel", "k2", IMAGE)
    with pytest.raises(PolicyError) as info:
        admission.reserve("ada", [], p, req(), "kernel", "k3", IMAGE)
    assert info.value.limit == "max_kernels"
    assert info.value.message == (
        "kernels: you are running 2 kernels, the most your max_kernels limit of 2 allows "
        "(set by group students); stop a kernel to start another"
    )
    admission.reserve("ada", [], p, req(), "server", "ada/", IMAGE)  # servers are not kernels
    ledger.release(first.id, "shutdown")
    assert admission.reserve("ada", [], p, req(), "kernel", "k3", IMAGE).subject == "k3"


def test_a_full_host_is_full_right_now_not_forever(ledger, admission):
    ledger.set_node_capacity("n1", 2, 8 * GiB)
    p = policy()
    held = admission.reserve("ada", [], p, req(cpu=1.5), "kernel", "k1", IMAGE)
    with pytest.raises(CapacityError) as info:
        admission.reserve("bob", [], p, req(cpu=1), "kernel", "k2", IMAGE)
    err = info.value
    assert (err.never_fits, err.resource, err.status) == (False, "cpu", 409)
    assert err.message == (
        "cpu: no host has 1 CPU free: the largest free is 0.5 CPU on n1; "
        "try again when a kernel stops or ask for 0.5 CPU or less"
    )
    with pytest.raises(CapacityError) as info:
        admission.reserve("bob", [], p, req(cpu=0.5, mem=7 * GiB + 1), "kernel", "k2", IMAGE)
    assert (info.value.never_fits, info.value.resource) == (False, "mem")
    assert "mem: no host has 7 GiB free: the largest free is 7 GiB on n1" in info.value.message
    ledger.release(held.id, "shutdown")
    assert admission.reserve("bob", [], p, req(cpu=1), "kernel", "k2", IMAGE).cpu == 1


def test_larger_than_any_host_never_fits(ledger, admission):
    ledger.set_node_capacity("a", 2, 8 * GiB)
    ledger.set_node_capacity("b", 4, 4 * GiB)
    p = policy()
    with pytest.raises(CapacityError) as info:
        admission.reserve("ada", [], p, req(cpu=6), "kernel", "k1", IMAGE)
    assert info.value.never_fits is True and info.value.resource == "cpu"
    assert (
        info.value.message
        == "cpu: this kernel asks for 6 CPU but the largest host (b) has 4 CPU in all; ask for 4 CPU or less"
    )
    with pytest.raises(CapacityError) as info:
        admission.reserve("ada", [], p, req(cpu=3), "kernel", "k1", IMAGE, node="a")
    assert info.value.never_fits is True
    assert info.value.message == "cpu: this kernel asks for 3 CPU but host a has 2 CPU in all; ask for 2 CPU or less"
    # Fits only on b, and on no host once memory is counted too.
    assert admission.reserve("ada", [], p, req(cpu=3), "kernel", "k1", IMAGE).node == "b"
    with pytest.raises(CapacityError) as info:
        admission.reserve("ada", [], p, req(cpu=0.5, mem=10 * GiB), "kernel", "k2", IMAGE)
    assert info.value.never_fits is True and info.value.resource == "mem"
    assert ledger.live_allocations(owner="ada")[0].node == "b"


def test_placement_first_host_with_room_and_no_host_with_both(ledger, admission):
    ledger.set_node_capacity("a", 2, 2 * GiB)
    ledger.set_node_capacity("b", 4, 16 * GiB)
    ledger.set_node_capacity("c", 8, 32 * GiB, state="draining")
    p = policy()
    assert admission.reserve("ada", [], p, req(cpu=1, mem=GiB), "kernel", "k1", IMAGE).node == "a"
    assert admission.reserve("ada", [], p, req(cpu=2, mem=GiB), "kernel", "k2", IMAGE).node == "b"  # a has 1 CPU left
    admission.reserve("ada", [], p, req(cpu=1.5, mem=GiB), "kernel", "k3", IMAGE)  # b: 0.5 CPU, 14 GiB left
    # a has 1 CPU but 0 GiB free-ish, b has memory but 0.5 CPU: no host has both.
    admission.reserve("ada", [], p, req(cpu=0.25, mem=GiB), "kernel", "k4", IMAGE, node="a")
    with pytest.raises(CapacityError) as info:
        admission.reserve("ada", [], p, req(cpu=0.75, mem=2 * GiB), "kernel", "k5", IMAGE)
    assert info.value.resource == "cpu+mem" and info.value.never_fits is False
    assert (
        "no host has both 0.75 CPU and 2 GiB free (a: 0.75 CPU and 0 B free; b: 0.5 CPU and 14 GiB free)"
        in info.value.message
    )
    with pytest.raises(CapacityError, match="host c is draining and takes no new kernels") as info:
        admission.reserve("ada", [], p, req(), "kernel", "k6", IMAGE, node="c")
    assert info.value.never_fits is False
    with pytest.raises(NotFoundError, match="no host named 'zz'; known hosts: a, b, c"):
        admission.reserve("ada", [], p, req(), "kernel", "k6", IMAGE, node="zz")


def test_no_host_registered(ledger, admission):
    with pytest.raises(CapacityError, match="no host is registered") as info:
        admission.reserve("ada", [], policy(), req(), "kernel", "k1", IMAGE)
    assert info.value.never_fits is True


def test_gpu_needs_an_assigner_which_runs_in_the_same_transaction(ledger, admission):
    ledger.set_node_capacity("a", 8, 32 * GiB)
    ledger.set_node_capacity("b", 8, 32 * GiB, gpu=[{"uuid": "GPU-b0", "memory": 16 * GiB}])
    p = policy(max_gpu=1, total_gpu=1)
    with pytest.raises(CapacityError, match="no GPU on this host") as info:
        admission.reserve("ada", [], p, req(gpu=0.5), "kernel", "k1", IMAGE)
    assert info.value.never_fits is True and info.value.resource == "gpu"

    seen = []

    def assigner(session, node, request):
        # Sees the locked transaction: count live shares already on this node's devices.
        rows = session.scalars(
            select(AllocationRow).where(AllocationRow.node == node.name, AllocationRow.state != "released")
        )
        used = sum(d["share"] for r in rows for d in (r.gpu_devices or []))
        seen.append((node.name, used))
        if not node.gpu or used + request.gpu > 1:
            raise CapacityError(f"gpu: host {node.name} has no {request.gpu:g} GPU free", resource="gpu")
        return [{"uuid": node.gpu[0]["uuid"], "share": request.gpu}]

    a1 = admission.reserve("ada", [], p, req(gpu=0.5), "kernel", "k1", IMAGE, gpu_assigner=assigner)
    assert a1.node == "b" and a1.gpu_devices == ({"uuid": "GPU-b0", "share": 0.5},)
    admission.reserve(
        "bob", [], policy("bob", max_gpu=1, total_gpu=1), req(gpu=0.5), "kernel", "k2", IMAGE, gpu_assigner=assigner
    )
    with pytest.raises(CapacityError, match="host b has no 0.25 GPU free") as info:
        admission.reserve(
            "cy", [], policy("cy", max_gpu=1, total_gpu=1), req(gpu=0.25), "kernel", "k3", IMAGE, gpu_assigner=assigner
        )
    assert info.value.never_fits is False
    assert seen[-2:] == [("a", 0), ("b", 1.0)]
    assert len(ledger.live_allocations()) == 2


def test_a_failing_step_reserves_nothing(ledger, admission):
    ledger.set_node_capacity("b", 8, 32 * GiB, gpu=[{"uuid": "GPU-b0"}])

    def broken(session, node, request):
        session.add(
            AllocationRow(
                id="sneaky",
                owner="x",
                groups=[],
                kind="kernel",
                subject="s",
                image=IMAGE,
                node=node.name,
                cpu=1,
                mem=GiB,
                pids=1,
                shm=0,
                gpu=0,
                state="reserved",
            )
        )
        session.flush()
        raise RuntimeError("driver exploded")

    with pytest.raises(RuntimeError):
        admission.reserve(
            "ada", [], policy(max_gpu=1, total_gpu=1), req(gpu=0.5), "kernel", "k1", IMAGE, gpu_assigner=broken
        )
    assert ledger.live_allocations() == [] and ledger.get_allocation("sneaky") is None


def test_an_allocation_id_is_used_once(ledger, admission):
    ledger.set_node_capacity("n1", 8, 32 * GiB)
    first = admission.reserve("ada", ["b", "a", "a"], policy(), req(), "kernel", "k1", IMAGE, allocation_id="alloc-1")
    assert first.id == "alloc-1" and first.groups == ("a", "b")
    with pytest.raises(ConflictError, match="allocation alloc-1 already exists"):
        admission.reserve("ada", [], policy(), req(), "kernel", "k2", IMAGE, allocation_id="alloc-1")
    assert len(ledger.live_allocations()) == 1


def _hammer(admission, calls):
    """Run ``calls`` (owner, policy, request, node) at once from as many threads; return (allocations, errors, seconds)."""
    barrier = threading.Barrier(len(calls))

    def one(i, call):
        owner, pol, request, node = call
        barrier.wait()
        try:
            return admission.reserve(owner, ["crowd"], pol, request, "kernel", f"k{i}", IMAGE, node=node)
        except (CapacityError, PolicyError) as e:
            return e

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        results = list(pool.map(lambda ic: one(*ic), enumerate(calls)))
    elapsed = time.perf_counter() - start
    return (
        [r for r in results if not isinstance(r, Exception)],
        [r for r in results if isinstance(r, Exception)],
        elapsed,
    )


@pytest.mark.slow
def test_200_concurrent_reservations_never_oversubscribe(ledger, admission, record_property):
    ledger.set_node_capacity("n1", 50, 1024 * GiB)  # room for exactly 100 × 0.5 CPU
    unlimited = policy("anyone")
    calls = [(f"user{i % 40}", unlimited, req(cpu=0.5, mem=GiB), None) for i in range(200)]
    granted, refused, elapsed = _hammer(admission, calls)
    record_property("seconds", round(elapsed, 2))
    print(f"\n200 concurrent reservations on {ledger.dialect}: {elapsed:.2f} s")
    assert len(granted) == 100 and len(refused) == 100
    assert all(isinstance(e, CapacityError) and e.never_fits is False and e.resource == "cpu" for e in refused)
    assert ledger.node_usage()["n1"].cpu == 50.0
    assert len({a.id for a in granted}) == 100 and len(ledger.live_allocations()) == 100


def test_one_user_racing_on_two_hosts_stays_within_the_total(ledger, admission):
    # Requests alternate between two hosts, so only the per-user lock (PostgreSQL) or the
    # database write lock (SQLite) keeps the user's total; host locks alone would not.
    ledger.set_node_capacity("a", 50, 1024 * GiB)
    ledger.set_node_capacity("b", 50, 1024 * GiB)
    p = policy(total_cpu=4)
    calls = [("ada", p, req(cpu=1), "a" if i % 2 else "b") for i in range(50)]
    granted, refused, elapsed = _hammer(admission, calls)
    print(f"\n50 concurrent requests of one user on {ledger.dialect}: {elapsed:.2f} s")
    assert len(granted) == 4 and len(refused) == 46
    assert all(isinstance(e, PolicyError) and e.limit == "total_cpu" for e in refused)
    assert ledger.user_usage("ada").cpu == 4


def test_gpu_fractions_from_the_real_allocator_never_exceed_a_device(ledger, admission):
    devices = [
        GpuDevice(index=i, uuid=f"GPU-{i}", name="Declared", memory_bytes=16 * GiB, declared=True) for i in range(2)
    ]
    ledger.set_node_capacity("n1", 64, 256 * GiB, gpu=[{"uuid": d.uuid, "index": d.index} for d in devices])
    assigner = share_assigner(make_gpu_assigner(devices, policy="pack"))
    p = policy("anyone", max_gpu=1, total_gpu=1)
    barrier = threading.Barrier(30)

    def one(i):
        barrier.wait()
        try:
            return admission.reserve(
                f"u{i}", [], p, req(cpu=0.5, gpu=0.25), "kernel", f"k{i}", IMAGE, gpu_assigner=assigner
            )
        except CapacityError as e:
            return e

    with ThreadPoolExecutor(max_workers=30) as pool:
        results = list(pool.map(one, range(30)))
    granted = [r for r in results if not isinstance(r, Exception)]
    assert len(granted) == 8  # two devices × four quarters
    assert all(isinstance(r, CapacityError) and r.resource == "gpu" for r in results if isinstance(r, Exception))
    with ledger.reading() as s:
        assert gpu_shares_in_use(s) == {"GPU-0": 1.0, "GPU-1": 1.0}
    ledger.release(granted[0].id, "shutdown")
    freed = granted[0].gpu_devices[0]["uuid"]
    again = admission.reserve("late", [], p, req(cpu=0.5, gpu=0.25), "kernel", "k-late", IMAGE, gpu_assigner=assigner)
    assert again.gpu_devices[0]["uuid"] == freed and again.gpu_devices[0]["share"] == 0.25

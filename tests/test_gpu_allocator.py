"""The GPU fraction allocator, on devices declared in config (no GPU on these machines)."""

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jupyter_berth.errors import CapacityError, RequestError
from jupyter_berth.gpu import GpuDevice, GpuShare, assign, free_shares, make_gpu_assigner, used_by_device
from jupyter_berth.resources import Resources

GiB = 1024**3


def declared(n: int, *, node: str | None = None, mig: set[int] = frozenset(), start: int = 0) -> list[GpuDevice]:
    """``n`` devices as if declared in config (16 GiB each)."""
    return [
        GpuDevice(
            index=i,
            uuid=f"GPU-{node or 'h'}-{i}",
            name="declared T4",
            memory_bytes=16 * GiB,
            mig_mode=i in mig,
            declared=True,
            node=node,
        )
        for i in range(start, start + n)
    ]


def uuids(shares):
    return [s.uuid for s in shares]


# --- placement ------------------------------------------------------------------


def test_declared_gpus_pack_fills_the_partly_used_device_first():
    a, b, c = declared(3)
    used = {a.uuid: 0.25, b.uuid: 0.5}
    # pack: least free that still fits → b (0.5 free), keeping c whole
    assert assign([a, b, c], used, 0.5, "pack") == [GpuShare(b.uuid, 0.5)]
    # 0.75 only fits on a (0.75 free) or c (1.0 free): pack takes a
    assert uuids(assign([a, b, c], used, 0.75, "pack")) == [a.uuid]


def test_declared_gpus_spread_takes_the_most_free_device():
    a, b, c = declared(3)
    used = {a.uuid: 0.25, b.uuid: 0.5}
    assert uuids(assign([a, b, c], used, 0.25, "spread")) == [c.uuid]
    assert uuids(assign([a, b, c], {c.uuid: 0.1}, 0.25, "spread")) == [a.uuid]  # tie a/b → lower index


def test_declared_gpus_ties_go_to_the_lowest_index():
    devices = declared(3)
    assert uuids(assign(devices, {}, 0.25, "pack")) == [devices[0].uuid]
    assert uuids(assign(list(reversed(devices)), {}, 0.25, "spread")) == [devices[0].uuid]


def test_declared_gpus_request_zero_gets_nothing():
    assert assign(declared(1), {}, 0) == []
    assert assign([], {}, 0) == []


def test_declared_gpus_whole_devices_must_be_entirely_free():
    a, b, c = declared(3)
    shares = assign([a, b, c], {a.uuid: 0.05}, 2)
    assert shares == [GpuShare(b.uuid, 1.0), GpuShare(c.uuid, 1.0)]


def test_declared_gpus_whole_requests_prefer_devices_that_cannot_be_shared():
    a, b, c = declared(3)
    assert uuids(assign([a, b, c], {}, 1, shareable={a.uuid, b.uuid})) == [c.uuid]


def test_declared_gpus_ten_tenths_fill_a_device_exactly_despite_float_sums():
    (a,) = declared(1)
    used = 0.0
    for _ in range(10):  # float sums drift: 0.1 * 10 summed naively is 0.9999999999999999
        (share,) = assign([a], {a.uuid: used}, 0.1, quantum=0.1)
        used += share.share
    assert used == 0.9999999999999999  # the float sum fell short of 1.0; the allocator must still see "full"
    with pytest.raises(CapacityError) as e:
        assign([a], {a.uuid: used}, 0.1, quantum=0.1)
    assert "the most free on any device is 0" in e.value.message
    assert free_shares([a], {a.uuid: 0.1 + 0.2}) == {a.uuid: 0.7}


# --- quantum and input ------------------------------------------------------------


def test_declared_gpus_fraction_must_be_a_multiple_of_the_quantum():
    with pytest.raises(RequestError) as e:
        assign(declared(1), {}, 0.33)
    assert e.value.message == "gpu: 0.33 is not a multiple of the 0.05 quantum; ask for 0.3 or 0.35"
    assert e.value.field == "gpu"
    with pytest.raises(RequestError) as e:
        assign(declared(1), {}, 0.02)
    assert e.value.message.endswith("ask for 0.05")
    with pytest.raises(RequestError) as e:
        assign(declared(1), {}, 0.97)
    assert e.value.message.endswith("ask for 0.95 or 1")
    with pytest.raises(RequestError) as e:
        assign(declared(1), {}, 0.3, quantum=0.25)
    assert e.value.message.endswith("ask for 0.25 or 0.5")
    assert assign(declared(1), {}, 0.35)[0].share == 0.35  # 0.35 / 0.05 is inexact in floats, exact here


@pytest.mark.parametrize("bad", [0, -0.05, 1.5, "x"])
def test_declared_gpus_bad_quantum_or_request_is_refused(bad):
    with pytest.raises(RequestError) as e:
        if bad in (0, -0.05):
            assign(declared(1), {}, 0.25, quantum=bad)
        else:
            assign(declared(1), {}, bad)
    assert e.value.field in ("gpu", "gpu_quantum")


def test_declared_gpus_unknown_policy_is_refused():
    with pytest.raises(RequestError) as e:
        assign(declared(1), {}, 0.25, policy="random")
    assert e.value.field == "gpu_policy"


# --- refusals -------------------------------------------------------------------


def test_no_gpu_on_host_never_fits():
    with pytest.raises(CapacityError) as e:
        assign([], {}, 0.25)
    assert "no GPU on this host" in e.value.message
    assert e.value.never_fits is True
    assert e.value.resource == "gpu"


def test_declared_gpus_full_devices_refuse_with_the_most_free_share():
    a, b = declared(2)
    with pytest.raises(CapacityError) as e:
        assign([a, b], {a.uuid: 0.75, b.uuid: 0.9}, 0.5)
    assert e.value.message.startswith("asked for 0.5 GPU but the most free on any device is 0.25")
    assert "ask for 0.25 or less" in e.value.message
    assert e.value.never_fits is False


def test_declared_gpus_whole_request_refusals():
    a, b = declared(2)
    with pytest.raises(CapacityError) as e:
        assign([a, b], {a.uuid: 0.5}, 2)
    assert e.value.message.startswith("asked for 2 whole GPUs but only 1 is entirely free")
    assert e.value.never_fits is False
    with pytest.raises(CapacityError) as e:
        assign([a, b], {}, 3)
    assert e.value.message.startswith("asked for 3 whole GPUs but this host has only 2")
    assert e.value.never_fits is True


def test_declared_gpus_whole_devices_on_different_nodes_are_not_combined():
    devices = declared(1, node="n1") + declared(1, node="n2")
    with pytest.raises(CapacityError) as e:
        assign(devices, {}, 2)
    assert "no node has more than 1" in e.value.message
    assert e.value.never_fits is True
    devices = declared(1, node="n1") + declared(2, node="n2")
    assert {s.node for s in assign(devices, {}, 2)} == {"n2"}


def test_declared_gpus_non_shareable_devices_take_no_fractions():
    a, b = declared(2)
    assert uuids(assign([a, b], {}, 0.25, shareable={b.uuid})) == [b.uuid]
    with pytest.raises(CapacityError) as e:
        assign([a, b], {}, 0.25, shareable=set())
    assert "no GPU on this host takes fractions" in e.value.message
    assert e.value.never_fits is True
    assert uuids(assign([a, b], {}, 1, shareable=set())) == [a.uuid]  # still handed out whole


def test_declared_mig_enabled_parent_is_never_granted_whole():
    """A MIG-enabled GPU runs work only in its instances: whole grants skip it, however it sorts."""
    mig, plain = declared(2, mig={0})
    # before: non-shareable devices sort first for whole requests, and a MIG parent is non-shareable
    assert uuids(assign([mig, plain], {}, 1)) == [plain.uuid]
    assert uuids(assign([mig, plain], {}, 1, shareable={plain.uuid})) == [plain.uuid]
    with pytest.raises(CapacityError) as e:
        assign([mig, plain], {}, 2)
    assert "this host has only 1" in e.value.message and e.value.never_fits
    with pytest.raises(CapacityError) as e:
        assign([mig], {}, 1)
    assert "MIG enabled" in e.value.message and "declare the instances" in e.value.message and e.value.never_fits
    with pytest.raises(CapacityError) as e:  # the plain one busy: wait, not never
        assign([mig, plain], {plain.uuid: 0.25}, 1)
    assert "none is entirely free" in e.value.message and not e.value.never_fits


def test_declared_mig_enabled_gpu_is_whole_only_by_default():
    a, b = declared(2, mig={0})
    assert uuids(assign([a, b], {}, 0.5)) == [b.uuid]
    assert uuids(assign([a, b], {}, 0.5, shareable={a.uuid})) == [a.uuid]  # admin says otherwise


# --- the admission hook -------------------------------------------------------------


def test_declared_gpus_assigner_for_admission_takes_used_and_a_request():
    a, b = declared(2)
    assigner = make_gpu_assigner([a, b], policy="spread", quantum=0.25)
    assert assigner({a.uuid: 0.25}, Resources(gpu=0.5)) == [{"uuid": b.uuid, "share": 0.5}]
    assert assigner({}, Resources()) == []
    assert assigner({}, 2) == [{"uuid": a.uuid, "share": 1.0}, {"uuid": b.uuid, "share": 1.0}]
    with pytest.raises(RequestError):
        assigner({}, Resources(gpu=0.3))
    with pytest.raises(RequestError) as e:
        make_gpu_assigner([a], shareable={"GPU-nope"})
    assert e.value.field == "gpu_shareable"
    with pytest.raises(RequestError):
        make_gpu_assigner([a], quantum=0)


def test_used_by_device_sums_grants_exactly():
    grants = [[{"uuid": "GPU-a", "share": 0.1}], [GpuShare("GPU-a", 0.2)], [{"uuid": "GPU-b", "share": 1.0}], []]
    assert used_by_device(grants) == {"GPU-a": 0.3, "GPU-b": 1.0}


# --- property: no sequence of operations oversubscribes a device ------------------

REQUESTS = [0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.5, 0.65, 0.75, 0.95, 1, 2, 3]
operations = st.lists(
    st.one_of(
        st.tuples(st.just("assign"), st.sampled_from(REQUESTS), st.sampled_from(["pack", "spread"])),
        st.tuples(st.just("release"), st.integers(min_value=0, max_value=40), st.just(None)),
    ),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(n=st.integers(min_value=1, max_value=4), shareable_mask=st.integers(min_value=0, max_value=15), ops=operations)
def test_declared_gpus_property_no_device_over_one_and_fractions_on_one_device(n, shareable_mask, ops):
    devices = declared(n)
    shareable = {d.uuid for d in devices if shareable_mask >> d.index & 1}
    grants: list[list[GpuShare]] = []
    for op, arg, policy in ops:
        if op == "release":
            if grants:
                grants.pop(arg % len(grants))
            continue
        used: dict[str, float] = {}
        for grant in grants:  # summed naively in floats, as a database SUM would
            for s in grant:
                used[s.uuid] = used.get(s.uuid, 0.0) + s.share
        exact = {
            d.uuid: sum((Decimal(str(s.share)) for g in grants for s in g if s.uuid == d.uuid), Decimal(0))
            for d in devices
        }
        try:
            shares = assign(devices, used, arg, policy, 0.05, shareable)
        except CapacityError as e:
            if arg < 1:  # refused only when no shareable device has the room
                assert all(exact[u] + Decimal(str(arg)) > 1 for u in shareable), e.message
            else:
                assert sum(1 for d in devices if exact[d.uuid] == 0) < arg, e.message
            continue
        if arg < 1:
            assert len(shares) == 1 and shares[0].share == arg and shares[0].uuid in shareable
        else:
            assert len(shares) == arg and len(set(uuids(shares))) == arg
            assert all(s.share == 1.0 and exact[s.uuid] == 0 for s in shares)
        grants.append(shares)
        for d in devices:
            total = sum((Decimal(str(s.share)) for g in grants for s in g if s.uuid == d.uuid), Decimal(0))
            assert total <= 1, f"{d.uuid} is at {total}"

"""Group-wide totals (``group_totals`` in a group policy), on SQLite and PostgreSQL.

Real ledger, real admission transactions; the race runs 200 threads across a
group's members against one database.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from jupyter_berth.admission import Admission
from jupyter_berth.errors import CapacityError, PolicyError, RequestError
from jupyter_berth.group_admission import group_usage
from jupyter_berth.group_totals import GroupTotals
from jupyter_berth.policies import PolicySpec, resolve
from jupyter_berth.resources import Resources

GiB = 1024**3
IMAGE = "berth/python:3.11"
CLASS_A = {"total_cpu": 4, "group_totals": {"cpu": 16, "mem": "32G", "gpu": 1, "kernels": 20, "servers": 3}}


def class_policy(user, groups=("class-a",), group_specs=None, **user_spec):
    specs = group_specs or {"class-a": PolicySpec.parse(CLASS_A, "group_policies.class-a")}
    users = {user: PolicySpec.parse(user_spec, f"user_policies.{user}")} if user_spec else {}
    return resolve(user, groups, None, specs, users)


@pytest.fixture
def admission(ledger):
    ledger.set_node_capacity("n1", 64, 256 * GiB)
    return Admission(ledger)


def test_group_totals_parse_and_belong_to_group_policies_only():
    spec = PolicySpec.parse(CLASS_A, "group_policies.class-a")
    assert spec.group_totals == GroupTotals(cpu=16.0, mem=32 * GiB, gpu=1.0, kernels=20, servers=3)
    assert spec.to_json()["group_totals"] == {"cpu": 16.0, "mem": 32 * GiB, "gpu": 1.0, "kernels": 20, "servers": 3}
    with pytest.raises(RequestError, match=r"default_policy.group_totals: only a group policy"):
        PolicySpec.parse({"group_totals": {"cpu": 4}}, "default_policy")
    with pytest.raises(RequestError, match=r"user ada.group_totals: only a group policy"):
        PolicySpec.parse({"group_totals": {"cpu": 4}}, "user ada")
    with pytest.raises(RequestError, match=r"group_totals.pids: unknown group total"):
        PolicySpec.parse({"group_totals": {"pids": 4}}, "group x")  # no policy total: not capped per group
    with pytest.raises(RequestError, match=r"group_totals.kernels"):
        PolicySpec.parse({"group_totals": {"kernels": 1.5}}, "group x")
    # the effective policy carries each group's totals, unmerged; the per-member fields still merge
    pol = class_policy("ada", groups=("class-a", "other"))
    assert pol.group_totals == {"class-a": spec.group_totals} and pol.total_cpu == 4
    assert pol.to_json()["group_totals"]["class-a"]["cpu"] == 16.0


def test_a_group_total_refuses_a_member_and_names_the_group(ledger, admission):
    for i in range(4):  # four students, 4 CPU each: the group's 16 CPU are taken
        admission.reserve(f"s{i}", ["class-a"], class_policy(f"s{i}"), Resources(cpu=4, mem=GiB), "kernel", "k", IMAGE)
    with pytest.raises(CapacityError) as e:
        admission.reserve("s4", ["class-a"], class_policy("s4"), Resources(cpu=1, mem=GiB), "kernel", "k", IMAGE)
    assert e.value.never_fits is False and e.value.resource == "group:class-a:cpu"
    assert "group class-a is using 16 CPU of its group total of 16 CPU (group_totals.cpu of group class-a)" in str(
        e.value
    )
    assert "wait until a member of class-a stops" in e.value.message
    # someone outside the group is not affected
    admission.reserve("out", ["other"], class_policy("out", groups=("other",)), Resources(cpu=4), "kernel", "k", IMAGE)
    # the user's own total still applies first, as a PolicyError
    with pytest.raises(PolicyError):
        admission.reserve("s0", ["class-a"], class_policy("s0"), Resources(cpu=1, mem=GiB), "kernel", "k2", IMAGE)
    assert ledger.node_usage()["n1"].cpu == 20


def test_group_totals_for_memory_gpu_kernels_and_servers(ledger, admission):
    a = class_policy("a", max_gpu=2, total_gpu=2, total_cpu=64, total_mem="64G")
    admission.reserve("a", ["class-a"], a, Resources(cpu=0.5, mem=30 * GiB), "kernel", "k", IMAGE)
    with pytest.raises(CapacityError, match=r"mem: group class-a is using 30 GiB of its group total of 32 GiB"):
        admission.reserve("b", ["class-a"], class_policy("b"), Resources(cpu=0.5, mem=4 * GiB), "kernel", "k", IMAGE)
    with pytest.raises(CapacityError, match=r"asks for 2 GPU but group class-a may hold only 1 GPU in all") as e:
        admission.reserve("a", ["class-a"], a, Resources(cpu=0.5, mem=GiB, gpu=2), "kernel", "g", IMAGE)
    assert e.value.never_fits is True
    for i in range(3):
        admission.reserve(
            f"v{i}", ["class-a"], class_policy(f"v{i}"), Resources(cpu=0.1, mem=64 * 1024**2), "server", "srv", IMAGE
        )
    with pytest.raises(CapacityError, match=r"servers: group class-a is using 3 servers of its group total of 3"):
        admission.reserve(
            "v9", ["class-a"], class_policy("v9"), Resources(cpu=0.1, mem=64 * 1024**2), "server", "srv", IMAGE
        )
    with admission.ledger.reading() as s:
        used = group_usage(s, ["class-a"])["class-a"]
    assert (used.kernels, used.servers, used.mem) == (1, 3, 30 * GiB + 3 * 64 * 1024**2)


def test_a_user_in_two_capped_groups_needs_room_in_both(ledger, admission):
    specs = {
        "class-a": PolicySpec.parse({"group_totals": {"cpu": 8}}, "group class-a"),
        "lab": PolicySpec.parse({"group_totals": {"cpu": 2}}, "group lab"),
    }
    both = resolve("ada", ("class-a", "lab"), None, specs)
    admission.reserve("ada", ["class-a", "lab"], both, Resources(cpu=2), "kernel", "k1", IMAGE)
    with pytest.raises(CapacityError, match="group lab"):
        admission.reserve("ada", ["class-a", "lab"], both, Resources(cpu=1), "kernel", "k2", IMAGE)
    # a released allocation no longer counts
    alloc = ledger.live_allocations()[0]
    ledger.release(alloc.id, "stopped")
    admission.reserve("ada", ["class-a", "lab"], both, Resources(cpu=2), "kernel", "k3", IMAGE)


@pytest.mark.slow
def test_200_members_racing_never_exceed_the_group_total(ledger, admission):
    # 200 requests from 50 students of class-a at once; the host has room for all of them,
    # the students' own totals too: only the group total (16 CPU = 32 × 0.5) may refuse.
    policies = {f"s{i}": class_policy(f"s{i}") for i in range(50)}
    barrier = threading.Barrier(200)

    def one(i):
        user = f"s{i % 50}"
        barrier.wait()
        try:
            return admission.reserve(
                user, ["class-a"], policies[user], Resources(cpu=0.5, mem=GiB), "kernel", f"k{i}", IMAGE
            )
        except (CapacityError, PolicyError) as e:
            return e

    with ThreadPoolExecutor(max_workers=200) as pool:
        results = list(pool.map(one, range(200)))
    granted = [r for r in results if not isinstance(r, Exception)]
    refused = [r for r in results if isinstance(r, Exception)]
    assert len(granted) == 20  # the kernels total (20) binds before the CPU total (32 × 0.5)
    assert all(isinstance(e, CapacityError) and e.resource.startswith("group:class-a:") for e in refused)
    with ledger.reading() as s:
        used = group_usage(s, ["class-a"])["class-a"]
    assert used.kernels == 20 and used.cpu == 10.0


@pytest.mark.slow
def test_200_members_racing_never_exceed_the_group_cpu_total(ledger, admission):
    specs = {"class-a": PolicySpec.parse({"group_totals": {"cpu": 16}}, "group class-a")}
    policies = {f"s{i}": resolve(f"s{i}", ("class-a",), None, specs) for i in range(40)}
    barrier = threading.Barrier(200)

    def one(i):
        user = f"s{i % 40}"
        barrier.wait()
        try:
            return admission.reserve(
                user, ["class-a"], policies[user], Resources(cpu=0.5, mem=GiB), "kernel", f"k{i}", IMAGE
            )
        except CapacityError as e:
            return e

    with ThreadPoolExecutor(max_workers=200) as pool:
        results = list(pool.map(one, range(200)))
    granted = [r for r in results if not isinstance(r, Exception)]
    assert len(granted) == 32
    assert all(r.resource == "group:class-a:cpu" for r in results if isinstance(r, Exception))
    assert ledger.node_usage()["n1"].cpu == 16.0


def test_the_sidebar_summary_shows_the_groups_use_and_narrows_what_is_left(ledger, admission):
    from jupyter_berth.group_admission import narrow, totals_summary

    for i in range(3):
        admission.reserve(f"s{i}", ["class-a"], class_policy(f"s{i}"), Resources(cpu=4, mem=GiB), "kernel", "k", IMAGE)
    pol = class_policy("s9")
    groups = totals_summary(ledger, pol.group_totals)
    assert groups["class-a"]["totals"] == {"cpu": 16.0, "mem": 32 * GiB, "gpu": 1.0, "kernels": 20, "servers": 3}
    assert groups["class-a"]["in_use"] == {
        "cpu": 12.0, "mem": 3 * GiB, "gpu": 0.0, "disk": 3 * 10 * GiB, "kernels": 3, "servers": 0
    }  # fmt: skip
    assert groups["class-a"]["remaining"]["cpu"] == 4.0 and groups["class-a"]["remaining"]["mem"] == 29 * GiB
    # s9 may hold 4 CPU by their own total, and the class has 4 left; memory: theirs is unlimited, the class's is not
    assert narrow({"cpu": 4.0, "mem": None, "gpu": 0.0, "kernels": None}, groups) == {
        "cpu": 4.0,
        "mem": 29 * GiB,
        "gpu": 0.0,
        "kernels": 17,
    }


def test_group_totals_name_what_the_registry_totals(ledger):
    """The resource kinds a group may cap are the registry's totalled kinds (a policy total and a ledger
    column), not a list of their own; the summary reports each of them and the counts."""
    from jupyter_berth.group_admission import totals_summary
    from jupyter_berth.group_totals import total_names
    from jupyter_berth.ledger.totals import totalled_kinds

    assert total_names() == (*(k.name for k in totalled_kinds()), "kernels", "servers")
    assert set(total_names()) >= {"cpu", "mem", "gpu"}
    with pytest.raises(RequestError, match="known: " + ", ".join(total_names())):
        GroupTotals.parse({"pids": 4}, "group x")  # a kind with no policy total cannot be capped per group
    caps = GroupTotals.parse({"mem": "2G", "kernels": 3})
    assert (caps.mem, caps.cpu, caps.get("kernels")) == (2 * GiB, None, 3) and caps == GroupTotals(
        mem=2 * GiB, kernels=3
    )
    (summary,) = totals_summary(ledger, {"g": caps}).values()
    assert list(summary["in_use"]) == list(total_names())
    assert summary["remaining"] == {**{n: None for n in total_names()}, "mem": 2 * GiB, "kernels": 3}


def test_a_kind_the_registry_totals_is_capped_per_group_with_nothing_else_to_change(ledger, admission):
    """``disk`` came with its registry entry, a policy total and a ledger column, and nothing in group
    totals: a group may cap it all the same."""
    specs = {"class-d": PolicySpec.parse({"group_totals": {"disk": "15G"}}, "group_policies.class-d")}
    pol = resolve("d0", ("class-d",), None, specs)
    admission.reserve("d0", ["class-d"], pol, Resources(cpu=0.5, mem=GiB).replace(disk=10 * GiB), "kernel", "k", IMAGE)
    with pytest.raises(CapacityError, match=r"disk: group class-d is using 10 GiB of its group total of 15 GiB"):
        admission.reserve(
            "d1", ["class-d"], resolve("d1", ("class-d",), None, specs),
            Resources(cpu=0.5, mem=GiB).replace(disk=10 * GiB), "kernel", "k", IMAGE,
        )  # fmt: skip

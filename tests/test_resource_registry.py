"""A resource kind is described once (jupyter_berth.resources.KINDS) and every layer iterates it.

A kind registered at test time — a disk quota, the newcomer's example in docs/architecture.md —
reaches the request parser, the policy (its limits parsed, resolved and checked), admission's
totals, the spawn form, the info the API reports, Docker's and Swarm's container specs, the
process runtime's cgroup controllers and the warm pool's fit, with no other change. (Its ledger
column is the one thing a real new kind adds besides the registry entry: see "Adding a resource
kind".)
"""

from __future__ import annotations

import math

import pytest

from jupyter_berth.admission import check_totals
from jupyter_berth.errors import PolicyError, RequestError
from jupyter_berth.hub.spawn_form import OPTION_FIELDS, FormContext, ImageChoice, resolve_options
from jupyter_berth.ledger import Usage
from jupyter_berth.policies import PolicySpec, resolve
from jupyter_berth.policy_admin import remaining
from jupyter_berth.pool.warm_pool import WarmPool
from jupyter_berth.resources import (
    KINDS,
    ResourceKind,
    Resources,
    format_bytes,
    kinds_json,
    parse_memory,
    register,
    unregister,
)
from jupyter_berth.runtime import process_limits
from jupyter_berth.runtime.base import ContainerSpec
from jupyter_berth.runtime.hardening import host_config_kwargs, update_body
from jupyter_berth.runtime.swarm_spec import service_spec

GIB = 2**30


def disk_kind() -> ResourceKind:
    """A writable-layer quota: Docker's ``storage_opt size``; fixed at creation, no Swarm equivalent."""
    return ResourceKind(
        "disk",
        "a size such as 10G (the container's writable layer)",
        parse_memory,
        format_bytes,
        default=10 * GIB,
        word="disk space",
        aliases=("disk_size",),
        max_limit="max_disk",
        total_limit="total_disk",
        whole=True,
        docker=lambda v: {"storage_opt": {"size": str(int(v))}},
        swarm=lambda v: {},
        cgroup_controller="io",
    )


@pytest.fixture
def disk():
    """The test's kind in place of the registry's own ``disk``, which is put back after."""
    real = KINDS.get("disk")
    kind = register(disk_kind())
    yield kind
    unregister("disk")
    if real is not None:
        KINDS["disk"] = real


def test_requests_parse_write_and_round_trip_the_new_kind(disk):
    r = Resources.parse({"cpu": 1, "disk_size": "20G"})
    assert r.disk == 20 * GIB and Resources.parse({}).disk == 10 * GIB  # its default when not asked for
    assert r.to_dict()["disk"] == 20 * GIB and Resources.from_dict(r.to_dict()) == r
    assert r.replace(disk=5 * GIB).disk == 5 * GIB
    with pytest.raises(RequestError) as e:
        Resources.parse({"disk": "lots"})
    assert e.value.field == "disk"


def test_the_policy_parses_resolves_and_checks_its_limits(disk):
    spec = PolicySpec.parse({"max_disk": "50G", "total_disk": "80G"})
    assert spec.max_disk == 50 * GIB and spec.to_json()["total_disk"] == 80 * GIB
    policy = resolve("alice", ["lab"], spec, {"lab": PolicySpec.parse({"max_disk": "60G"})})
    assert policy.max_disk == 60 * GIB and policy.sources["max_disk"] == "group lab"
    assert resolve("bob", []).max_disk == math.inf  # the kind's built-in value
    with pytest.raises(PolicyError) as e:
        policy.check(Resources.parse({"disk": "70G"}))
    assert e.value.limit == "max_disk"
    assert "disk: you asked for 70 GiB per kernel but your policy allows at most 60 GiB" in e.value.message
    assert policy.check(Resources.parse({"disk": "70G"}), explicit=False).disk == 60 * GIB  # a default is clamped
    with pytest.raises(RequestError) as e:
        PolicySpec.parse({"max_disk": "lots"})
    assert e.value.field == "policy.max_disk"


def test_admission_totals_and_what_is_left_count_it(disk):
    policy = resolve("alice", [], PolicySpec.parse({"total_disk": "80G"}))
    in_use = Usage(cpu=1.0, mem=GIB, kernels=2, extra=(("disk", 60 * GIB),))
    check_totals(in_use, policy, Resources.parse({"disk": "20G"}), "kernel")  # exactly the total: fits
    with pytest.raises(PolicyError) as e:
        check_totals(in_use, policy, Resources.parse({"disk": "30G"}), "kernel")
    assert e.value.limit == "total_disk"
    assert "would bring your total to 90 GiB, over your total_disk limit of 80 GiB" in e.value.message
    assert remaining(policy, in_use)["disk"] == 20 * GIB


def test_the_spawn_form_takes_it_and_checks_it_as_admission_does(disk):
    spec = PolicySpec.parse({"max_cpu": 2, "max_mem": "4G", "max_disk": "50G"})
    ctx = FormContext(
        policy=resolve("alice", [], spec),
        images=[ImageChoice("berth/singleuser:3.11")],
        default_image="berth/singleuser:3.11",
        defaults=Resources.parse({"cpu": 0.5, "mem": "1G", "disk": "100G"}),
    )
    assert "disk" in OPTION_FIELDS
    assert resolve_options({}, ctx).resources.disk == 50 * GIB  # the admin's default, clamped
    assert resolve_options({"disk_size": "20G"}, ctx).resources.disk == 20 * GIB
    with pytest.raises(PolicyError) as e:
        resolve_options({"disk": "60G"}, ctx)
    assert e.value.limit == "max_disk" and "60 GiB for your server" in e.value.message


def test_the_info_the_api_reports_lists_it(disk):
    listed = {k["name"]: k for k in kinds_json()}
    assert list(listed)[:5] == ["cpu", "mem", "pids", "shm", "gpu"]
    assert listed["disk"] == {
        "name": "disk",
        "accepts": "a size such as 10G (the container's writable layer)",
        "aliases": ["disk_size"],
        "default": 10 * GIB,
        "max_limit": "max_disk",
        "total_limit": "total_disk",
        "live": False,
    }


def test_the_runtimes_apply_it_as_the_registry_maps_it(disk):
    spec = ContainerSpec(
        name="k1",
        image="berth/python:3.11",
        command=["berth-kernel"],
        labels={},
        resources=Resources.parse({"cpu": 2, "mem": "2G", "disk": "20G"}),
        user="1000:100",
    )
    docker_kwargs = host_config_kwargs(spec)
    assert docker_kwargs["storage_opt"] == {"size": str(20 * GIB)}
    assert (docker_kwargs["cpu_quota"], docker_kwargs["mem_limit"], docker_kwargs["pids_limit"]) == (
        200_000,
        2 * GIB,
        512,
    )
    assert "storage_opt" not in update_body(spec.resources)  # it cannot change on a running container
    assert update_body(spec.resources)["Memory"] == 2 * GIB
    limits = service_spec(spec, image="berth/python:3.11")["TaskTemplate"]["Resources"]
    assert limits["Limits"] == {"NanoCPUs": 2_000_000_000, "MemoryBytes": 2 * GIB, "Pids": 512}
    assert "io" in process_limits._v2_controllers()
    pool = WarmPool(None, "test-site", images=["berth/python:3.11"], size=1)
    assert pool.unfit_reason(spec) == "disk space 20 GiB is more than the pool's 10 GiB"

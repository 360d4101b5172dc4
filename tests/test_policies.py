"""How policies combine (default, groups, user) and how they check a request."""

import math

import pytest

from jupyter_berth.errors import PolicyError, RequestError
from jupyter_berth.policies import PolicySpec, resolve
from jupyter_berth.resources import Resources

from .berth_fixtures import berth_service  # noqa: F401 - the fixture

GiB = 1024**3


@pytest.fixture
def classroom():
    default = PolicySpec.parse({"max_cpu": 2, "max_mem": "4G", "total_cpu": 4, "max_kernels": 3, "idle_timeout": 3600})
    groups = {
        "students": PolicySpec.parse(
            {"max_cpu": 1, "max_mem": "2G", "max_gpu": 0, "allowed_images": ["berth/python:*"]}
        ),
        "tas": PolicySpec.parse(
            {"max_cpu": "1.5", "max_gpu": 0.25, "allowed_images": ["berth/pytorch:*"], "idle_timeout": 7200}
        ),
        "staff": PolicySpec.parse({"total_cpu": "unlimited"}),
    }
    users = {"carol": PolicySpec.parse({"max_cpu": 8, "max_kernels": 10})}
    return default, groups, users


def test_default_only(classroom):
    default, groups, users = classroom
    p = resolve("dave", [], default, groups, users)
    assert p.max_cpu == 2 and p.max_mem == 4 * GiB and p.total_cpu == 4
    assert p.sources["max_cpu"] == "default"
    assert p.max_gpu == 0.0 and p.sources["max_gpu"] == "builtin"


def test_most_generous_group_wins_per_field(classroom):
    default, groups, users = classroom
    p = resolve("tina", ["students", "tas"], default, groups, users)
    assert p.max_cpu == 1.5  # tas beats students
    assert p.max_mem == 2 * GiB  # only students set it; overrides default 4G
    assert p.max_gpu == 0.25
    assert set(p.allowed_images) == {"berth/python:*", "berth/pytorch:*"}
    assert p.idle_timeout == 7200
    assert p.image_allowed("berth/pytorch:2.3") and not p.image_allowed("evil/miner:1")


def test_unlimited_is_most_generous_and_user_overrides(classroom):
    default, groups, users = classroom
    p = resolve("carol", ["staff", "students"], default, groups, users)
    assert math.isinf(p.total_cpu)
    assert p.max_cpu == 8 and p.sources["max_cpu"] == "user carol"
    assert p.max_kernels == 10
    assert p.to_json()["total_cpu"] == "unlimited"


def test_explicit_request_over_limit_is_refused_with_the_limit_named(classroom):
    default, groups, users = classroom
    p = resolve("sam", ["students"], default, groups, users)
    with pytest.raises(PolicyError) as e:
        p.check(Resources.parse({"cpu": 3}))
    msg = e.value.message
    assert e.value.limit == "max_cpu" and e.value.status == 403
    assert "3 CPU" in msg and "at most 1 CPU" in msg and "2 CPU over" in msg and "group students" in msg
    with pytest.raises(PolicyError, match="max_mem"):
        p.check(Resources.parse({"mem": "3G"}))
    with pytest.raises(PolicyError, match="max_gpu"):
        p.check(Resources.parse({"gpu": 0.5}))


def test_derived_request_is_clamped(classroom):
    default, groups, users = classroom
    p = resolve("sam", ["students"], default, groups, users)
    r = p.check(Resources.parse({"cpu": 3, "mem": "3G"}), explicit=False)
    assert r.cpu == 1 and r.mem == 2 * GiB


def test_image_allowlist(classroom):
    default, groups, users = classroom
    p = resolve("sam", ["students"], default, groups, users)
    with pytest.raises(PolicyError) as e:
        p.check(Resources(), image="berth/pytorch:2.3")
    assert e.value.limit == "allowed_images"


def test_default_request_from_policy():
    p = resolve(
        "x",
        ["g"],
        PolicySpec.parse({"default": {"cpu": 1, "mem": "1G"}}),
        {"g": PolicySpec.parse({"default": {"cpu": 2}})},
    )
    r = p.default_request()
    assert r.cpu == 2 and r.mem == GiB


@pytest.mark.parametrize(
    "data, field",
    [
        ({"max_cpu": -1}, "policy.max_cpu"),
        ({"max_mem": "lots"}, "policy.max_mem"),
        ({"colour": "red"}, "policy.colour"),
        ({"max_kernels": 1.5}, "policy.max_kernels"),
        ({"default": {"cpu": 0}}, "cpu"),
    ],
)
def test_bad_policy_config_names_the_field(data, field):
    with pytest.raises(RequestError) as e:
        PolicySpec.parse(data)
    assert e.value.field == field


@pytest.mark.docker
async def test_a_start_without_a_request_takes_the_users_profile_and_the_policy_together(berth_service):  # noqa: F811
    """explicit > preset > profile > policy default: the profile and the policy are read at once."""
    svc = berth_service
    await svc.set_policy("user", "dora", {"max_cpu": 1, "max_mem": "1G", "default": {"cpu": 0.25, "mem": "256M"}})
    resources, _, policy = await svc.resolve_request("dora")
    assert (resources.cpu, resources.mem) == (0.25, 256 * 1024**2)  # no profile yet: the policy's default
    await svc.set_profile("dora", request={"cpu": 0.5, "mem": "384M"}, image=None)
    resources, _, policy = await svc.resolve_request("dora")
    assert (resources.cpu, resources.mem) == (0.5, 384 * 1024**2) and policy.max_cpu == 1
    resources, _, _ = await svc.resolve_request("dora", request={"cpu": 0.75})
    assert resources.cpu == 0.75 and resources.mem == 256 * 1024**2  # explicit: over the policy default

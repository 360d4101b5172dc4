"""Profiles in KubeSpawner's profile_list shape: parsed and refused by name, chosen per group, and the
kernel profiles are the sidebar's presets (pure, no engine)."""

from __future__ import annotations

import pytest
from traitlets import TraitError

from jupyter_berth.errors import RequestError
from jupyter_berth.profiles import ProfileCatalog, choose, for_user, parse_profile, parse_profile_list
from jupyter_berth.service import BerthService

PROFILES = [
    {"display_name": "Small", "default": True, "resources": {"cpu": 0.5, "mem": "1G"}},
    {
        "display_name": "GPU (half a T4)",
        "slug": "gpu",
        "description": "For deep learning",
        "image": "berth/singleuser:3.11",
        "kernel_image": "berth/python:3.11",
        "resources": {"cpu": 2, "mem": "8G", "gpu": 0.5},
        "groups": ["ml-lab"],
    },
    {"display_name": "Big server", "resources": {"cpu": 2}, "for": ["server"]},
]


def test_profiles_parse_with_slugs_and_kubespawner_overrides():
    small, gpu, big = parse_profile_list(PROFILES)
    assert (small.slug, small.default, small.groups, small.uses) == ("small", True, (), ("server", "kernel"))
    assert gpu.request == {"cpu": 2, "mem": "8G", "gpu": 0.5} and gpu.resources.mem == 8 * 2**30
    assert big.slug == "big-server" and big.uses == ("server",)
    kube = parse_profile(
        {
            "display_name": "From KubeSpawner",
            "kubespawner_override": {
                "image": "berth/singleuser:3.11",
                "cpu_guarantee": 1,
                "cpu_limit": 2,
                "mem_limit": "4G",
                "extra_resource_limits": {"nvidia.com/gpu": 1},
            },
        }
    )
    assert kube.image == "berth/singleuser:3.11" and kube.request == {"cpu": 2, "mem": "4G", "gpu": 1}


@pytest.mark.parametrize(
    "entry, field",
    [
        ({"display_name": "x", "colour": "red"}, "profile_list[0].colour"),
        ({"slug": "x"}, "profile_list[0].display_name"),
        ({"display_name": "x", "resources": {"mem": "lots"}}, "profile_list[0].resources"),
        ({"display_name": "x", "for": ["notebook"]}, "profile_list[0].for"),
        ({"display_name": "x", "kubespawner_override": {"node_selector": {}}}, "profile_list[0].kubespawner_override.node_selector"),
    ],
)
def test_a_bad_profile_is_refused_naming_the_entry_and_key(entry, field):
    with pytest.raises(RequestError) as e:
        parse_profile_list([entry])
    assert e.value.message.startswith(field), e.value.message


def test_duplicate_slugs_and_two_defaults_are_refused_at_config_time():
    with pytest.raises(TraitError, match="two profiles have the slug 'a'"):
        ProfileCatalog(profile_list=[{"display_name": "A"}, {"display_name": "a"}])
    with pytest.raises(TraitError, match="more than one default"):
        ProfileCatalog(profile_list=[{"display_name": "A", "default": True}, {"display_name": "B", "default": True}])


def test_profiles_are_offered_per_group_and_chosen_by_slug():
    profiles = parse_profile_list(PROFILES)
    student = for_user(profiles, ["class-a"], "server")
    assert [p.slug for p in student] == ["small", "big-server"]
    assert [p.slug for p in for_user(profiles, ["ml-lab"], "kernel")] == ["small", "gpu"]
    assert choose(student, None).slug == "small"  # the default when none is named
    with pytest.raises(RequestError, match="'gpu' is not a profile you can choose; yours: small, big-server"):
        choose(student, "gpu")


def test_kernel_profiles_are_the_services_presets():
    service = BerthService(presets={"tiny": {"cpu": 0.25, "mem": "256M"}})
    service.profiles.profile_list = PROFILES
    presets = service.profiles.kernel_presets()
    assert sorted(presets) == ["gpu", "small"]  # "big-server" is for servers only
    assert presets["gpu"].image == "berth/python:3.11" and presets["gpu"].resources.gpu == 0.5
    assert service.profiles.preset_visible("gpu", ["ml-lab"]) and not service.profiles.preset_visible("gpu", ["x"])
    assert service.profiles.preset_visible("tiny", [])  # a preset that is no profile: everyone's
    from traitlets.config import Config

    c = Config()
    c.ProfileCatalog.profile_list = PROFILES
    c.BerthService.presets = {"tiny": {"cpu": 0.25, "mem": "256M"}}
    configured = BerthService(config=c)
    assert sorted(p.name for p in configured.preset_list) == ["gpu", "small", "tiny"]

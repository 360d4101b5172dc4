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
        (
            {"display_name": "x", "kubespawner_override": {"node_selector": {}}},
            "profile_list[0].kubespawner_override.node_selector",
        ),
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


# ---- the spawn form: profiles through the options pipeline and the template --------------------------
def _ctx(**kw):
    from jupyter_berth.hub.spawn_form import FormContext, ImageChoice
    from jupyter_berth.policies import PolicySpec, resolve
    from jupyter_berth.resources import Resources

    policy = resolve("alice", ["class-a"], PolicySpec.parse({"max_cpu": 1, "max_mem": "2G"}))
    base = dict(
        policy=policy,
        images=[ImageChoice("berth/singleuser:3.11")],
        default_image="berth/singleuser:3.11",
        defaults=Resources.parse({"cpu": 0.5, "mem": "1G"}),
        profiles=tuple(
            parse_profile_list(
                [
                    {"display_name": "Small", "default": True, "resources": {"cpu": 0.25, "mem": "512M"}},
                    {"display_name": "Big", "resources": {"cpu": 0.75, "mem": "1536M"}, "image": "berth/other:1"},
                    {"display_name": "Huge", "resources": {"cpu": 4}},
                    {"display_name": "Greedy default", "slug": "greedy", "resources": {"mem": "8G"}},
                ]
            )
        ),
    )
    base.update(kw)
    return FormContext(**base)


def test_a_chosen_profile_decides_image_and_resources_and_is_checked_like_a_request():
    pytest.importorskip("dockerspawner")
    from jupyter_berth.errors import PolicyError
    from jupyter_berth.hub.spawn_form import resolve_options

    big = resolve_options({"profile": "big"}, _ctx())
    assert (big.image, big.resources.cpu, big.resources.mem, big.profile) == (
        "berth/other:1",
        0.75,
        1536 * 2**20,
        "big",
    )
    assert resolve_options({"profile": "big", "mem": "1G"}, _ctx()).resources.mem == 2**30  # a field overrides it
    implied = resolve_options({}, _ctx())  # the default profile, when none is named
    assert (implied.resources.cpu, implied.resources.mem, implied.profile) == (0.25, 512 * 2**20, "small")
    custom = resolve_options({"profile": "custom"}, _ctx())
    assert (custom.resources.cpu, custom.profile) == (0.5, None)
    with pytest.raises(PolicyError, match="max_cpu"):
        resolve_options({"profile": "huge"}, _ctx())  # chosen over a limit: refused, naming it
    greedy = _ctx(
        profiles=tuple(parse_profile_list([{"display_name": "G", "default": True, "resources": {"mem": "8G"}}]))
    )
    assert resolve_options({}, greedy).resources.mem == 2 * 2**30  # an implied default over a limit: clamped
    with pytest.raises(RequestError, match="'nope' is not a profile you can choose"):
        resolve_options({"profile": "nope"}, _ctx())


def test_the_form_offers_profiles_and_a_profile_choice_drops_the_custom_fields():
    pytest.importorskip("dockerspawner")
    from jupyter_berth.hub.spawn_form import options_from_form, render_form

    page = render_form(_ctx())
    assert 'name="profile" value="small" checked' in page and 'value="big"' in page and 'value="custom"' in page
    assert "0.75 CPU" in page and "berth/other:1" in page
    form = {"profile": ["big"], "image": ["berth/singleuser:3.11"], "cpu": ["0.5"], "mem": ["1"], "folders": ["a"]}
    assert options_from_form(form) == {"profile": "big", "folders": ["a"]}
    form["profile"] = ["custom"]
    assert options_from_form(form)["cpu"] == "0.5"


def test_an_admin_template_overrides_blocks_of_the_spawn_form(tmp_path):
    pytest.importorskip("dockerspawner")
    from jupyter_berth.hub.spawn_form import render_form
    from jupyter_berth.hub.usage_templates import environment

    (tmp_path / "spawn_form.html").write_text(
        '{% extends "berth/spawn_form.html" %}{% block note %}<p class="course">Ask your TA first.</p>{% endblock %}'
    )
    page = render_form(_ctx(), environment([str(tmp_path)]))
    assert '<p class="course">Ask your TA first.</p>' in page and "waits in a queue" not in page
    assert 'name="profile" value="small" checked' in page  # the rest is Berth's

"""Profiles on a real hub: the spawn form (from an admin's template) offers the user's profiles, a REST
spawn with {"profile": slug} gets the profile's resources on its container, a profile of another group is
refused, and the sidebar's presets (the service's berth/api/presets) are the kernel profiles the user may see."""

from __future__ import annotations

import docker
import httpx
import pytest

from tests.hub_process import HubProcess, running, server_image_or_skip
from tests.test_hub_spawn import api, wait_ready

pytestmark = [pytest.mark.docker, pytest.mark.slow]

PROFILES = [
    {"display_name": "Small", "default": True, "resources": {"cpu": 0.25, "mem": "512M"}},
    {
        "display_name": "Lab day",
        "slug": "lab",
        "description": "For the Tuesday lab",
        "resources": {"cpu": 0.75, "mem": "768M"},
    },
    {"display_name": "ML lab", "slug": "ml", "resources": {"cpu": 1, "mem": "1G"}, "groups": ["ml-lab"]},
    {"display_name": "Notebook kernel", "slug": "kern", "resources": {"cpu": 0.5, "mem": "1G"}, "for": ["kernel"]},
]


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    server_image_or_skip()
    root = tmp_path_factory.mktemp("profiles")
    templates = root / "site-templates"
    templates.mkdir()
    (templates / "spawn_form.html").write_text(
        '{% extends "berth/spawn_form.html" %}{% block note %}<p class="course">Physics 101: ask your TA.</p>'
        "{% endblock %}"
    )
    hub = HubProcess(
        root,
        users=("alice", "teacher"),
        policies={"default": {"max_cpu": 1, "max_mem": "2G"}, "groups": {}, "users": {}},
        berth_extra=f"c.ProfileCatalog.profile_list = {PROFILES!r}\nc.BerthHubService.template_paths = [{str(templates)!r}]\n",
    )
    with running(hub) as h:
        yield h


def test_the_spawn_form_from_the_admins_template_offers_the_users_profiles(hub):
    with httpx.Client(base_url=hub.url, timeout=60) as browser:
        browser.get("/hub/login")
        browser.post(
            "/hub/login", data={"username": "alice", "password": "berth-demo", "_xsrf": browser.cookies.get("_xsrf")}
        )
        form = browser.get("/hub/spawn").text
    assert 'name="profile" value="small" checked' in form and 'value="lab"' in form and "For the Tuesday lab" in form
    assert 'value="ml"' not in form and 'value="kern"' not in form  # another group's; a kernel-only profile
    assert "Physics 101: ask your TA." in form and "waits in a queue" not in form  # the admin's block


def test_a_rest_spawn_with_a_profile_gets_its_resources(hub):
    r = api(hub, "POST", "/users/alice/server", json={"profile": "ml"})
    assert r.status_code == 400 and "'ml' is not a profile you can choose" in r.json()["message"], r.text
    r = api(hub, "POST", "/users/alice/server", json={"profile": "lab"})
    assert r.status_code in (201, 202), r.text
    server = wait_ready(hub, "alice", timeout=90)
    assert server["user_options"] == {"profile": "lab"}
    (container,) = [
        c
        for c in docker.from_env().containers.list(filters={"label": ["io.jupyter.berth.kind=server", hub.site_label]})
        if c.name.startswith(f"berth-{hub.site}-server-alice")  # (an adopted server-pool container keeps its labels)
    ]
    hc = container.attrs["HostConfig"]
    assert (hc["Memory"], hc["CpuQuota"]) == (768 * 2**20, 75000)


def test_the_sidebars_presets_are_the_kernel_profiles_the_user_may_see(hub):
    token = hub.new_token("alice")
    hub.wait_for_service(token)
    r = httpx.get(hub.service_url + "berth/api/presets", headers={"Authorization": f"token {token}"}, timeout=30)
    assert r.status_code == 200, r.text
    presets = {p["name"]: p for p in r.json()["presets"]}
    assert {"kern", "lab", "small"} <= set(presets) and "ml" not in presets  # "ml" is another group's
    assert presets["kern"]["resources"]["cpu"] == 0.5 and presets["lab"]["description"] == "For the Tuesday lab"

"""A jupyterhub_config.py written as DockerSpawner's docs show runs unchanged on BerthSpawner with a real hub
(per-user volume, a GPU device request, allowed images, ...) and each setting is visible on the container;
a configuration with a setting that breaks isolation does not start, naming it.

This host has no GPU: the device is *declared* (c.GpuManager.devices), and handed over by environment
(c.BerthSpawner.gpu_exposure = "environment", a Berth setting; Docker here has no NVIDIA toolkit).
"""

from __future__ import annotations

import secrets
import time

import docker
import httpx
import pytest

from tests.hub_process import SERVER_IMAGE, HubProcess, running, server_image_or_skip
from tests.test_hub_spawn import api, wait_ready

pytestmark = [pytest.mark.docker, pytest.mark.slow]

DEVICE = {"uuid": "GPU-declared-dsconfig-0", "name": "Declared T4", "memory": "16G"}
POLICIES = {
    "default": {"max_cpu": 1, "max_mem": "2G", "max_gpu": 1, "total_gpu": 1, "default": {"cpu": 0.25, "mem": "256M"}},
    "groups": {},
    "users": {},
}


def dockerspawner_docs_config(prefix: str, alias: str, network: str) -> str:
    """As DockerSpawner's docs write it (the names made unique for this run)."""
    return f"""
import docker

notebook_dir = "/home/jovyan/work"
c.DockerSpawner.notebook_dir = notebook_dir
c.DockerSpawner.volumes = {{
    "{prefix}user-{{username}}": notebook_dir,
    "{prefix}course-{{username}}": {{"bind": "/home/jovyan/course", "mode": "ro"}},
}}
c.DockerSpawner.extra_host_config = {{
    "device_requests": [docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])],
    "dns_search": ["course.example.org"],
}}
c.DockerSpawner.allowed_images = {{"Python 3.11": "{SERVER_IMAGE}", "Course image": "{alias}"}}
c.DockerSpawner.extra_create_kwargs = {{"labels": {{"org.example.course": "physics"}}}}
c.DockerSpawner.environment = {{"COURSE": "physics"}}
c.DockerSpawner.post_start_cmd = "touch /tmp/berth-post-start"
c.DockerSpawner.name_template = "{{prefix}}-{{site}}-{{username}}"
c.DockerSpawner.mem_limit = "768M"
c.DockerSpawner.network_name = "{network}"
c.DockerSpawner.remove = False

c.BerthSpawner.gpu_exposure = "environment"  # Berth's own: this Docker has no NVIDIA toolkit
"""


@pytest.fixture(scope="module")
def ds_hub(tmp_path_factory):
    server_image_or_skip()
    client = docker.from_env()
    alias = f"berth-t{secrets.token_hex(3)}/course:1"
    client.images.get(SERVER_IMAGE).tag(alias)
    hub = HubProcess(
        tmp_path_factory.mktemp("dsconfig"),
        users=("alice", "teacher"),
        policies=POLICIES,
        berth_extra=f"c.GpuManager.devices = [{DEVICE!r}]\n",
    )
    network = hub.network_prefix + "coursedb"
    hub.config.write_text(hub.config.read_text() + dockerspawner_docs_config(hub.network_prefix, alias, network))
    client.networks.create(network, driver="bridge", labels={"io.jupyter.berth.site": hub.site})
    try:
        with running(hub) as h:
            h.alias, h.extra_network = alias, network
            yield h
    finally:
        client.images.remove(alias)  # the tag only
        client.close()


def _container(hub, user: str):
    client = docker.from_env()
    found = [
        c
        for c in client.containers.list(all=True, filters={"label": ["io.jupyter.berth.kind=server", hub.site_label]})
        if c.labels.get("io.jupyter.berth.owner") == user
    ]
    assert len(found) == 1, found
    return found[0]


def test_dockerspawner_docs_config_runs_unchanged_and_each_setting_reaches_the_container(ds_hub):
    hub = ds_hub
    with httpx.Client(base_url=hub.url, timeout=60) as browser:  # allowed_images are the form's images
        browser.get("/hub/login")
        browser.post(
            "/hub/login", data={"username": "alice", "password": "berth-demo", "_xsrf": browser.cookies.get("_xsrf")}
        )
        form = browser.get("/hub/spawn").text
    assert "Course image" in form and hub.alias in form and "Python 3.11" in form

    r = api(hub, "POST", "/users/alice/server", json={"image": hub.alias})
    assert r.status_code in (201, 202), r.text
    wait_ready(hub, "alice", timeout=90)
    container = _container(hub, "alice")
    attrs = container.attrs
    assert container.name == f"jupyter-{hub.site}-alice"  # name_template ({prefix} is DockerSpawner's "jupyter")
    assert attrs["Config"]["Image"] == hub.alias  # allowed_images
    mounts = {m["Destination"]: m for m in attrs["Mounts"]}
    assert (
        mounts["/home/jovyan/work"]["Name"] == f"{hub.network_prefix}user-alice" and mounts["/home/jovyan/work"]["RW"]
    )
    assert mounts["/home/jovyan/course"]["Name"] == f"{hub.network_prefix}course-alice"
    assert not mounts["/home/jovyan/course"]["RW"]  # volumes, read-only as given
    env = dict(e.split("=", 1) for e in attrs["Config"]["Env"])
    assert env["COURSE"] == "physics"  # environment
    assert env["NVIDIA_VISIBLE_DEVICES"] == DEVICE["uuid"] and "1 GPU" in env["BERTH_LIMITS"]  # the device request
    assert attrs["Config"]["Labels"]["org.example.course"] == "physics"  # extra_create_kwargs
    assert attrs["Config"]["Labels"]["io.jupyter.berth.owner"] == "alice"
    hc = attrs["HostConfig"]
    assert hc["DnsSearch"] == ["course.example.org"]  # extra_host_config, merged after the hardening ...
    assert hc["CapDrop"] == ["ALL"] and "no-new-privileges" in hc["SecurityOpt"] and not hc["Privileged"]  # ... kept
    assert hc["Memory"] == 768 * 2**20  # mem_limit: the default request
    networks = set(attrs["NetworkSettings"]["Networks"])
    assert networks == {f"{hub.network_prefix}{hub.site}-alice", hub.extra_network}  # network_name, besides the user's
    done = container.exec_run(["test", "-f", "/tmp/berth-post-start"])
    assert done.exit_code == 0  # post_start_cmd

    r = api(hub, "DELETE", "/users/alice/server")
    assert r.status_code in (202, 204), r.text
    deadline = time.monotonic() + 30
    while api(hub, "GET", "/users/alice").json()["servers"] and time.monotonic() < deadline:
        time.sleep(0.3)
    container.reload()
    assert container.status == "exited"  # remove = False: kept, stopped


@pytest.mark.parametrize(
    "setting, words",
    [
        ('c.DockerSpawner.extra_host_config = {"privileged": True}', "privileged is refused"),
        ('c.DockerSpawner.volumes = {"/var/run/docker.sock": "/var/run/docker.sock"}', "engine's socket"),
        ('c.DockerSpawner.extra_host_config = {"cap_add": ["NET_ADMIN"]}', "cap_add is refused"),
        ('c.DockerSpawner.mounts = [{"source": "x", "target": "/x", "type": "volume"}]', "volumes / read_only_volumes"),
    ],
)
def test_a_hub_with_a_refused_setting_does_not_start(tmp_path, setting, words):
    server_image_or_skip()
    hub = HubProcess(tmp_path, users=("alice",), extra=setting + "\n")
    with pytest.raises(RuntimeError) as e:
        hub.start(timeout=60)
    hub.stop()
    name = setting.split(" =")[0]
    assert f"{name}: " in str(e.value) and words in str(e.value), str(e.value)[-2000:]

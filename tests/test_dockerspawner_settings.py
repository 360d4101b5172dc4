"""DockerSpawner's settings in BerthSpawner: the table covers every trait, isolation breakers are refused by
name, other extra Docker arguments only from the allowlist, merged after the hardening (pure, no engine)."""

from __future__ import annotations

import docker.types
import pytest
from traitlets.config import Config

from jupyter_berth.errors import RequestError
from jupyter_berth.resources import Resources
from jupyter_berth.runtime.base import ContainerSpec, Mount
from jupyter_berth.runtime.hardening import create_kwargs, host_config_kwargs

dockerspawner = pytest.importorskip("dockerspawner")
from jupyterhub.spawner import Spawner  # noqa: E402

from jupyter_berth.hub import dockerspawner_settings as ds  # noqa: E402


def _spec(**kw) -> ContainerSpec:
    kw.setdefault("labels", {})
    return ContainerSpec(
        name="berth-x", image="img", command=["x"], resources=Resources.parse({"cpu": 1, "mem": "1G"}), **kw
    )


def test_every_spawner_and_dockerspawner_setting_has_a_verdict():
    traits = set(dockerspawner.DockerSpawner.class_traits(config=True)) | set(Spawner.class_traits(config=True))
    missing = traits - set(ds.BY_NAME)
    assert not missing, f"settings without a verdict in dockerspawner_settings.SETTINGS: {sorted(missing)}"
    assert {s.verdict for s in ds.SETTINGS} == {"jupyterhub", "honoured", "refused"}


@pytest.mark.parametrize(
    "extra, words",
    [
        ({"privileged": True}, "privileged is refused"),
        ({"cap_add": ["SYS_ADMIN"]}, "cap_add is refused"),
        ({"network_mode": "host"}, "network_mode is refused"),
        ({"pid_mode": "host"}, "pid_mode is refused"),
        ({"security_opt": ["seccomp=unconfined"]}, "security_opt is refused"),
        ({"binds": {"/var/run/docker.sock": {"bind": "/var/run/docker.sock"}}}, "binds is refused"),
    ],
)
def test_isolation_breakers_are_refused_by_name_in_config_and_in_the_runtime(extra, words):
    c = Config()
    c.DockerSpawner.extra_host_config = extra
    with pytest.raises(RequestError) as e:
        ds.check_config(c)
    assert e.value.message.startswith("c.DockerSpawner.extra_host_config: ") and words in e.value.message
    with pytest.raises(RequestError) as e:
        host_config_kwargs(_spec(extra_host_config=extra))
    assert words in e.value.message


def test_the_engine_socket_in_volumes_is_refused():
    c = Config()
    c.DockerSpawner.volumes = {"/var/run/docker.sock": "/var/run/docker.sock"}
    with pytest.raises(
        RequestError, match=r"c\.DockerSpawner\.volumes: refused: it mounts the container engine's socket"
    ):
        ds.check_config(c)


def test_keys_outside_the_allowlist_name_the_berth_setting_to_use():
    c = Config()
    c.DockerSpawner.extra_host_config = {"mem_limit": "4G"}
    with pytest.raises(RequestError, match=r"mem_limit is not merged .*use c\.Spawner\.mem_limit"):
        ds.check_config(c)
    c = Config()
    c.DockerSpawner.extra_create_kwargs = {"user": "0"}
    with pytest.raises(RequestError, match=r"c\.DockerSpawner\.extra_create_kwargs: user .*container_user"):
        ds.check_config(c)


@pytest.mark.parametrize(
    "section, name, value, instead",
    [
        ("DockerSpawner", "mounts", [{"source": "a", "target": "/a"}], "volumes"),
        ("DockerSpawner", "pull_policy", "always", "berth images bootstrap"),
        ("DockerSpawner", "use_internal_ip", False, "user's network"),
        ("DockerSpawner", "host_ip", "0.0.0.0", "no port is published"),
        ("DockerSpawner", "links", {"db": "db"}, "network_name"),
        ("DockerSpawner", "client_kwargs", {"base_url": "tcp://x"}, "DOCKER_HOST"),
    ],
)
def test_refused_settings_name_themselves_and_the_berth_equivalent(section, name, value, instead):
    c = Config()
    c[section][name] = value
    with pytest.raises(RequestError) as e:
        ds.check_config(c)
    assert e.value.message.startswith(f"c.{section}.{name}: ") and instead in e.value.message


def test_harmless_values_of_refusable_settings_pass():
    c = Config()
    c.DockerSpawner.pull_policy = "never"
    c.DockerSpawner.use_internal_ip = True
    c.DockerSpawner.network_name = "course-db"
    c.DockerSpawner.extra_host_config = {
        "dns_search": ["example.org"],
        "device_requests": [docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])],
    }
    c.Spawner.mem_limit = "2G"
    ds.check_config(c)
    c.DockerSpawner.network_name = "host"
    with pytest.raises(RequestError, match="c.DockerSpawner.network_name"):
        ds.check_config(c)


def test_extras_are_merged_after_the_hardening():
    kwargs = host_config_kwargs(_spec(extra_host_config={"dns_search": ["example.org"], "read_only": True}))
    assert kwargs["dns_search"] == ["example.org"] and kwargs["read_only"] is True
    assert kwargs["cap_drop"] == ["ALL"] and kwargs["privileged"] is False
    created = create_kwargs(
        _spec(
            labels={"io.jupyter.berth.owner": "alice"},
            extra_create={"labels": {"course": "physics", "io.jupyter.berth.owner": "mallory"}, "working_dir": "/srv"},
        )
    )
    assert created["labels"]["course"] == "physics" and created["labels"]["io.jupyter.berth.owner"] == "alice"
    assert created["working_dir"] == "/srv" and created["user"] == "1000:1000"
    with pytest.raises(RequestError, match="oom_score_adj"):
        host_config_kwargs(_spec(extra_host_config={"oom_score_adj": -1000}))
    assert host_config_kwargs(_spec(mounts=[Mount("vol", "/w")]))["mounts"][0]["Source"] == "vol"


def test_a_gpu_device_request_becomes_the_servers_gpu_request():
    all_gpus = docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])
    assert ds.gpu_device_request({"device_requests": [all_gpus], "dns": ["1.1.1.1"]}) == (-1.0, {"dns": ["1.1.1.1"]})
    two = {"Driver": "nvidia", "Count": 2, "Capabilities": [["gpu", "utility"]]}
    assert ds.gpu_device_request({"device_requests": [two]}) == (2.0, {})
    ids = docker.types.DeviceRequest(device_ids=["0", "1", "2"], capabilities=[["gpu"]])
    assert ds.gpu_device_request({"device_requests": [ids]})[0] == 3.0
    assert ds.gpu_device_request({}) == (None, {})
    other = {"Driver": "fancy", "Count": 1, "Capabilities": [["fpga"]]}
    assert ds.gpu_device_request({"device_requests": [other]}) == (None, {"device_requests": [other]})


def test_mem_and_cpu_limits_and_guarantees_are_the_default_request():
    base = {"cpu": 0.5, "mem": "1G"}
    assert ds.default_request(base, (None, None, None, None), None) == base
    assert ds.default_request(base, (2 * 2**30, None, None, 0.25), 1.0) == {"cpu": 0.25, "mem": 2 * 2**30, "gpu": 1.0}
    assert ds.default_request(base, (2**30, 2**29, 2.0, 1.0), None) == {"cpu": 2.0, "mem": 2**30}


def test_the_admin_guide_lists_every_setting_with_its_verdict():
    from pathlib import Path

    text = (Path(__file__).parent.parent / "docs" / "admin-hub.md").read_text()
    for s in ds.SETTINGS:
        if s.verdict == "jupyterhub":
            assert f"`{s.name}`" in text, s.name
        else:
            assert f"| `{s.name}` | {s.verdict} |" in text, s.name
    assert "still apply" not in text

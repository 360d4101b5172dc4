"""The hub service's wire format and start-request parsing, without a hub: errors crossing the
wire with their class and fields, mounts confined to the caller's own volume, the environment
allowlist, dockerspawner-compatible volume names, malformed starts named by field."""

from __future__ import annotations

import json

import pytest

from jupyter_berth.errors import ConflictError, EngineError, NotFoundError, PolicyError, RequestError
from jupyter_berth.hub.start_request import UserVolume, parse_start, volume_name
from jupyter_berth.kernels.remote import RemoteBackend
from jupyter_berth.runtime.base import Mount
from jupyter_berth.wire import error_from_json, error_to_json


@pytest.mark.parametrize(
    "exc",
    [
        RequestError("mem", "too big"),
        PolicyError("cpu: over", limit="max_cpu"),
        NotFoundError("no running kernel 'x' of yours"),
        ConflictError("taken"),
    ],
)
def test_errors_cross_the_wire_with_class_message_and_fields(exc):
    back = error_from_json(exc.status, json.loads(json.dumps(error_to_json(exc))))
    assert type(back) is type(exc) and back.message == exc.message and back.status == exc.status
    assert getattr(back, "field", None) == getattr(exc, "field", None)
    assert getattr(back, "limit", None) == getattr(exc, "limit", None)


VOLUME = UserVolume(source="jupyterhub-user-alice", target="/home/jovyan/work")


@pytest.mark.parametrize(
    "target", ["/home/jovyan/work", "/home/jovyan/work/project", "/home/jovyan", "/home/jovyan/work/"]
)
def test_a_mount_of_the_server_root_or_work_dir_becomes_the_callers_own_volume(target):
    kw = parse_start({"kernel_id": "k", "mounts": [{"source": "/var/run", "target": target}]}, VOLUME)
    assert kw["mounts"] == [Mount(source="jupyterhub-user-alice", target="/home/jovyan/work")]


@pytest.mark.parametrize("target", ["/etc", "/home/jovyan/workshop", "/home/other"])
def test_a_mount_outside_the_work_dir_is_refused(target):
    with pytest.raises(PolicyError, match="only your own server's work directory") as e:
        parse_start({"kernel_id": "k", "mounts": [{"source": "jupyterhub-user-bob", "target": target}]}, VOLUME)
    assert e.value.limit == "mounts"


def test_env_passes_only_the_allowlist():
    env = {
        "JPY_SESSION_NAME": "a.ipynb",
        "KERNEL_X": "1",
        "BERTH_NOTICE": "oom",
        "JPY_API_TOKEN": "t",
        "JUPYTERHUB_API_TOKEN": "t",
        "BERTH_USER": "bob",
        "PATH": "/evil",
        "LD_PRELOAD": "x",
    }
    assert parse_start({"kernel_id": "k", "env": env}, VOLUME)["env"] == {
        "JPY_SESSION_NAME": "a.ipynb",
        "KERNEL_X": "1",
        "BERTH_NOTICE": "oom",
    }


def test_volume_names_are_escaped_like_dockerspawner():
    assert volume_name("jupyterhub-user-{username}", "alice") == "jupyterhub-user-alice"
    assert volume_name("jupyterhub-user-{username}", "a.b-C") == "jupyterhub-user-a-2eb-2d-43"
    assert volume_name("v-{raw_username}", "a.b") == "v-a.b"


@pytest.mark.parametrize(
    "body, field",
    [
        ({"kernel_id": "k", "request": {"cpu": 1}, "resources": {"cpu": 1}}, "resources"),
        ({"kernel_id": "k", "resources": {"cpu": 1}}, "image"),
        ({"kernel_id": "k", "cwd": "relative/dir"}, "cwd"),
        ({"kernel_id": "k", "ip": "not-an-ip"}, "ip"),
        ({"kernel_id": "k", "folders": "data"}, "folders"),
        ({"kernel_id": "k", "mounts": [{"source": "x"}]}, "mounts[0].target"),
    ],
)
def test_malformed_start_fields_are_named(body, field):
    with pytest.raises(RequestError) as e:
        parse_start(body, VOLUME)
    assert e.value.field == field


async def test_get_backend_is_remote_when_a_service_url_is_set(monkeypatch):
    from jupyter_berth.kernels.backend import get_backend

    monkeypatch.setenv("BERTH_SERVICE_URL", "http://127.0.0.1:1/services/berth")
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "tok")
    backend = await get_backend()
    assert isinstance(backend, RemoteBackend)
    assert (backend.url, backend.token) == ("http://127.0.0.1:1/services/berth/", "tok")
    backend.retry_seconds = 0.3  # nothing listens there: refused, retried, then a 503 naming the URL
    with pytest.raises(EngineError, match="does not answer"):
        await backend.stop_kernel("k")

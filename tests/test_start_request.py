"""One start request from the sidebar to the engine (jupyter_berth.start_request), without an engine.

The sidebar's body → the start environment → the provisioner → the service's JSON → the hub's
service: each hand reads what the previous one wrote with the same type, and the kernel's
environment passes one allowlist whichever way the start went.
"""

from __future__ import annotations

import json

import pytest

from jupyter_berth.errors import RequestError
from jupyter_berth.hub.start_request import UserVolume, parse_start
from jupyter_berth.kernels.provisioner import BerthProvisioner
from jupyter_berth.resources import Resources
from jupyter_berth.runtime.base import Mount
from jupyter_berth.server.handlers.kernels import parse_start as parse_sidebar_start
from jupyter_berth.start_request import REQUEST_ENV, StartRequest, kernel_env

SIDEBAR_BODY = {
    "image": "berth/python:3.11",
    "resources": {"cpu": 2, "mem": "4G"},
    "folders": ["datasets"],
    "path": "project/analysis.ipynb",
}


def test_the_sidebars_start_travels_through_the_environment_unchanged():
    start, path = parse_sidebar_start(dict(SIDEBAR_BODY))
    assert path == "project/analysis.ipynb"
    env = start.to_env()
    assert set(env) == {REQUEST_ENV["request"], REQUEST_ENV["image"], REQUEST_ENV["folders"]}
    assert json.loads(env["BERTH_REQUEST"]) == {"cpu": 2, "mem": "4G"}
    back = StartRequest.from_env({**env, "PATH": "/usr/bin"})
    assert (back.request, back.image, back.folders, back.preset) == (
        {"cpu": 2, "mem": "4G"},
        "berth/python:3.11",
        ["datasets"],
        None,
    )


def test_the_services_json_round_trips_and_the_hub_binds_the_callers_volume():
    start = StartRequest(
        kernel_id="k1",
        request={"cpu": 1},
        image="berth/python:3.11",
        cwd="/home/jovyan/work/project",
        mounts=[Mount("/home/jovyan/work", "/home/jovyan/work")],
        env={"JPY_SESSION_NAME": "a.ipynb"},
        key="secret",
        folders=["datasets"],
    )
    body = json.loads(json.dumps(start.to_json()))  # what travels over HTTP
    assert StartRequest.from_json(body) == start
    kw = parse_start(body, UserVolume("jupyterhub-user-alice", "/home/jovyan/work"))
    assert kw["mounts"] == [Mount("jupyterhub-user-alice", "/home/jovyan/work")]
    assert kw["request"] == {"cpu": 1} and kw["folders"] == ["datasets"] and kw["key"] == "secret"
    grant = StartRequest(kernel_id="k1", image="berth/python:3.11", resources=Resources(cpu=0.5), ip="10.213.0.7")
    assert StartRequest.from_json(json.loads(json.dumps(grant.to_json()))) == grant


def test_one_environment_filter_for_every_way_a_kernel_starts():
    server_env = {
        "JPY_SESSION_NAME": "a.ipynb",
        "KERNEL_X": "1",
        "MPLBACKEND": "agg",
        "JUPYTER_TOKEN": "the server's own token",  # the provisioner's old allowlist let this through
        "JPY_API_TOKEN": "t",
        "JUPYTERHUB_API_TOKEN": "t",
        "JUPYTER_CONFIG_DIR": "/home/alice/.jupyter",
        "BERTH_REQUEST": '{"cpu": 1}',
        "BERTH_SERVICE_URL": "http://hub",
        "PATH": "/evil",
        "LD_PRELOAD": "x",
    }
    allowed = {"JPY_SESSION_NAME": "a.ipynb", "KERNEL_X": "1", "MPLBACKEND": "agg"}
    assert kernel_env(server_env) == allowed
    # the provisioner (standalone and hub alike) and the hub's service apply the same filter
    assert BerthProvisioner(kernel_id="k", parent=None)._kernel_env(server_env) == allowed
    assert parse_start({"kernel_id": "k", "env": server_env}, None)["env"] == allowed


def test_the_provisioners_notice_is_its_own():
    provisioner = BerthProvisioner(kernel_id="k", parent=None)
    assert "BERTH_NOTICE" not in provisioner._kernel_env({"BERTH_NOTICE": "inherited"})
    provisioner._notice = "the kernel was stopped because it used more than its 1 GiB memory limit"
    assert provisioner._kernel_env({})["BERTH_NOTICE"] == provisioner._notice


@pytest.mark.parametrize(
    "body, field",
    [
        ({"resources": {"cpu": "lots"}}, "cpu"),
        ({"resources": [1]}, "resources"),
        ({"image": "Not A Ref"}, "image"),
        ({"folders": "data"}, "folders"),
        ({"preset": ""}, "preset"),
        ({"path": "../etc"}, "path"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_the_sidebars_malformed_fields_are_named(body, field):
    with pytest.raises(RequestError) as e:
        parse_sidebar_start(body)
    assert e.value.field == field


@pytest.mark.parametrize(
    "env, field",
    [
        ({"BERTH_REQUEST": "{not json"}, "BERTH_REQUEST"),
        ({"BERTH_REQUEST": "[1]"}, "BERTH_REQUEST"),
        ({"BERTH_REQUEST": '{"mem": "lots"}'}, "mem"),
        ({"BERTH_FOLDERS": '"data"'}, "BERTH_FOLDERS"),
        ({"BERTH_IMAGE": "Not A Ref"}, "BERTH_IMAGE"),
    ],
)
def test_a_malformed_start_environment_names_its_variable(env, field):
    with pytest.raises(RequestError) as e:
        StartRequest.from_env(env)
    assert e.value.field == field

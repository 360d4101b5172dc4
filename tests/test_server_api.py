"""The Berth REST API of the server extension against a real jupyter_server and real kernels.

Sync tests that drive pytest-jupyter's loop (see tests/test_server_extension.py for why)."""

from __future__ import annotations

import json

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPClientError

from jupyter_berth.kernels import backend

pytestmark = [pytest.mark.docker]

ROUTES = ["openapi.json", "info", "presets", "profile", "policy", "gpus", "kernels", "budget", "queue", "jobs"]


@pytest.fixture
def jp_server_config(tmp_path):
    return {
        "ServerApp": {"jpserver_extensions": {"jupyter_berth.server": True}},
        "BerthService": {
            "data_dir": str(tmp_path / "berth-data"),
            "presets": {"small": {"cpu": 0.5, "mem": "256M", "display_name": "Small"}},
            "default_policy": {
                "max_cpu": 1,
                "max_mem": "1G",
                "total_cpu": 1.0,
                "default": {"cpu": 0.5, "mem": "512M"},
                "budget": {"cpu_hours": 20, "period": {"name": "autumn", "start": "2026-09-01", "end": "2100-01-01"}},
            },
        },
        "UsageTracker": {"sample_interval": 0},
    }


@pytest.fixture
def api(jp_asyncio_loop, jp_serverapp, jp_fetch, jp_root_dir):
    """Call the API: api(method, path, body=None, token=True) -> (status, json)."""
    import os

    os.chmod(jp_root_dir, 0o777)
    jp_asyncio_loop.run_until_complete(jp_serverapp.extension_manager.start_all_extensions())

    def call(method, path, body=None, token=True, params=None):
        async def go():
            kw = {"method": method, "raise_error": False}
            if params:
                kw["params"] = params
            if body is not None:
                kw["body"] = body if isinstance(body, str) else json.dumps(body)
            elif method in ("POST", "PUT"):
                kw["body"] = ""
            if token:
                r = await jp_fetch("berth", "api", *path.split("/"), **kw)
            else:  # no credentials at all
                url = f"http://localhost:{jp_serverapp.port}{jp_serverapp.base_url}berth/api/{path}"
                try:
                    r = await AsyncHTTPClient().fetch(url, **{k: v for k, v in kw.items() if k != "raise_error"})
                except HTTPClientError as e:
                    r = e.response
            text = r.body.decode() if r.body else ""
            return r.code, (json.loads(text) if text.strip().startswith(("{", "[")) else text)

        return jp_asyncio_loop.run_until_complete(go())

    yield call
    jp_asyncio_loop.run_until_complete(backend.shutdown_embedded_service())


def test_every_route_refuses_a_request_without_credentials(api):
    for route in ROUTES:
        status, _ = api("GET", route, token=False)
        assert status == 403, route
    status, _ = api("POST", "kernels", {"resources": {"cpu": 0.5}}, token=False)
    assert status == 403
    status, _ = api("PUT", "profile", {"request": {"cpu": 1}}, token=False)
    assert status == 403
    assert api("GET", "kernels")[1] == {"kernels": []}  # nothing was started


def test_read_routes(api):
    status, doc = api("GET", "openapi.json")
    assert status == 200 and doc["openapi"].startswith("3.") and "/berth/api/kernels" in doc["paths"]
    status, info = api("GET", "info")
    assert info["mode"] == "standalone" and info["engine"]["state"] == "up"
    assert [k["name"] for k in info["resources"]] == ["cpu", "mem", "pids", "shm", "gpu", "disk"]  # the registry's
    assert info["disk"]["mode"] in ("enforced", "measured") and info["disk"]["why"]  # how disk limits hold here
    assert info["disk"]["interval_s"] is None and info["disk"]["grace_s"] == 60  # sampling is off here: not measured
    status, presets = api("GET", "presets")
    assert presets["presets"][0]["name"] == "small" and presets["presets"][0]["resources"]["mem"] == 256 * 1024**2
    status, policy = api("GET", "policy")
    assert policy["policy"]["max_cpu"] == 1 and policy["remaining"]["cpu"] == 1.0
    status, gpus = api("GET", "gpus")
    assert gpus["devices"] == [] and "no NVIDIA GPU" in gpus["message"]


def test_my_budget(api):
    status, body = api("GET", "budget")
    assert status == 200 and body["notices"] == []
    (budget,) = body["budgets"]
    assert budget["scope"] == "user" and budget["period"] == "autumn" and budget["set_by"] == "default"
    assert budget["limits"] == {"cpu_hours": 20} and budget["remaining"] == {"cpu_hours": 20}
    assert budget["resets_at"].startswith("2100-01-01")
    # JupyterLab's ServerConnection adds a cache-buster to every GET (?1796669598876): not a parameter
    assert api("GET", "budget", params={"1796669598876": ""}) == (200, body)
    status, refused = api("GET", "budget", params={"user": "bob"})
    assert status == 400 and refused["field"] == "user"
    assert api("GET", "queue") == (200, {"waiting": []})
    status, body = api("DELETE", "queue/no-such-kernel")
    assert status == 404 and "no start of kernel 'no-such-kernel' of yours is waiting" in body["message"]


def test_profile_validation_changes_nothing_when_refused(api):
    assert api("GET", "profile") == (200, {"request": {}, "image": None})
    status, body = api("PUT", "profile", {"request": {"mem": "lots"}})
    assert status == 400 and body["field"] == "mem"
    status, body = api("PUT", "profile", {"request": {"cpu": 4}})
    assert status == 403 and "max_cpu" in body["message"]
    status, body = api("PUT", "profile", {"request": {"cpu": 1}, "image": "berth/nope:1"})
    assert status == 404 and "not offered" in body["message"]
    status, body = api("PUT", "profile", "{not json")
    assert status == 400 and body["field"] == "body"
    assert api("GET", "profile") == (200, {"request": {}, "image": None})
    status, body = api("PUT", "profile", {"request": {"cpu": 1, "mem": "768M"}})
    assert status == 200 and body["request"] == {"cpu": 1, "mem": "768M"}


def test_parameterized_start_list_and_stop(api, jp_serverapp):
    status, model = api("POST", "kernels", {"resources": {"cpu": 0.5, "mem": "256M"}, "path": "analysis.ipynb"})
    assert status == 201, model
    assert model["name"] == "berth-python-3.11" and model["berth"]["limits"] == "0.5 CPU · 256 MiB"
    kernel_id = model["id"]
    assert kernel_id in jp_serverapp.kernel_manager  # a normal jupyter_server kernel
    status, listing = api("GET", "kernels")
    (k,) = listing["kernels"]
    assert k["kernel_id"] == kernel_id and k["resources"]["mem"] == 256 * 1024**2 and k["usage"]["mem_bytes"] > 0
    # over the total: 0.5 in use + 1.0 > 1.0 → refused, nothing more reserved or started
    status, body = api("POST", "kernels", {"resources": {"cpu": 1.0, "mem": "256M"}})
    assert status == 403 and "total_cpu" in body["message"]
    status, body = api("POST", "kernels", {"image": "berth/nope:1"})
    assert status == 404 and "not offered" in body["message"]
    status, body = api("POST", "kernels", {"resources": {"cpu": -1}})
    assert status == 400 and body["field"] == "cpu"
    status, body = api("POST", "kernels", {"resources": {"cpu": 0.5}, "colour": "red"})
    assert status == 400 and body["field"] == "colour"
    status, body = api("POST", "kernels", {"path": "../../etc"})
    assert status == 400 and body["field"] == "path"
    assert len(api("GET", "kernels")[1]["kernels"]) == 1
    assert len(jp_serverapp.kernel_manager.list_kernel_ids()) == 1
    assert api("DELETE", f"kernels/{kernel_id}")[0] == 204
    assert api("GET", "kernels")[1] == {"kernels": []}
    status, body = api("DELETE", f"kernels/{kernel_id}")
    assert status == 404 and "no running kernel" in body["message"]


def test_start_with_a_preset(api):
    status, model = api("POST", "kernels", {"preset": "small"})
    assert status == 201 and model["name"] == "berth-preset-small" and model["berth"]["resources"]["cpu"] == 0.5
    assert api("DELETE", f"kernels/{model['id']}")[0] == 204
    status, body = api("POST", "kernels", {"preset": "huge"})
    assert status == 404 and "known presets: small" in body["message"]


def test_deep_and_huge_bodies_are_refused_naming_the_limit_never_a_500(api):
    """Issue 20, item 5: 100,000 nested brackets answered 500; a 50 MB body took 12.8 s."""
    from jupyter_berth.server.json_io import MAX_BODY_BYTES, MAX_DEPTH

    for path, method in (("kernels", "POST"), ("profile", "PUT")):
        status, body = api(method, path, "[" * 100_000 + "]" * 100_000)
        assert status == 400 and body["field"] == "body" and f"{MAX_DEPTH} levels" in body["message"], body
        status, body = api(method, path, '{"a":' * 50_000 + "1" + "}" * 50_000)
        assert status == 400 and f"{MAX_DEPTH} levels" in body["message"], body
    status, body = api("POST", "kernels", " " * (50 * 2**20))
    assert status == 413 and f"limit of {MAX_BODY_BYTES} bytes" in body["message"], body
    status, body = api("PUT", "gpus", '"' + "x" * (2 * MAX_BODY_BYTES) + '"')  # a route that reads no body
    assert status == 413, body
    assert api("GET", "kernels")[1] == {"kernels": []}  # nothing was started

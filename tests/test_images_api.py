"""The image catalog's REST API (berth/api/images) on a real jupyter_server: admin routes refused
to non-admins with nothing changed, retire/build with kernelspecs following, the notebook
environment round trip, and schemathesis over the images routes. Real Docker, real registry."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import docker
import pytest

from jupyter_berth.images import state as catalog_state
from jupyter_berth.kernels import backend
from jupyter_berth.kernelspecs import image_kernel_name

from .image_fixtures import CUR, EXTRA, LATEST, OFFERED, OLD, REPO, ROOT, versions  # noqa: F401  (versions: a fixture)

pytestmark = [pytest.mark.docker]


@pytest.fixture
def jp_base_url():
    return "/"


@pytest.fixture
def api_admins():
    return ["ann"]


@pytest.fixture
def jp_server_config(tmp_path, monkeypatch, versions, api_admins):
    monkeypatch.setenv("BERTH_USER", "ann")
    return {
        "ServerApp": {"jpserver_extensions": {"jupyter_berth.server": True}},
        "BerthService": {
            "data_dir": str(tmp_path / "berth-api"),
            "offered_images": [OFFERED],
            "default_image": CUR,
        },
        "UsageTracker": {"sample_interval": 0},
        "ImageCatalog": {"admin_users": api_admins},
        "ImageVersions": {"pull_registries": ["127.0.0.1:5000"], "build_network": False},
    }


def _serve(loop, serverapp, work):
    async def run():
        await serverapp.extension_manager.start_all_extensions()
        return await work()

    try:
        return loop.run_until_complete(run())
    finally:
        loop.run_until_complete(backend.shutdown_embedded_service())


async def _call(jp_fetch, method, path, body=None, **params):
    from tornado.httpclient import HTTPClientError

    kw = {"method": method, "params": params}
    if body is not None or method == "POST":
        kw["body"] = json.dumps(body if body is not None else {})
    try:
        r = await jp_fetch("berth", "api", *path.split("/"), **kw)
    except HTTPClientError as e:
        return e.code, json.loads(e.response.body) if e.response is not None and e.response.body else None
    return r.code, json.loads(r.body)


ADMIN_ROUTES = [
    ("POST", "images/offer", {"image": EXTRA}),
    ("POST", "images/hide", {"image": EXTRA}),
    ("POST", "images/retire", {"image": EXTRA}),
    ("POST", "images/default", {"image": EXTRA}),
    ("POST", "images/alias", {"alias": LATEST, "target": CUR}),
    ("POST", "images/unalias", {"alias": LATEST}),
    ("POST", "images/pull", {"source": f"127.0.0.1:5000/{EXTRA}"}),
    ("POST", "images/build", {"base": CUR, "tag": f"{REPO}:evil", "dockerfile": "RUN true"}),
    ("POST", "images/gc", {}),
    ("GET", "images/operations", None),
    ("GET", "images/history", None),
]


@pytest.mark.parametrize("api_admins", [["someone-else"]])
def test_rest_admin_routes_refuse_a_non_admin_and_change_nothing(jp_asyncio_loop, jp_serverapp, jp_fetch):
    async def work():
        tags = sorted(t for i in docker.from_env().images.list(name=REPO) for t in i.tags)
        code, before = await _call(jp_fetch, "GET", "images")
        assert code == 200 and before["admin"] is False and [i["ref"] for i in before["images"]] == [CUR, EXTRA]
        for method, path, body in ADMIN_ROUTES + [("GET", "images", None)]:
            params = {"all": "1"} if path == "images" else {}
            code, answer = await _call(jp_fetch, method, path, body, **params)
            assert code == 403, (path, answer)
            assert "needs an image admin" in answer["message"] and answer["limit"] == "admin_users"
        service = await backend.embedded_service()
        assert await asyncio.to_thread(catalog_state.load, service.ledger) == ({}, {})
        assert await asyncio.to_thread(catalog_state.events, service.ledger) == []
        assert sorted(t for i in docker.from_env().images.list(name=REPO) for t in i.tags) == tags
        assert service.images.versions.operations.list() == []  # no pull or build was started
        code, after = await _call(jp_fetch, "GET", "images")
        assert after == before
        # Every user may ask what a notebook's environment gets.
        code, answer = await _call(jp_fetch, "POST", "images/resolve", {"image": OLD, "digest": "sha256:" + "0" * 64})
        assert code == 200 and answer["status"] == "unknown" and answer["nearest"]["image"] == CUR
        code, answer = await _call(jp_fetch, "POST", "images/resolve", {"image": "not a ref"})
        assert code == 400 and answer["field"] == "image"

    _serve(jp_asyncio_loop, jp_serverapp, work)


def test_rest_admin_retires_builds_and_kernelspecs_follow(jp_asyncio_loop, jp_serverapp, jp_fetch):
    async def specs():
        r = await jp_fetch("api", "kernelspecs")
        return set(json.loads(r.body)["kernelspecs"])

    async def work():
        code, listing = await _call(jp_fetch, "GET", "images", all="1")
        assert code == 200 and listing["admin"] and {i["ref"] for i in listing["images"]} >= {CUR, EXTRA}
        assert {image_kernel_name(CUR), image_kernel_name(EXTRA)} <= await specs()
        code, answer = await _call(jp_fetch, "POST", "images/retire", {"image": EXTRA, "replacement": CUR})
        assert code == 200 and answer["state"] == "retired" and answer["replacement"] == CUR
        assert image_kernel_name(EXTRA) not in await specs()  # kernelspecs follow what is offered
        code, answer = await _call(jp_fetch, "POST", "kernels", {"image": EXTRA})
        assert code == 404 and answer["message"] == f"{EXTRA} is retired; use {CUR}"
        code, answer = await _call(jp_fetch, "POST", "images/resolve", {"image": EXTRA})
        assert answer["status"] == "retired" and answer["nearest"]["image"] == CUR
        code, answer = await _call(jp_fetch, "POST", "images/offer", {"image": EXTRA})
        assert code == 200 and image_kernel_name(EXTRA) in await specs()
        code, answer = await _call(jp_fetch, "POST", "images/offer", {"image": EXTRA, "extra": 1})
        assert code == 400 and answer["field"] == "extra"

        code, op = await _call(
            jp_fetch,
            "POST",
            "images/build",
            {"base": CUR, "tag": f"{REPO}:3.11-rest", "dockerfile": "LABEL rest=1\n", "offer": True},
        )
        assert code == 202 and op["state"] == "running" and op["kind"] == "build"
        for _ in range(300):
            code, op = await _call(jp_fetch, "GET", f"images/operations/{op['id']}")
            if op["state"] != "running":
                break
            await asyncio.sleep(0.1)
        assert op["state"] == "succeeded", op
        assert op["result"]["state"] == "offered" and any("Successfully tagged" in line for line in op["log"])
        assert image_kernel_name(f"{REPO}:3.11-rest") in await specs()
        code, _ = await _call(jp_fetch, "POST", "images/retire", {"image": f"{REPO}:3.11-rest"})
        code, gc = await _call(jp_fetch, "POST", "images/gc", {})
        assert code == 200 and [r["action"] for r in gc["results"]] == ["removed"]
        code, history = await _call(jp_fetch, "GET", "images/history", image=f"{REPO}:3.11-rest")
        assert [e["action"] for e in history["events"]] == ["remove", "retire", "build"]
        code, answer = await _call(jp_fetch, "GET", "images/operations/ffff")
        assert code == 404

    _serve(jp_asyncio_loop, jp_serverapp, work)


def test_a_saved_notebook_records_its_environment_and_gets_it_back(
    jp_asyncio_loop, jp_serverapp, jp_fetch, jp_root_dir, versions
):
    import nbformat

    from jupyter_berth.server import notebook_environment

    async def work():
        notebook_environment.register(jp_serverapp)  # (the berth extension installs it when it loads)
        os.chmod(jp_root_dir, 0o777)  # the kernel runs as uid 1000 in the notebook's directory
        r = await jp_fetch(
            "api",
            "sessions",
            method="POST",
            body=json.dumps(
                {
                    "path": "env.ipynb",
                    "name": "env.ipynb",
                    "type": "notebook",
                    "kernel": {"name": image_kernel_name(EXTRA)},
                }
            ),
        )
        session = json.loads(r.body)
        try:
            await jp_fetch(
                "api",
                "contents",
                "env.ipynb",
                method="PUT",
                body=json.dumps({"type": "notebook", "format": "json", "content": nbformat.v4.new_notebook()}),
            )
            saved = json.loads((jp_root_dir / "env.ipynb").read_text())["metadata"]["berth"]["environment"]
            assert saved["image"] == EXTRA and saved["digest"] == versions["extra"] and saved["resources"]["cpu"] > 0
            code, env = await _call(jp_fetch, "GET", f"images/environment/{session['kernel']['id']}")
            assert code == 200 and env["digest"] == saved["digest"] and env["resources"] == saved["resources"]
            # Opened again: exactly that environment is offered ...
            code, answer = await _call(
                jp_fetch, "POST", "images/resolve", {"image": saved["image"], "digest": saved["digest"]}
            )
            assert code == 200 and answer["status"] == "available" and answer["image"] == EXTRA
            # ... until it is retired: then the user is told, and offered the nearest version.
            code, _ = await _call(jp_fetch, "POST", "images/retire", {"image": EXTRA})
            code, answer = await _call(
                jp_fetch, "POST", "images/resolve", {"image": saved["image"], "digest": saved["digest"]}
            )
            assert answer["status"] == "retired" and answer["nearest"]["image"] == CUR
            assert answer["message"] == f"{EXTRA} is retired; use {CUR}"
            r = await jp_fetch("api", "kernels", session["kernel"]["id"])
            assert json.loads(r.body)["execution_state"] != "dead"  # the running kernel keeps going
        finally:
            await jp_fetch("api", "sessions", session["id"], method="DELETE")

    _serve(jp_asyncio_loop, jp_serverapp, work)


def test_schemathesis_finds_no_server_error_in_the_images_api(
    jp_asyncio_loop, jp_serverapp, http_server, jp_http_port, jp_auth_header, tmp_path
):
    from jupyter_berth.server.handlers.meta import openapi_document

    doc = openapi_document("/")
    doc["paths"] = {p: v for p, v in doc["paths"].items() if p.startswith("/berth/api/images")}
    schema = tmp_path / "images-openapi.json"
    schema.write_text(json.dumps(doc))
    st = Path(sys.executable).with_name("st")
    if not st.exists():
        if os.environ.get("CI"):
            pytest.fail("schemathesis is not installed (pip install schemathesis)")
        pytest.skip("schemathesis is not installed")

    async def work():
        proc = await asyncio.create_subprocess_exec(
            str(st),
            "run",
            str(schema),
            "--url",
            f"http://127.0.0.1:{jp_http_port}",
            "-H",
            f"Authorization: {jp_auth_header['Authorization']}",
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
            "--max-examples",
            "5",
            "--phases",
            "examples,coverage,fuzzing",
            "--workers",
            "1",
            "--no-color",
            "--seed",
            "1",
            "--generation-database",
            "none",
            "--request-timeout",
            "30",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, "NO_PROXY": "*"},
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 240)
        return proc.returncode, out.decode()

    code, output = _serve(jp_asyncio_loop, jp_serverapp, work)
    assert code == 0, output[-6000:]

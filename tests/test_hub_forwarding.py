"""Hub mode of the Berth REST API, with real parts: a JupyterHub subprocess configured as the hub
demo (tests/hub_process.py) with the Berth service it manages, users' tokens from the hub's REST
API, the real Docker engine and kernel image, and a real jupyter_server with the berth extension
in hub mode (``BERTH_SERVICE_URL`` and ``JUPYTERHUB_API_TOKEN`` in its environment).

First the service's ``berth/api/…`` routes are called directly with users' tokens (identity from
the token only); then through a user's server, which forwards them. The tests build on each
other's state in order (alice's folders), as a class would.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from pathlib import Path

import httpx
import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPClientError

from jupyter_berth import kernelspecs
from jupyter_berth.images.catalog import ImageInfo
from tests.hub_process import HubProcess, free_port

pytestmark = [pytest.mark.docker, pytest.mark.slow]

IMAGE = "berth/python:3.11"
ADMIN_ROUTES = [
    ("POST", "images/offer", {"image": IMAGE}),
    ("POST", "images/hide", {"image": IMAGE}),
    ("POST", "images/retire", {"image": IMAGE}),
    ("POST", "images/default", {"image": IMAGE}),
    ("POST", "images/alias", {"alias": "berth/python:latest", "target": IMAGE}),
    ("POST", "images/unalias", {"alias": "berth/python:latest"}),
    ("POST", "images/pull", {"source": "127.0.0.1:5000/berth/python:3.11"}),
    ("POST", "images/build", {"base": IMAGE, "tag": "berth/python:3.11-x", "requirements": "six"}),
    ("POST", "images/gc", {"dry_run": True}),
    ("GET", "images?all=1", None),
    ("GET", "images/operations", None),
    ("GET", "images/history", None),
]


@pytest.fixture(scope="module")
def work_dir(tmp_path_factory) -> Path:
    """The user's work directory: the hub mounts the user's volume there, the test server's root."""
    return tmp_path_factory.mktemp("work")


@pytest.fixture(scope="module")
def hub(tmp_path_factory, work_dir):
    h = HubProcess(
        tmp_path_factory.mktemp("hubfwd"),
        berth_extra=f"""
        c.ImageCatalog.admin_users = {{"teacher"}}
        c.BerthHubService.user_volume_target = {str(work_dir)!r}
        """,
    )
    h.start()
    try:
        h.tokens = {user: h.new_token(user) for user in ("alice", "bob", "teacher")}
        h.wait_for_service(h.tokens["alice"])
        yield h
    finally:
        h.stop()


def call(hub, user: str | None, method: str, path: str, body=None, *, token: str | None = None, raw: str | None = None):
    """``berth/api/<path>`` of the hub's service as ``user`` (None: no credentials); (status, json)."""
    headers = {}
    if token or user:
        headers["Authorization"] = f"token {token or hub.tokens[user]}"
    content = raw if raw is not None else (json.dumps(body) if body is not None else None)
    r = httpx.request(method, hub.service_url + "berth/api/" + path, headers=headers, content=content, timeout=60)
    return r.status_code, (r.json() if r.content else None)


def catalog_state(hub) -> tuple:
    _, images = call(hub, "teacher", "GET", "images?all=1")
    _, history = call(hub, "teacher", "GET", "images/history")
    return (
        [(i["ref"], i["state"], i["default"], i["alias_of"]) for i in images["images"]],
        images["default"],
        len(history["events"]),
    )


# ---- the service's berth/api routes, called directly ------------------------------------------------
def test_anonymous_and_foreign_tokens_are_refused_and_change_nothing(hub):
    narrow = hub.new_token("alice", scopes=["read:users:name!user=alice"])
    for method, path, body in [
        ("GET", "info", None),
        ("GET", "images", None),
        ("GET", "folders", None),
        ("POST", "folders", {"name": "sneaky"}),
        ("PUT", "profile", {"request": {"cpu": 1}}),
        ("GET", "kernels", None),
        ("GET", "usage", None),
        ("POST", "images/hide", {"image": IMAGE}),
    ]:
        for token, status in ((None, 401), ("not-a-token", 401), (narrow, 403)):
            code, answer = call(hub, None, method, path, body, token=token)
            assert code == status, (method, path, token, answer)
            assert answer["message"], answer
    assert call(hub, "alice", "GET", "folders") == (200, {"folders": []})
    assert call(hub, "alice", "GET", "profile") == (200, {"request": {}, "image": None})


def test_a_users_token_lists_images_creates_and_shares_a_folder(hub):
    code, info = call(hub, "alice", "GET", "info")
    assert code == 200 and (info["mode"], info["user"], info["groups"]) == ("hub", "alice", ["class-a"])
    code, images = call(hub, "alice", "GET", "images")
    assert code == 200 and IMAGE in [i["ref"] for i in images["images"]], images
    assert images["default"] == IMAGE and images["admin"] is False
    # identity comes from the token: a body naming another owner is refused, not obeyed
    code, answer = call(hub, "alice", "POST", "folders", {"name": "data", "owner": "bob"})
    assert code == 400 and answer["field"] == "owner"
    code, folder = call(hub, "alice", "POST", "folders", {"name": "data"})
    assert code == 201, folder
    assert folder["owner"] == {"kind": "user", "name": "alice"} and folder["role"] == "owner"
    # only to the hub's real users and groups (issue 20, item 8): a future "mallory" inherits nothing
    for kind, name in (("user", "mallory"), ("group", "no-such-group")):
        code, answer = call(hub, "alice", "PUT", f"folders/{folder['id']}/shares/{kind}/{name}", {"mode": "ro"})
        assert code == 400 and f"no {kind} {name!r} on this hub" in answer["message"], answer
    code, share = call(hub, "alice", "PUT", f"folders/{folder['id']}/shares/group/class-a", {"mode": "ro"})
    assert code == 200 and share["name"] == "class-a", share
    assert call(hub, "alice", "DELETE", f"folders/{folder['id']}/shares/group/class-a")[0] == 204
    code, share = call(hub, "alice", "PUT", f"folders/{folder['id']}/shares/user/bob", {"mode": "ro"})
    assert code == 200 and (share["kind"], share["name"], share["mode"]) == ("user", "bob", "ro")
    code, bobs = call(hub, "bob", "GET", "folders")
    assert code == 200 and [(f["reference"], f["role"], f["mode"]) for f in bobs["folders"]] == [
        ("alice/data", "shared", "ro")
    ]
    code, answer = call(hub, "bob", "PUT", f"folders/{folder['id']}/shares/user/teacher", {"mode": "rw"})
    assert code == 403 and "only its owner alice" in answer["message"]  # shared read-only: bob cannot share on


def test_a_foreign_user_cannot_see_or_mount_a_private_folder(hub):
    code, private = call(hub, "alice", "POST", "folders", {"name": "private"})
    assert code == 201
    fid = private["id"]
    for method, path, body in [
        ("GET", f"folders/{fid}", None),
        ("GET", f"folders/{fid}/shares", None),
        ("PATCH", f"folders/{fid}", {"name": "mine"}),
        ("DELETE", f"folders/{fid}", None),
        ("PUT", f"folders/{fid}/shares/user/bob", {"mode": "rw"}),
    ]:
        code, answer = call(hub, "bob", method, path, body)
        assert code == 404 and answer["message"] == f"no folder {fid!r} of yours or shared with you", (
            method,
            path,
            answer,
        )
    assert "alice/private" not in [f["reference"] for f in call(hub, "bob", "GET", "folders")[1]["folders"]]
    # mounting it into a kernel (the provisioners' route) is refused before anything is reserved
    r = httpx.post(
        hub.service_url + "api/kernels",
        json={"kernel_id": "k-bob-1", "folders": ["alice/private"]},
        headers={"Authorization": f"token {hub.tokens['bob']}"},
        timeout=60,
    )
    assert r.status_code == 404 and "no folder 'alice/private'" in r.json()["message"], r.text
    assert call(hub, "bob", "GET", "kernels") == (200, {"kernels": []})
    code, still = call(hub, "alice", "GET", f"folders/{fid}")
    assert code == 200 and still["name"] == "private" and still["shares"] == []


def test_a_non_admin_is_refused_on_admin_image_routes_and_nothing_changes(hub):
    before = catalog_state(hub)
    for method, path, body in ADMIN_ROUTES:
        code, answer = call(hub, "alice", method, path, body)
        assert code == 403 and answer["limit"] == "admin_users", (method, path, answer)
    assert catalog_state(hub) == before
    code, images = call(hub, "teacher", "GET", "images")
    assert code == 200 and images["admin"] is True  # the service's admin_users, from the token's name


def test_a_hub_admin_is_an_image_admin_while_the_hub_says_so(hub):
    """bob is in no admin_users: made a hub admin, a new token of his may change the catalog; demoted, not."""

    def set_hub_admin(flag: bool) -> str:
        r = httpx.patch(f"{hub.api}/users/bob", json={"admin": flag}, headers=hub.headers, timeout=30)
        assert r.status_code == 200, r.text
        return hub.new_token("bob")  # a new token: the service caches what the hub said of a token for a minute

    try:
        promoted = set_hub_admin(True)
        code, images = call(hub, None, "GET", "images?all=1", token=promoted)
        assert code == 200 and images["admin"] is True
        code, history = call(hub, None, "GET", "images/history", token=promoted)
        assert code == 200 and isinstance(history["events"], list)
    finally:
        demoted = set_hub_admin(False)
    code, answer = call(hub, None, "GET", "images/history", token=demoted)
    assert code == 403 and answer["limit"] == "admin_users" and "hub admins are image admins too" in answer["message"]
    assert call(hub, None, "GET", "images", token=demoted)[1]["admin"] is False


# ---- a user's jupyter_server in hub mode, forwarding -----------------------------------------------
def _answer_and_close() -> tuple[socket.socket, int]:
    """A port that accepts connections and closes them without answering (a broken service)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)

    def serve():
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:  # closed at the end of the test
                return
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    return sock, sock.getsockname()[1]


@pytest.fixture
def server_env(request, hub, monkeypatch):
    """The user server's environment as BerthSpawner gives it; ``request.param``: whose token, or a broken URL."""
    kind = getattr(request, "param", "alice")
    url, token, closer = hub.service_url, hub.tokens.get(kind, "not-a-token"), None
    if kind == "refused":
        url = f"http://127.0.0.1:{free_port()}/services/berth/"
    elif kind == "closing":
        closer, port = _answer_and_close()
        url = f"http://127.0.0.1:{port}/services/berth/"
    monkeypatch.setenv("BERTH_SERVICE_URL", url)
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", token)
    monkeypatch.setenv("JUPYTERHUB_USER", kind)
    yield {"url": url, "user": kind, "closer": closer}
    if closer is not None:
        closer.close()


@pytest.fixture
def jp_root_dir(work_dir):
    return work_dir


@pytest.fixture
def jp_server_config(server_env, jp_data_dir):
    # the kernelspec a hub user's server gets with its image (hub mode never writes kernelspecs)
    kernelspecs.sync(
        kernelspecs.plan([ImageInfo(ref=IMAGE, id="", digest=None)], [], IMAGE), str(jp_data_dir / "kernels")
    )
    return {"ServerApp": {"jpserver_extensions": {"jupyter_berth.server": True}}}


@pytest.fixture
def server(jp_asyncio_loop, jp_serverapp, jp_fetch):
    """Call the server's API: server(method, path, body=None, raw=None) -> (status, json, response)."""

    def fetch(method, path, body=None, raw=None):
        async def go():
            kw = {"method": method}
            if raw is not None or body is not None:
                kw["body"] = raw if raw is not None else json.dumps(body)
            elif method in ("POST", "PUT", "PATCH"):
                kw["body"] = ""
            try:
                r = await jp_fetch("berth", "api", *path.split("/"), **kw)
            except HTTPClientError as e:
                r = e.response
            return r.code, (json.loads(r.body) if r.body else None), r

        return jp_asyncio_loop.run_until_complete(go())

    return fetch


def test_a_users_server_forwards_folders_and_images_with_the_users_token(hub, server, jp_serverapp):
    code, info, _ = server("GET", "info")
    assert code == 200 and (info["mode"], info["user"]) == ("hub", "alice")  # the service's answer: who the token is
    code, listed, _ = server("GET", "folders")
    direct = call(hub, "alice", "GET", "folders")[1]
    assert code == 200 and [f["id"] for f in listed["folders"]] == [f["id"] for f in direct["folders"]]
    assert {f["reference"] for f in listed["folders"]} == {"alice/data", "alice/private"}
    code, made, _ = server("POST", "folders", {"name": "from-lab"})
    assert code == 201 and made["owner"]["name"] == "alice"
    code, _, _ = server("PUT", f"folders/{made['id']}/shares/user/bob", {"mode": "rw"})
    assert code == 200
    assert ("alice/from-lab", "rw") in [
        (f["reference"], f["mode"]) for f in call(hub, "bob", "GET", "folders")[1]["folders"]
    ]
    code, images, _ = server("GET", "images")
    assert code == 200 and images == call(hub, "alice", "GET", "images")[1]
    for path in ("presets", "policy", "gpus", "folders/quota"):
        assert server("GET", path)[:2] == call(hub, "alice", "GET", path), path
    code, usage, _ = server("GET", "usage")
    assert code == 200 and usage["user"] == "alice", usage
    code, profile, _ = server("PUT", "profile", {"request": {"cpu": 0.5, "mem": "512M"}})
    assert code == 200 and call(hub, "alice", "GET", "profile") == (200, profile)
    code, answer, _ = server("PUT", "profile", {"request": {"cpu": 8}})
    assert code == 403 and answer["limit"] == "max_cpu"  # the service's policy, the service's message
    assert call(hub, "alice", "GET", "profile") == (200, profile)
    # the service's refusals pass through: status and message unchanged
    for method, path, body in ADMIN_ROUTES[:3]:
        code, answer, _ = server(method, path.split("?")[0], body)
        assert (code, answer) == call(hub, "alice", method, path.split("?")[0], body), path
        assert code == 403
    code, answer, _ = server("POST", "folders", raw="{not json")
    assert code == 400 and answer["field"] == "body"
    code, answer, _ = server("GET", "folders/" + "0" * 32)
    assert code == 404 and answer["message"] == f"no folder {'0' * 32!r} of yours or shared with you"
    code, answer, _ = server("DELETE", f"folders/{made['id']}")
    assert code == 204 and answer is None
    code, doc, _ = server("GET", "openapi.json")  # answered by the server itself
    assert code == 200 and "/berth/api/folders" in doc["paths"]


def test_the_server_refuses_anonymous_requests_without_forwarding(
    hub, server, jp_asyncio_loop, jp_http_port, jp_base_url
):
    async def anonymous(method, path, body=None):
        url = f"http://127.0.0.1:{jp_http_port}{jp_base_url}berth/api/{path}"
        r = await AsyncHTTPClient().fetch(url, method=method, body=body, raise_error=False)
        return r.code

    for method, path, body in [
        ("GET", "folders", None),
        ("POST", "folders", '{"name": "anon"}'),
        ("GET", "images", None),
        ("POST", "images/hide", json.dumps({"image": IMAGE})),
        ("GET", "kernels", None),
        ("POST", "kernels", "{}"),
    ]:
        assert jp_asyncio_loop.run_until_complete(anonymous(method, path, body)) == 403, (method, path)
    assert "anon" not in [f["name"] for f in call(hub, "alice", "GET", "folders")[1]["folders"]]
    assert call(hub, "alice", "GET", "kernels") == (200, {"kernels": []})


@pytest.mark.parametrize("server_env", ["teacher"], indirect=True)
def test_an_operation_location_points_at_the_users_server(hub, server, jp_base_url):
    code, op, response = server("POST", "images/pull", {"source": "127.0.0.1:1/berth/python:3.11-none"})
    assert code == 202, op
    location = response.headers["Location"]
    assert location == f"{jp_base_url}berth/api/images/operations/{op['id']}"
    code, polled, _ = server("GET", location[len(jp_base_url) + len("berth/api/") :])
    assert code == 200 and polled["id"] == op["id"] and polled["kind"] == "pull"


def test_a_kernel_started_through_the_server_runs_in_a_berth_container(hub, server, jp_serverapp, jp_asyncio_loop):
    code, model, _ = server("POST", "kernels", {"resources": {"cpu": 0.5, "mem": "256M"}})
    assert code == 201, model
    kid = model["id"]
    assert model["name"] == "berth-python-3.11" and model["berth"]["image"] == IMAGE
    km = jp_serverapp.kernel_manager
    assert kid in km  # the server's own kernel manager knows it

    async def run(code_text):
        kc = km.get_kernel(kid).client()
        kc.start_channels()
        try:
            await kc.wait_for_ready(timeout=120)
            out = []
            reply = await kc.execute_interactive(
                code_text,
                timeout=30,
                output_hook=lambda m: out.append(m["content"].get("text", "")) if m["msg_type"] == "stream" else None,
            )
            return reply["content"]["status"], "".join(out)
        finally:
            kc.stop_channels()

    status, out = jp_asyncio_loop.run_until_complete(run("import os; print(os.environ['BERTH_USER'], os.getcwd())"))
    assert (status, out.split()) == ("ok", ["alice", str(jp_serverapp.root_dir)])
    # the service's refusal comes back through the provisioner, and leaves no kernel behind (not even pending)
    code, answer, _ = server("POST", "kernels", {"resources": {"cpu": 4}})
    assert code == 403 and answer["limit"] == "max_cpu", answer
    assert km.list_kernel_ids() == [kid] and set(km._pending_kernels) <= {kid}
    code, listed, _ = server("GET", "kernels")  # forwarded: the service's list, with live usage
    assert code == 200 and [k["kernel_id"] for k in listed["kernels"]] == [kid]
    code, answer, _ = server("DELETE", "kernels/not-mine")
    assert code == 404
    code, _, _ = server("DELETE", f"kernels/{kid}")
    assert code == 204
    assert kid not in km and call(hub, "alice", "GET", "kernels") == (200, {"kernels": []})


@pytest.mark.parametrize("server_env", ["refused", "closing"], indirect=True)
def test_an_unreachable_service_is_a_clear_error_naming_its_url(server, server_env):
    code, answer, _ = server("GET", "folders")
    assert code == (503 if server_env["user"] == "refused" else 502), answer
    assert server_env["url"] in answer["message"]


@pytest.mark.parametrize("server_env", ["nobody"], indirect=True)
def test_a_token_the_hub_does_not_know_is_the_services_401(server):
    code, answer, _ = server("GET", "folders")
    assert code == 401 and "JupyterHub token" in answer["message"]


def test_a_users_server_keeps_its_kernelspecs_in_line_with_the_hubs_offer(
    hub, server, jp_serverapp, jp_data_dir, jp_asyncio_loop
):
    kernels_dir = jp_data_dir / "kernels"
    stale = kernelspecs.plan([ImageInfo(ref="berth/python:2.7", id="", digest=None)], [], "berth/python:2.7")
    kernelspecs.sync(stale + kernelspecs.plan([ImageInfo(ref=IMAGE, id="", digest=None)], [], IMAGE), str(kernels_dir))
    assert (kernels_dir / "berth-python-2.7").is_dir()
    jp_asyncio_loop.run_until_complete(jp_serverapp.extension_manager.start_all_extensions())

    offered = call(hub, "alice", "GET", "images")[1]
    presets = call(hub, "alice", "GET", "presets")[1]["presets"]
    wanted = {kernelspecs.image_kernel_name(i["ref"]) for i in offered["images"] if i["state"] == "offered"}
    wanted |= {kernelspecs.preset_kernel_name(p["name"]) for p in presets}
    have = {p.name for p in kernels_dir.iterdir() if p.name.startswith(kernelspecs.PREFIX)}
    assert wanted and have == wanted  # the hub's offer, no more: the retired 2.7 spec is gone
    spec = json.loads((kernels_dir / kernelspecs.image_kernel_name(offered["default"]) / "kernel.json").read_text())
    assert spec["metadata"]["kernel_provisioner"]["provisioner_name"] == "berth"
    assert spec["metadata"]["jupyter_berth"]["default"] is True
    # a listing through the server (the sidebar's) re-syncs: a spec removed by hand comes back
    (kernels_dir / kernelspecs.image_kernel_name(offered["default"]) / "kernel.json").unlink()
    assert server("GET", "images")[0] == 200
    respec = kernels_dir / kernelspecs.image_kernel_name(offered["default"]) / "kernel.json"
    for _ in range(100):  # the server re-syncs after it has answered: let its loop run
        if respec.exists():
            break
        jp_asyncio_loop.run_until_complete(asyncio.sleep(0.05))
    assert respec.exists()

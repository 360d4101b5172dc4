"""Named servers on a real hub: each kernel belongs to the server that started it.

alice runs her default server and a named one ("lab2"), each starts a Berth kernel. Each
server's sidebar API lists its own kernel only and cannot stop the other's (404), the
ledger and the container labels say which server a kernel is of, her totals count both,
and when "lab2" dies abruptly its leftover kernel is stopped with it while the default
server's kernel keeps running.

The servers run Berth's code from their image: ``$BERTH_TEST_SERVER_IMAGE`` names a server image
built from this tree when ``berth/singleuser:3.11`` was built from another (``berth images
bootstrap`` rebuilds it when the code changed).
"""

from __future__ import annotations

import os
import time

import docker
import httpx
import pytest

from jupyter_berth.ledger import Ledger
from tests.hub_process import SERVER_IMAGE, HubProcess, running, server_image_or_skip
from tests.test_hub_spawn import KERNEL_SPEC, api

pytestmark = [pytest.mark.docker, pytest.mark.slow]

POLICIES = {
    "default": {"max_cpu": 1, "max_mem": "2G", "max_kernels": 4, "default": {"cpu": 0.25, "mem": "256M"}},
    "groups": {},
    "users": {},
}


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    server_image_or_skip()
    hub = HubProcess(
        tmp_path_factory.mktemp("named"),
        users=("alice", "teacher"),
        policies=POLICIES,
        berth_extra="c.BerthService.pool_size = 0\nc.ServerPool.size = 0\n",
        extra="c.JupyterHub.allow_named_servers = True\nc.Spawner.poll_interval = 1\n"
        f"c.BerthSpawner.image = {os.environ.get('BERTH_TEST_SERVER_IMAGE', SERVER_IMAGE)!r}\n",
    )
    with running(hub) as h:
        yield h


def _ready(hub, user: str, name: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        server = api(hub, "GET", f"/users/{user}").json().get("servers", {}).get(name)
        if server and server.get("ready"):
            return
        time.sleep(0.3)
    raise AssertionError(f"{user}/{name} not ready\n{hub.log_tail()}")


def _server_url(hub, name: str) -> str:
    return f"{hub.url}/user/alice/{name + '/' if name else ''}"


def _start_kernel(hub, name: str) -> str:
    r = httpx.post(
        _server_url(hub, name) + "api/sessions",
        headers=hub.headers,
        timeout=90,
        json={"path": f"{name or 'main'}.ipynb", "type": "notebook", "name": "n", "kernel": {"name": KERNEL_SPEC}},
    )
    assert r.status_code == 201, f"{r.status_code} {r.text}\n{hub.log_tail()}"
    return r.json()["kernel"]["id"]


def _sidebar_kernels(hub, name: str) -> set[str]:
    r = httpx.get(_server_url(hub, name) + "berth/api/kernels", headers=hub.headers, timeout=30)
    assert r.status_code == 200, r.text
    return {k["kernel_id"] for k in r.json()["kernels"]}


def _live_kernels(hub) -> dict[str, str | None]:
    ledger = Ledger(data_dir=str(hub.root / "berth"))
    try:
        return {a.subject: a.server for a in ledger.live_allocations(owner="alice", kind="kernel")}
    finally:
        ledger.close()


def test_two_named_servers_each_list_and_stop_their_own_kernels(hub):
    for name in ("", "lab2"):
        path = "/users/alice/server" if not name else f"/users/alice/servers/{name}"
        r = api(hub, "POST", path, json={"cpu": 0.25, "mem": "512M"})
        assert r.status_code in (201, 202), r.text
    _ready(hub, "alice", "")
    _ready(hub, "alice", "lab2")
    main_kernel, lab2_kernel = _start_kernel(hub, ""), _start_kernel(hub, "lab2")

    assert _live_kernels(hub) == {main_kernel: "", lab2_kernel: "lab2"}  # the ledger's server column
    assert _sidebar_kernels(hub, "") == {main_kernel}
    assert _sidebar_kernels(hub, "lab2") == {lab2_kernel}
    client = docker.from_env()
    labelled = {
        c.labels["io.jupyter.berth.subject"]: c.labels.get("io.jupyter.berth.server_name")
        for c in client.containers.list(filters={"label": ["io.jupyter.berth.kind=kernel", hub.site_label]})
    }
    assert labelled == {main_kernel: None, lab2_kernel: "lab2"}  # started cold: no pool (whose labels they'd keep)

    # one server cannot stop the other's kernel; its own, yes
    r = httpx.delete(_server_url(hub, "lab2") + f"berth/api/kernels/{main_kernel}", headers=hub.headers, timeout=30)
    assert r.status_code == 404, r.text

    # the user's totals count every kernel of every server (2 servers + 2 kernels of 0.25 CPU)
    r = httpx.get(_server_url(hub, "lab2") + "berth/api/usage", headers=hub.headers, timeout=30)
    assert r.status_code == 200, r.text
    assert r.json()["quota"]["in_use"]["cpu"] == pytest.approx(1.0), r.json()["quota"]

    # lab2 dies abruptly (its kernel is left behind): the hub's poll stops it, and lab2's kernel with it
    (lab2,) = [
        c
        for c in client.containers.list(filters={"label": ["io.jupyter.berth.kind=server", hub.site_label]})
        if c.name.startswith(f"berth-{hub.site}-server-alice-lab2")  # (a server-pool container keeps its labels)
    ]
    lab2.kill()
    deadline = time.monotonic() + 45
    while lab2_kernel in _live_kernels(hub) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _live_kernels(hub) == {main_kernel: ""}, hub.log_tail()
    assert _sidebar_kernels(hub, "") == {main_kernel}
    r = httpx.delete(_server_url(hub, "") + f"berth/api/kernels/{main_kernel}", headers=hub.headers, timeout=30)
    assert r.status_code == 204, r.text

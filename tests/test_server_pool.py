"""The server pool with real parts: a JupyterHub subprocess (tests/hub_process.py), the single-user
image, real containers and the hub's proxy.

The hub keeps one server waiting (``c.ServerPool.size = 1``) with no user volume (the pool hands
over no mounts yet: a spawn with mounts starts cold, see the pure test at the end). The tests build
on each other in order: alice's spawn adopts the waiting server and she reaches it through the proxy
with her token, bob's token is refused there; the pool refills; a spawn of another image starts cold;
a hub restart takes the waiting server back; nothing is left behind.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import time

import docker
import httpx
import pytest

from jupyter_berth.pool.activation import POOL_PORT, pool_request
from jupyter_berth.pool.server_pool import ServerPool
from jupyter_berth.resources import Resources
from jupyter_berth.runtime.base import ContainerSpec, Mount
from tests.hub_process import HubProcess, running

pytestmark = [pytest.mark.docker, pytest.mark.slow]

SERVER_IMAGE = "berth/singleuser:3.11"
POLICIES = {
    "default": {"max_cpu": 1, "max_mem": "1G", "default": {"cpu": 0.25, "mem": "256M"}},
    "groups": {},
    "users": {},
}


def _image_or_skip():
    try:
        docker.from_env().images.get(SERVER_IMAGE)
    except docker.errors.ImageNotFound:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"{SERVER_IMAGE} is not built: run `berth images bootstrap --all`")


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    _image_or_skip()
    hub = HubProcess(
        tmp_path_factory.mktemp("serverpool"),
        users=("alice", "bob", "teacher"),
        cpu_overcommit=4.0,
        policies=POLICIES,
        extra='c.Spawner.poll_interval = 1\nc.BerthSpawner.user_volume = ""\nc.ServerPool.size = 1\n'
        "c.ServerPool.refill_delay = 0.2\n",
    )
    with running(hub) as h:
        yield h


def api(hub, method: str, path: str, **kw) -> httpx.Response:
    return httpx.request(method, hub.api + path, headers=hub.headers, timeout=60, **kw)


def wait_ready(hub, user: str, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        server = api(hub, "GET", f"/users/{user}").json().get("servers", {}).get("")
        if server and server.get("ready"):
            return server
        if not server or not server.get("pending"):
            raise AssertionError(f"{user}'s spawn ended without a server\n{hub.log_tail()}")
        time.sleep(0.2)
    raise AssertionError(f"{user}'s server not ready in {timeout} s\n{hub.log_tail()}")


def stop(hub, user: str) -> None:
    assert api(hub, "DELETE", f"/users/{user}/server").status_code in (202, 204)
    deadline = time.monotonic() + 60
    while api(hub, "GET", f"/users/{user}").json().get("servers") and time.monotonic() < deadline:
        time.sleep(0.3)


def waiting(hub) -> dict[str, tuple[str, str]]:
    """The pool's waiting containers: ``{id: (address, token)}`` (the token read as the engine's holder can)."""
    client = docker.from_env()
    found = {}
    for c in client.containers.list(filters={"label": [hub.site_label, "io.jupyter.berth.server_pool=1"]}):
        if c.name.startswith(f"berth-spool-{hub.site}-"):
            env = dict(e.split("=", 1) for e in c.attrs["Config"]["Env"])
            ip = next(iter(c.attrs["NetworkSettings"]["Networks"].values()))["IPAddress"]
            found[c.id] = (ip, env["BERTH_POOL_TOKEN"])
    return found


def ping(ip: str, token: str) -> dict:
    import asyncio

    return asyncio.run(pool_request(ip, {"token": token, "op": "ping"}, 2.0))


def wait_pool_ready(hub, n: int = 1, timeout: float = 90) -> dict[str, tuple[str, str]]:
    """Until ``n`` waiting containers answer their token's ping with ``ready``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready = {}
        for cid, (ip, token) in waiting(hub).items():
            with contextlib.suppress(OSError, ValueError, TimeoutError):
                if ping(ip, token).get("status") == "ready":
                    ready[cid] = (ip, token)
        if len(ready) >= n:
            return ready
        time.sleep(0.3)
    raise AssertionError(f"the server pool has no {n} ready container(s) after {timeout} s\n{hub.log_tail()}")


def server_container(hub, user: str):
    client = docker.from_env()
    (container,) = [
        c
        for c in client.containers.list(filters={"label": hub.site_label})
        if c.name.startswith(f"berth-{hub.site}-server-{user}")
    ]
    return container


def test_the_pool_fills_at_hub_start_and_refuses_a_wrong_token(hub):
    pool = wait_pool_ready(hub)
    ((ip, token),) = pool.values()
    assert ping(ip, "not-" + token) == {"status": "refused", "message": "wrong activation token"}
    assert ping(ip, token)["status"] == "ready"  # a refusal changed nothing
    (cid,) = pool
    attrs = docker.from_env().containers.get(cid).attrs
    # waiting on the pool's own network, where containers cannot reach each other, with no user's environment
    assert list(attrs["NetworkSettings"]["Networks"]) == [f"berth-servers-{hub.site}"]
    bridge = docker.from_env().networks.get(f"berth-servers-{hub.site}").attrs
    assert bridge["Options"]["com.docker.network.bridge.enable_icc"] == "false"
    assert not any(e.startswith("JUPYTERHUB_") for e in attrs["Config"]["Env"])
    assert attrs["Config"]["User"] == "1000:100" and attrs["HostConfig"]["CapDrop"] == ["ALL"]


def test_a_spawn_adopts_the_waiting_server_and_only_its_user_reaches_it(hub):
    (pooled,) = wait_pool_ready(hub)
    r = api(hub, "POST", "/users/alice/server", json={"cpu": 0.5, "mem": "512M"})
    assert r.status_code in (201, 202), r.text
    wait_ready(hub, "alice")
    container = server_container(hub, "alice")
    assert container.id == pooled, "alice's spawn did not adopt the waiting server"
    assert "adopted server-pool container" in hub.log_tail(200)
    attrs = container.attrs
    hc = attrs["HostConfig"]
    assert (hc["Memory"], hc["MemorySwap"], hc["CpuQuota"]) == (512 * 2**20, 512 * 2**20, 50000)
    # left the pool network for alice's own, and its activation port is closed
    assert list(attrs["NetworkSettings"]["Networks"]) == [f"{hub.network_prefix}{hub.site}-alice"]
    ip = attrs["NetworkSettings"]["Networks"][f"{hub.network_prefix}{hub.site}-alice"]["IPAddress"]
    with pytest.raises(OSError), socket.create_connection((ip, POOL_PORT), timeout=2):
        pass

    alice, bob = hub.new_token("alice"), hub.new_token("bob")
    me = httpx.get(f"{hub.url}/user/alice/api/me", headers={"Authorization": f"token {alice}"}, timeout=30)
    assert me.status_code == 200, me.text
    assert me.json()["identity"]["name"] == "alice"
    refused = httpx.get(f"{hub.url}/user/alice/api/me", headers={"Authorization": f"token {bob}"}, timeout=30)
    assert refused.status_code == 403, refused.text


def test_the_pool_refills_after_an_adoption(hub):
    refilled = wait_pool_ready(hub)
    assert server_container(hub, "alice").id not in refilled


def test_a_spawn_of_another_image_starts_cold(hub):
    client = docker.from_env()
    tag = f"pooltest-{secrets.token_hex(3)}"
    client.images.get(SERVER_IMAGE).tag("berth/singleuser", tag)
    try:
        before = set(wait_pool_ready(hub))
        r = api(hub, "POST", "/users/bob/server", json={"cpu": 0.25, "mem": "512M", "image": f"berth/singleuser:{tag}"})
        assert r.status_code in (201, 202), r.text
        wait_ready(hub, "bob")
        container = server_container(hub, "bob")
        assert container.id not in before and "io.jupyter.berth.server_pool" not in container.labels
        assert f"starts cold: no server pool for image berth/singleuser:{tag}" in hub.log_tail(200)
        assert set(waiting(hub)) == before  # the waiting server is still waiting
        stop(hub, "bob")
    finally:
        client.images.remove(f"berth/singleuser:{tag}")


def test_a_hub_restart_takes_the_waiting_server_back(hub):
    stop(hub, "alice")
    (pooled,) = wait_pool_ready(hub)
    hub.proc.send_signal(signal.SIGINT)
    hub.proc.wait(30)
    assert pooled in waiting(hub)  # the hub's exit leaves it waiting
    hub.log_path.rename(hub.root / "hub-before-restart.log")  # start() waits for the new hub's "running"
    hub.start()
    deadline = time.monotonic() + 30
    while "of an earlier run is ready again" not in hub.log_tail(200) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "of an earlier run is ready again" in hub.log_tail(200)
    assert set(wait_pool_ready(hub)) == {pooled}
    r = api(hub, "POST", "/users/alice/server", json={"cpu": 0.25, "mem": "256M"})
    assert r.status_code in (201, 202), r.text
    wait_ready(hub, "alice")
    assert server_container(hub, "alice").id == pooled
    stop(hub, "alice")


def test_nothing_is_left_but_the_waiting_server(hub):
    from jupyter_berth.ledger import Ledger

    wait_pool_ready(hub)
    left = docker.from_env().containers.list(all=True, filters={"label": hub.site_label})
    assert [c.name for c in left if not c.name.startswith(f"berth-spool-{hub.site}-")] == []
    ledger = Ledger(data_dir=str(hub.root / "berth"))
    try:
        assert [a for a in ledger.live_allocations() if a.kind == "server"] == []
    finally:
        ledger.close()


def _spec(**kw) -> ContainerSpec:
    base = dict(
        name="s",
        image=SERVER_IMAGE,
        command=["jupyterhub-singleuser", "--port=8888"],
        resources=Resources(cpu=0.5, mem=512 * 2**20),
        labels={},
        network="n",
        user="1000:100",
    )
    return ContainerSpec(**{**base, **kw})


def test_what_cannot_be_handed_over_starts_cold():
    """Pure: which spawns fit a pool container (no engine is asked)."""
    pool = ServerPool(runtime=None, site="x")
    assert pool.unfit_reason(_spec()) is None
    assert "no server pool for image" in pool.unfit_reason(_spec(image="berth/singleuser:other"))
    assert "mounts" in pool.unfit_reason(_spec(mounts=[Mount("vol", "/home/jovyan/work")]))
    assert "GPU" in pool.unfit_reason(_spec(gpu_device_ids=["0"]))
    assert "command" in pool.unfit_reason(_spec(command=["jupyter", "lab"]))
    assert "runs as 0:0" in pool.unfit_reason(_spec(user="0:0"))
    assert "shared memory" in pool.unfit_reason(_spec(resources=Resources(mem=2**30, shm=256 * 2**20)))
    assert "environment" in pool.unfit_reason(_spec(env={"JUPYTERHUB_SINGLEUSER_APP": "notebook"}))
    # the pool stays within its memory reserve
    assert ServerPool(runtime=None, site="x", size=10, idle_mem="512M", memory_reserve="1G").target == 2

"""The server pool with real parts: a JupyterHub subprocess (tests/hub_process.py), the single-user
image, real containers and the hub's proxy.

The hub keeps one server waiting (``c.ServerPool.size = 1``); each user's files are a named volume
at /home/jovyan/work, handed over to the adopted server by mount propagation. The tests build on
each other in order: alice's spawn adopts the waiting server, finds her files there and reaches it
through the proxy with her token, bob's token is refused there; the pool refills; bob's adopted
server sees his files and not alice's; a spawn of another image starts cold; a hub restart takes
the waiting server back; nothing is left running or mounted.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import socket
import tempfile
import time
from pathlib import Path

import docker
import httpx
import pytest

from jupyter_berth.pool.activation import POOL_PORT, pool_request
from jupyter_berth.pool.server_pool import ServerPool
from jupyter_berth.resources import Resources
from jupyter_berth.runtime.base import ContainerSpec, Mount
from jupyter_berth.runtime.labels import creation_labels
from tests.hub_process import SERVER_IMAGE, HubProcess, run_cell, running, server_image_or_skip

pytestmark = [pytest.mark.docker, pytest.mark.slow]

POLICIES = {
    "default": {"max_cpu": 1, "max_mem": "1G", "default": {"cpu": 0.25, "mem": "256M"}},
    "groups": {},
    "users": {},
}


@pytest.fixture(scope="module")
def hub():
    server_image_or_skip()
    # outside pytest's temporary directories: another session's clean-up may unmount hand-over roots there
    state = Path(tempfile.mkdtemp(prefix="berth-serverpool-"))
    hub = HubProcess(
        state,
        users=("alice", "bob", "teacher"),
        cpu_overcommit=4.0,
        policies=POLICIES,
        extra="c.Spawner.poll_interval = 1\nc.ServerPool.size = 1\nc.ServerPool.refill_delay = 0.2\n",
    )
    try:
        with running(hub) as h:
            yield h
    finally:
        shutil.rmtree(state, ignore_errors=True)


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
    return hub.server_pool()


def ping(ip: str, token: str) -> dict:
    return asyncio.run(pool_request(ip, {"token": token, "op": "ping"}, 2.0))


def wait_pool_ready(hub, n: int = 1, timeout: float = 90) -> dict[str, tuple[str, str]]:
    return hub.wait_server_pool(n, timeout)


def server_container(hub, user: str):
    client = docker.from_env()
    (container,) = [
        c
        for c in client.containers.list(filters={"label": hub.site_label})
        if c.name.startswith(f"berth-{hub.site}-server-{user}")
    ]
    return container


def volume_dir(hub, user: str) -> str:
    """Where the engine keeps the user's volume (made here first, as the spawn would)."""
    client = docker.from_env()
    name = f"{hub.network_prefix}user-{user}"
    try:
        volume = client.volumes.get(name)
    except docker.errors.NotFound:
        volume = client.volumes.create(name, labels=creation_labels({"owner": user, "site": hub.site}))
    return volume.attrs["Mountpoint"]


def host_mounts_under(path: str) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(path.rstrip("/") + "/")]


def contents(hub, user: str, token: str, path: str = "") -> httpx.Response:
    return httpx.get(
        f"{hub.url}/user/{user}/api/contents/{path}", headers={"Authorization": f"token {token}"}, timeout=30
    )


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
    home = volume_dir(hub, "alice")  # as an earlier (cold) server left it: alice's files, owned by her uid
    with open(os.path.join(home, "alice-notes.txt"), "w") as f:
        f.write("mine")
    for path in (home, os.path.join(home, "alice-notes.txt")):
        os.chown(path, 1000, 100)
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
    # her volume, handed over into the running container: she reads her file and writes a new one
    listing = contents(hub, "alice", alice).json()
    inside = container.exec_run(["sh", "-c", "ls -la /home/jovyan/work; grep jovyan /proc/self/mountinfo"]).output
    assert "alice-notes.txt" in [item["name"] for item in listing["content"]], (listing, inside.decode())
    r = httpx.put(
        f"{hub.url}/user/alice/api/contents/written.txt",
        headers={"Authorization": f"token {alice}"},
        json={"type": "file", "format": "text", "content": "from the server"},
        timeout=30,
    )
    assert r.status_code in (200, 201), r.text
    with open(os.path.join(volume_dir(hub, "alice"), "written.txt")) as f:
        assert f.read() == "from the server"
    # the handed-over environment reaches the Berth service: a Berth kernel for a notebook, one cell
    r = httpx.post(
        f"{hub.url}/user/alice/api/sessions",
        headers={"Authorization": f"token {alice}"},
        timeout=120,
        json={"path": "lab.ipynb", "type": "notebook", "name": "lab.ipynb", "kernel": {"name": "berth-python-3.11"}},
    )
    assert r.status_code == 201, f"{r.status_code} {r.text}\n{hub.log_tail()}\n{container.logs(tail=30).decode()}"
    out = asyncio.run(run_cell(hub, "alice", r.json()["kernel"]["id"], "import os; print(sorted(os.listdir('.')))"))
    assert "alice-notes.txt" in out and "written.txt" in out


def test_the_pool_refills_after_an_adoption(hub):
    refilled = wait_pool_ready(hub)
    alice = server_container(hub, "alice")
    assert alice.id not in refilled
    # a user's container cannot reach a waiting server's activation port (another network, no route)
    ((ip, _),) = refilled.values()
    probe = f"import socket; socket.create_connection(({ip!r}, {POOL_PORT}), timeout=3); print('connected')"
    result = alice.exec_run(["python3", "-c", probe], user="1000")
    assert result.exit_code != 0 and b"connected" not in result.output, result.output


def test_another_users_adopted_server_sees_only_their_own_files(hub):
    (pooled,) = wait_pool_ready(hub)
    name = docker.from_env().containers.get(pooled).name
    r = api(hub, "POST", "/users/bob/server", json={"cpu": 0.25, "mem": "512M"})
    assert r.status_code in (201, 202), r.text
    wait_ready(hub, "bob")
    assert server_container(hub, "bob").id == pooled
    bob = hub.new_token("bob")
    names = [item["name"] for item in contents(hub, "bob", bob).json()["content"]]
    assert "alice-notes.txt" not in names and "written.txt" not in names
    # a new user's volume (made empty by the spawn) is his to write, as a cold server's would be
    r = httpx.put(
        f"{hub.url}/user/bob/api/contents/first.txt",
        headers={"Authorization": f"token {bob}"},
        json={"type": "file", "format": "text", "content": "hello"},
        timeout=30,
    )
    assert r.status_code in (200, 201), r.text
    assert os.path.exists(os.path.join(volume_dir(hub, "bob"), "first.txt"))
    slots = str(hub.root / "berth" / "handover" / f"{hub.site}-servers" / name)
    assert host_mounts_under(slots) == [slots + "/0"]  # bob's volume, and only while his server runs
    stop(hub, "bob")
    assert host_mounts_under(slots) == []


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


def test_nothing_is_left_but_the_waiting_servers_and_kernels(hub):
    from jupyter_berth.ledger import Ledger

    wait_pool_ready(hub)
    left = docker.from_env().containers.list(all=True, filters={"label": hub.site_label})
    waiting_ones = (f"berth-spool-{hub.site}-", f"berth-pool-{hub.site}-")  # the server and kernel pools'
    assert [c.name for c in left if not c.name.startswith(waiting_ones)] == []
    assert host_mounts_under(str(hub.root / "berth" / "handover" / f"{hub.site}-servers")) == []
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
    assert "extra_host_config" in pool.unfit_reason(_spec(extra_host_config={"dns_search": ["example.org"]}))
    assert "extra_create_kwargs" in pool.unfit_reason(_spec(extra_create={"labels": {"course": "physics"}}))
    assert "command" in pool.unfit_reason(_spec(command=["jupyter", "lab"]))
    assert "runs as 0:0" in pool.unfit_reason(_spec(user="0:0"))
    assert "shared memory" in pool.unfit_reason(_spec(resources=Resources(mem=2**30, shm=256 * 2**20)))
    assert "environment" in pool.unfit_reason(_spec(env={"JUPYTERHUB_SINGLEUSER_APP": "notebook"}))
    # the pool stays within its memory reserve
    assert ServerPool(runtime=None, site="x", size=10, idle_mem="512M", memory_reserve="1G").target == 2
    two = ServerPool(runtime=None, site="x", size=10, idle_mem="256M", memory_reserve="1G", images=["a", "b"])
    assert two.target == 2  # the reserve is shared among the images

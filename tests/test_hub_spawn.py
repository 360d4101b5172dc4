"""BerthSpawner with real parts: a JupyterHub subprocess configured as the hub demo, the Berth
service it manages, the single-user image, real containers and the hub's REST API.

One hub serves the module, and the tests build on each other in order (as a class would):
alice spawns through user_options and runs a cell in a Berth kernel started from inside her
server; the host (1 CPU of capacity here) is then full, so bob's and teacher's spawns wait
in the queue with their place shown; an over-policy request is refused at once.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time

import docker
import httpx
import pytest

from tests.hub_process import SERVER_IMAGE, HubProcess, run_cell, running, server_image_or_skip

pytestmark = [pytest.mark.docker, pytest.mark.slow]

KERNEL_SPEC = "berth-python-3.11"
#: 1 CPU of capacity, whatever the cores: alice's server and kernel leave 0.25.
CPU_OVERCOMMIT = 1.0 / (os.cpu_count() or 1)
POLICIES = {
    "default": {"max_cpu": 1, "max_mem": "2G", "idle_timeout": 600, "default": {"cpu": 0.25, "mem": "256M"}},
    "groups": {"class-a": {"max_cpu": 1, "max_mem": "1G", "max_kernels": 2, "max_lifetime": 3600}},
    "users": {"carol": {"max_lifetime": 4, "max_disk": "3G"}},
}
CELL = """
import os
def read(*names):
    for n in names:
        try:
            return open(n).read().strip()
        except OSError:
            pass
print(json.dumps({"mem": read("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory.max"),
                  "quota": read("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "/sys/fs/cgroup/cpu.max"),
                  "uid": os.getuid(), "cwd": os.getcwd()}))
"""


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    server_image_or_skip()
    hub = HubProcess(
        tmp_path_factory.mktemp("hubspawn"),
        users=("alice", "bob", "teacher", "carol"),
        cpu_overcommit=CPU_OVERCOMMIT,
        policies=POLICIES,
        # the cold path: these tests read the container's own config (tests/test_server_pool.py: the pool)
        extra="c.Spawner.poll_interval = 1\nc.ServerPool.size = 0\n",
    )
    with running(hub) as h:
        yield h


def api(hub, method: str, path: str, **kw) -> httpx.Response:
    return httpx.request(method, hub.api + path, headers=hub.headers, timeout=60, **kw)


def wait_ready(hub, user: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        model = api(hub, "GET", f"/users/{user}").json()
        server = model.get("servers", {}).get("")
        if server and server.get("ready"):
            return server
        if not server or not server.get("pending"):
            raise AssertionError(f"{user}'s spawn ended without a server: {model}\n{hub.log_tail()}")
        time.sleep(0.2)
    raise AssertionError(f"{user}'s server not ready in {timeout} s\n{hub.log_tail()}")


def progress_messages(hub, user: str, until: str, timeout: float = 20) -> list[str]:
    """Read the spawn's progress event stream until a message containing ``until``."""
    seen = []
    with httpx.stream("GET", f"{hub.api}/users/{user}/server/progress", headers=hub.headers, timeout=timeout) as r:
        assert r.status_code == 200, r.read()
        deadline = time.monotonic() + timeout
        for line in r.iter_lines():
            if line.startswith("data:"):
                event = json.loads(line[5:])
                seen.append(event.get("message", ""))
                if until in event.get("message", "") or event.get("ready") or event.get("failed"):
                    break
            if time.monotonic() > deadline:
                break
    return seen


def test_the_server_image_matches_the_hub(hub):
    from importlib.metadata import version

    labels = docker.from_env().images.get(SERVER_IMAGE).labels
    assert labels["io.jupyter.berth.kind"] == "server"
    assert f"jupyterhub {version('jupyterhub')}" in labels["io.jupyter.berth.frameworks"]


def test_over_policy_options_are_refused_at_once(hub):
    started = time.monotonic()
    r = api(hub, "POST", "/users/bob/server", json={"cpu": 4, "mem": "512M"})
    assert r.status_code == 400, r.text
    assert time.monotonic() - started < 5
    message = r.json()["message"]
    assert "max_cpu" in message and "at most 1 CPU" in message and "3 CPU over" in message
    r = api(hub, "POST", "/users/bob/server", json={"cpus": 0.5, "colour": "blue"})
    assert r.status_code == 400 and "colour: unknown server option" in r.json()["message"]


def test_spawn_with_options_and_a_berth_kernel_reads_its_limits(hub):
    r = api(hub, "POST", "/users/alice/server", json={"cpu": 0.5, "mem": "512M"})
    assert r.status_code in (201, 202), r.text
    server = wait_ready(hub, "alice")
    assert server["user_options"] == {"cpu": 0.5, "mem": "512M"}

    # The server's own container: the requested limits (the boot boost is over), hardened, no socket.
    client = docker.from_env()
    (container,) = [
        c
        for c in client.containers.list(filters={"label": ["io.jupyter.berth.kind=server", hub.site_label]})
        if c.labels.get("io.jupyter.berth.owner") == "alice" and c.name.startswith(f"berth-{hub.site}-server-alice")
    ]
    hc = container.attrs["HostConfig"]
    assert (hc["Memory"], hc["MemorySwap"], hc["CpuQuota"], hc["CpuPeriod"]) == (
        512 * 2**20,
        512 * 2**20,
        50000,
        100000,
    )
    assert hc["CapDrop"] == ["ALL"] and "no-new-privileges" in hc["SecurityOpt"] and hc["PidsLimit"] > 0
    assert container.attrs["Config"]["User"] == "1000:100"
    assert not any("docker.sock" in (m.get("Source") or "") for m in container.attrs["Mounts"])
    assert list(container.attrs["NetworkSettings"]["Networks"]) == [f"{hub.network_prefix}{hub.site}-alice"]
    env = dict(e.split("=", 1) for e in container.attrs["Config"]["Env"])
    assert env["BERTH_SERVICE_URL"].endswith("/services/berth/") and env["BERTH_KERNEL_IDLE_TIMEOUT"] == "600"

    # The hub's Berth service keeps a warm pool by default (with user_volume, hand-over at its target):
    # wait until it holds a ready container, so the kernel below adopts one.
    alice_net = f"{hub.network_prefix}{hub.site}-alice"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        pool = client.containers.list(filters={"label": ["io.jupyter.berth.kind=pool", hub.site_label]})
        if any(list(c.attrs["NetworkSettings"]["Networks"]) == [f"berth-pool-{hub.site}"] for c in pool):
            break
        time.sleep(0.5)
    # A Berth kernel for a notebook, started as JupyterLab does: a session through the user
    # server's own REST API (via the hub's proxy).
    r = httpx.post(
        f"{hub.url}/user/alice/api/sessions",
        headers=hub.headers,
        timeout=90,
        json={"path": "lab1.ipynb", "type": "notebook", "name": "lab1.ipynb", "kernel": {"name": KERNEL_SPEC}},
    )
    assert r.status_code == 201, f"{r.status_code} {r.text}\n{hub.log_tail()}\n{container.logs(tail=30).decode()}"
    kernel_id = r.json()["kernel"]["id"]
    out = asyncio.run(run_cell(hub, "alice", kernel_id, "import json\n" + CELL))
    limits = json.loads(out.strip().splitlines()[-1])
    # the class policy's default kernel request: 0.25 CPU, 256 MiB
    assert limits["mem"] == str(256 * 2**20) and limits["quota"] in ("25000", "25000 100000")
    assert limits["uid"] == 1000 and limits["cwd"] == "/home/jovyan/work"
    # the kernel is an adopted pool container (its labels stay the pool's; the ledger knows it is alice's):
    # alice's volume was handed over (cwd above), it joined alice's network and left the pool's
    deadline = time.monotonic() + 10
    while True:
        kernels = [
            c
            for c in client.containers.list(filters={"label": [hub.site_label], "network": alice_net})
            if c.labels.get("io.jupyter.berth.kind") in ("kernel", "pool")
        ]
        networks = [list(c.attrs["NetworkSettings"]["Networks"]) for c in kernels]
        if networks == [[alice_net]] or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert networks == [[alice_net]] and kernels[0].labels["io.jupyter.berth.kind"] == "pool"


def test_a_full_host_queues_spawns_with_their_place(hub):
    # alice holds 0.5 (server) + 0.25 (kernel) of 1 CPU: bob's 0.5 must wait, teacher waits behind him.
    async def spawn(user, options):
        async with httpx.AsyncClient(headers=hub.headers, timeout=60) as c:
            return await c.post(f"{hub.api}/users/{user}/server", json=options)

    async def scenario():
        bob = asyncio.ensure_future(spawn("bob", {"cpu": 0.5, "mem": "512M"}))
        await asyncio.sleep(1.0)
        teacher = asyncio.ensure_future(spawn("teacher", {"cpu": 0.25, "mem": "512M"}))
        await asyncio.sleep(1.0)
        bob_seen = await asyncio.to_thread(progress_messages, hub, "bob", "you are next")
        teacher_seen = await asyncio.to_thread(progress_messages, hub, "teacher", "1 ahead of you")
        assert any("In the queue: waiting for 0.5 CPU; you are next" in m for m in bob_seen), bob_seen
        assert any("waiting for 0.5 CPU; 1 ahead of you" in m for m in teacher_seen), teacher_seen
        # the queue on JupyterHub's own Prometheus endpoint
        metrics = (await asyncio.to_thread(httpx.get, f"{hub.url}/hub/metrics", headers=hub.headers, timeout=30)).text
        assert "berth_spawn_queue_waiting 2.0" in metrics, [line for line in metrics.splitlines() if "berth_" in line]
        # nobody timed out while queued; alice stops, the queue moves in order
        r = await asyncio.to_thread(api, hub, "DELETE", "/users/alice/server")
        assert r.status_code in (202, 204)
        return await bob, await teacher

    bob, teacher = asyncio.run(scenario())
    assert bob.status_code in (201, 202) and teacher.status_code in (201, 202)
    wait_ready(hub, "bob")
    wait_ready(hub, "teacher")
    for user in ("bob", "teacher"):
        assert api(hub, "DELETE", f"/users/{user}/server").status_code in (202, 204)


def test_max_lifetime_stops_the_server_and_the_form_says_why(hub):
    r = api(hub, "POST", "/users/carol/server", json={"cpu": 0.25, "mem": "256M"})
    assert r.status_code in (201, 202), r.text
    wait_ready(hub, "carol")
    deadline = time.monotonic() + 30
    while api(hub, "GET", "/users/carol").json()["servers"] and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not api(hub, "GET", "/users/carol").json()["servers"], "the server outlived its max_lifetime"
    # carol logs in (the demo's DummyAuthenticator) and opens the spawn form: it says why
    with httpx.Client(base_url=hub.url, timeout=30) as browser:
        browser.get("/hub/login")
        browser.post(
            "/hub/login", data={"username": "carol", "password": "berth-demo", "_xsrf": browser.cookies.get("_xsrf")}
        )
        page = browser.get("/hub/spawn").text
    assert "Your previous server was stopped at" in page
    assert "maximum lifetime of your policy" in page and "max_lifetime set by user carol" in page
    # the disk field, bounded by her max_disk, saying how this engine holds it: by the engine (enforced), or,
    # measured, not at all on this test hub (its usage sampling is off)
    assert re.search(r'name="disk" value="3" step="0.0625" min="0.0625" max="3"', page), page
    assert "in GiB: at most 3 GiB" in page, page
    assert "Held by the engine" in page or "Not checked on this hub (usage sampling is off)" in page, page

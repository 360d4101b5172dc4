"""The hub-managed Berth service with real parts: a JupyterHub subprocess (with its proxy) that
starts ``python -m jupyter_berth.hub.service`` as a managed service, the real Docker engine
and kernel image, users' tokens from the hub's REST API, and kernels reached with
jupyter_client from the host.

One hub serves the whole module (the tests build on each other's state in order:
alice's kernel is started once and must survive the restarts at the end).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import secrets
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import docker
import httpx
import pytest
import pytest_asyncio
from jupyter_client.asynchronous import AsyncKernelClient

from jupyter_berth.errors import NotFoundError, PolicyError
from jupyter_berth.kernels.remote import RemoteBackend
from jupyter_berth.ledger import Ledger
from jupyter_berth.runtime.base import Mount
from tests.hub_process import free_port

IMAGE = "berth/python:3.11"
SITE = f"hubtest-{secrets.token_hex(3)}"
VOLUME_PREFIX = f"berth-{SITE}-"
SERVICE = "berth"
RUNNING = "JupyterHub is now running"


class Hub:
    """A real JupyterHub in a subprocess, with the Berth service as a managed service."""

    def __init__(self, root: Path):
        self.root = root
        self.proxy_port, self.hub_port, self.api_port, self.service_port = (free_port() for _ in range(4))
        self.admin_token = secrets.token_hex(16)
        self.data_dir = root / "berth-data"
        self.data_dir.mkdir()
        self.service_url = f"http://127.0.0.1:{self.service_port}/services/{SERVICE}/"
        self.hub_api = f"http://127.0.0.1:{self.hub_port}/hub/api/"
        self.proc: subprocess.Popen | None = None
        self.tokens: dict[str, str] = {}
        (root / "jupyter_berth_config.py").write_text(
            textwrap.dedent(f"""
            c.BerthService.data_dir = {str(self.data_dir)!r}
            c.BerthService.site_id = {SITE!r}
            c.BerthService.network_prefix = "berth-ht-"
            c.UsageTracker.sample_interval = 0
            c.BerthService.stop_timeout = 2
            c.BerthService.default_policy = {{"max_cpu": 1, "max_mem": "1G", "default": {{"cpu": 0.5, "mem": "256M"}}}}
            c.BerthHubService.user_volume = "{VOLUME_PREFIX}{{username}}"
        """)
        )
        (root / "jupyterhub_config.py").write_text(
            textwrap.dedent(f"""
            import sys
            c.JupyterHub.ip = "127.0.0.1"
            c.JupyterHub.port = {self.proxy_port}
            c.JupyterHub.hub_ip = "127.0.0.1"
            c.JupyterHub.hub_port = {self.hub_port}
            c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{self.api_port}"
            c.ConfigurableHTTPProxy.pid_file = {str(root / "proxy.pid")!r}
            c.JupyterHub.db_url = "sqlite:///{root / "jupyterhub.sqlite"}"
            c.JupyterHub.cookie_secret_file = {str(root / "cookie_secret")!r}
            c.JupyterHub.authenticator_class = "dummy"
            c.Authenticator.allowed_users = {{"alice", "bob", "carol"}}
            c.Authenticator.admin_users = {{"carol"}}
            c.JupyterHub.load_groups = {{"students": {{"users": ["alice", "bob"]}}}}
            c.JupyterHub.load_roles = [
                # every user may call the Berth service (docs/hub-service.md)
                {{"name": "user", "scopes": ["self", "access:services!service={SERVICE}"]}},
                {{"name": "test-admin", "scopes": ["admin:users", "tokens", "access:services"], "services": ["test-admin"]}},
                {{"name": "berth-service", "scopes": ["read:users:name", "read:groups:name"], "services": ["{SERVICE}"]}},
            ]
            c.JupyterHub.services = [
                {{"name": "{SERVICE}", "url": "http://127.0.0.1:{self.service_port}",
                  "command": [sys.executable, "-m", "jupyter_berth.hub.service", "--config={root / "jupyter_berth_config.py"}"],
                  "oauth_no_confirm": True, "environment": {{"BERTH_EXTRA_LABELS": {os.environ.get("BERTH_EXTRA_LABELS", "")!r}}}}},
                {{"name": "test-admin", "api_token": {self.admin_token!r}}},
            ]
        """)
        )

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self, timeout: float = 60) -> None:
        log_path = self.root / "hub.log"
        runs = log_path.read_text(errors="replace").count(RUNNING) if log_path.exists() else 0
        log = open(log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyterhub", "-f", str(self.root / "jupyterhub_config.py")],
            cwd=self.root,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(self.hub_api, timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            self._check_alive(deadline)
            time.sleep(0.2)
        if not self.tokens:
            for user in ("alice", "bob", "carol"):
                self.tokens[user] = self.new_token(user)
        self.wait_for_service(deadline)
        # the hub handles SIGTERM (stopping its proxy and services) only once it says it is running
        while log_path.read_text(errors="replace").count(RUNNING) <= runs:
            self._check_alive(deadline)
            time.sleep(0.1)

    def new_token(self, user: str, scopes: list[str] | None = None) -> str:
        body = {"note": "test_hub_service", **({"scopes": scopes} if scopes is not None else {})}
        r = httpx.post(
            f"{self.hub_api}users/{user}/tokens",
            json=body,
            headers={"Authorization": f"token {self.admin_token}"},
            timeout=10,
        )
        assert r.status_code == 201, r.text
        return r.json()["token"]

    def wait_for_service(self, deadline: float) -> None:
        while True:
            try:
                r = httpx.get(self.service_url + "api/info", headers=self.auth("alice"), timeout=2)
                if r.status_code == 200:
                    return
            except httpx.TransportError:
                pass
            self._check_alive(deadline)
            time.sleep(0.2)

    def _check_alive(self, deadline: float) -> None:
        if self.proc.poll() is not None or time.monotonic() > deadline:
            tail = (self.root / "hub.log").read_text(errors="replace")[-4000:]
            raise AssertionError(f"hub or Berth service did not come up; hub.log ends:\n{tail}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        children = [pid for pid in (self._proxy_pid(), self._service_pid_or_none()) if pid]
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        for pid in children:  # the hub stops them; make sure, should it have died first
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def _proxy_pid(self) -> int | None:
        try:
            return int((self.root / "proxy.pid").read_text())
        except (OSError, ValueError):
            return None

    def _service_pid_or_none(self) -> int | None:
        try:
            return self.service_pid()
        except AssertionError:
            return None

    def service_pid(self) -> int:
        """The pid of the Berth service the hub runs (a child of the hub process)."""
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
            except (OSError, IndexError, ValueError):
                continue
            if ppid == self.proc.pid and b"jupyter_berth.hub.service" in cmdline:
                return int(entry.name)
        raise AssertionError("the Berth service process is not running under the hub")

    def auth(self, user: str) -> dict:
        return {"Authorization": f"token {self.tokens[user]}"}

    def backend(self, user: str) -> RemoteBackend:
        return RemoteBackend(self.service_url, token=self.tokens[user])


def cleanup_engine() -> None:
    client = docker.from_env()
    try:
        for c in client.containers.list(all=True, filters={"label": f"io.jupyter.berth.site={SITE}"}):
            c.remove(force=True)
        for n in client.networks.list(filters={"label": f"io.jupyter.berth.site={SITE}"}):
            n.remove()
        for v in client.volumes.list():
            if v.name.startswith(VOLUME_PREFIX):
                v.remove(force=True)
    finally:
        client.close()


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    h = Hub(tmp_path_factory.mktemp("hub"))
    try:
        h.start()
        yield h
    finally:
        h.stop()
        cleanup_engine()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def alice_kernel(hub):
    """Alice's kernel, started through the service as her server's provisioner would start it."""
    launch = await hub.backend("alice").start_kernel(
        kernel_id=str(uuid.uuid4()),
        image=IMAGE,
        cwd="/home/jovyan/work",
        mounts=[
            Mount(source="/home/jovyan", target="/home/jovyan")
        ],  # the server's root dir, as the provisioner sends it
        env={
            "JPY_SESSION_NAME": "/home/jovyan/work/a.ipynb",
            "JUPYTERHUB_API_TOKEN": "must-not-pass",
            "BERTH_USER": "bob",
            "LD_PRELOAD": "/tmp/x.so",
        },
        key=secrets.token_hex(32),
    )
    return launch


async def wait_for_kernel(kc: AsyncKernelClient, timeout: float) -> None:
    """Until the kernel answers kernel_info on shell *and* its iopub status reaches us.

    (``wait_for_ready`` of a client without a manager gives up as soon as the heartbeat has not
    beaten yet, which a busy host makes likely; and a SUB socket that has not finished
    subscribing misses the first outputs, so the iopub side is awaited too.)"""
    deadline = time.monotonic() + timeout
    while True:
        msg_id = kc.kernel_info()
        try:
            while True:
                reply = await kc.get_shell_msg(timeout=2)
                if reply["parent_header"].get("msg_id") == msg_id:
                    break
            while True:
                msg = await kc.get_iopub_msg(timeout=2)
                if (
                    msg["parent_header"].get("msg_id") == msg_id
                    and msg["msg_type"] == "status"
                    and msg["content"].get("execution_state") == "idle"
                ):
                    return
        except queue.Empty:
            assert time.monotonic() < deadline, "the kernel did not answer kernel_info on shell and iopub"


async def run_cell(connection: dict, code: str) -> tuple[str, str]:
    """Connect from the host with jupyter_client and execute; returns (status, stdout)."""
    kc = AsyncKernelClient()
    kc.load_connection_info(connection)
    kc.start_channels()
    out: list[str] = []
    try:
        await wait_for_kernel(kc, timeout=60)
        reply = await kc.execute_interactive(
            code,
            timeout=30,
            output_hook=lambda m: out.append(m["content"].get("text", "")) if m["msg_type"] == "stream" else None,
        )
        return reply["content"]["status"], "".join(out)
    finally:
        kc.stop_channels()


PROBE = """
import json, os
mounts = [l.split()[4] for l in open('/proc/self/mountinfo')]
print(json.dumps({"cwd": os.getcwd(), "work_mounted": "/home/jovyan/work" in mounts,
                  "token": os.environ.get("JUPYTERHUB_API_TOKEN"), "user": os.environ.get("BERTH_USER"),
                  "session": os.environ.get("JPY_SESSION_NAME"), "preload": os.environ.get("LD_PRELOAD")}))
"""


# ---- authentication ---------------------------------------------------------------------------------
@pytest.mark.parametrize("headers", [{}, {"Authorization": "token not-a-real-token"}])
@pytest.mark.docker
@pytest.mark.slow
def test_refuses_requests_without_a_valid_token(hub, headers):
    for method, path in (
        ("GET", "api/kernels"),
        ("POST", "api/kernels"),
        ("GET", "api/policy"),
        ("DELETE", "api/kernels/x"),
        ("PUT", "api/policies/default"),
    ):
        r = httpx.request(method, hub.service_url + path, headers=headers, json={}, timeout=10)
        assert r.status_code == 401, (method, path, r.text)
        assert "JupyterHub token" in r.json()["message"]


@pytest.mark.docker
@pytest.mark.slow
def test_token_without_the_access_scope_is_forbidden(hub):
    narrow = hub.new_token("alice", scopes=["read:users:name!user=alice"])
    r = httpx.get(hub.service_url + "api/kernels", headers={"Authorization": f"token {narrow}"}, timeout=10)
    assert r.status_code == 403
    assert f"access:services!service={SERVICE}" in r.json()["message"]


# ---- kernels --------------------------------------------------------------------------------------------
@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.asyncio(loop_scope="module")
async def test_kernel_started_with_a_user_token_runs_a_cell(hub, alice_kernel):
    launch = alice_kernel
    assert launch.image == IMAGE and launch.resources.cpu == 0.5 and launch.resources.mem == 256 * 1024**2
    assert isinstance(launch.connection["key"], bytes)
    status, out = await run_cell(launch.connection, PROBE)
    assert status == "ok", out
    got = json.loads(out)
    assert got == {
        "cwd": "/home/jovyan/work",
        "work_mounted": True,
        "token": None,
        "user": "alice",
        "session": "/home/jovyan/work/a.ipynb",
        "preload": None,
    }
    volume = docker.from_env().containers.get(launch.container_id).attrs["Mounts"]
    assert [(m["Type"], m["Name"], m["Destination"]) for m in volume] == [
        ("volume", f"{VOLUME_PREFIX}alice", "/home/jovyan/work")
    ]
    state = await hub.backend("alice").kernel_state(launch.kernel_id)
    assert state.running and state.id == launch.container_id
    mine = await hub.backend("alice").list_kernels()
    assert [k["kernel_id"] for k in mine] == [launch.kernel_id]


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.asyncio(loop_scope="module")
async def test_another_user_cannot_reach_the_kernel_through_any_route(hub, alice_kernel):
    bob = hub.backend("bob")
    kid = alice_kernel.kernel_id
    for call in (
        bob.kernel_state(kid),
        bob.signal_kernel(kid, signal.SIGINT),
        bob.stop_kernel(kid, now=True),
        bob.kernel_ended(kid),
    ):
        with pytest.raises(NotFoundError, match="no running kernel"):
            await call
    assert await bob.list_kernels() == []
    r = httpx.get(hub.service_url + "api/kernels?all=1", headers=hub.auth("bob"), timeout=10)
    assert r.status_code == 403 and "admin" in r.json()["message"]
    # starting a kernel under alice's kernel id neither touches nor reveals hers: bob gets his own
    bobs = await bob.start_kernel(kernel_id=kid, image=IMAGE, request={"cpu": 0.25, "mem": "128M"})
    assert bobs.kernel_id == kid and bobs.container_id != alice_kernel.container_id
    await bob.stop_kernel(kid, now=True)
    with pytest.raises(PolicyError, match="only your own server's work directory") as e:
        await bob.start_kernel(kernel_id=str(uuid.uuid4()), mounts=[Mount("/home/alice", "/var/lib/docker")])
    assert e.value.limit == "mounts"
    assert await bob.list_kernels() == []
    assert (await hub.backend("alice").kernel_state(kid)).running
    status, out = await run_cell(alice_kernel.connection, "print(6 * 7)")
    assert (status, out.strip()) == ("ok", "42")
    # an admin sees every user's kernels
    r = httpx.get(hub.service_url + "api/kernels?all=1", headers=hub.auth("carol"), timeout=10)
    assert [(k["owner"], k["kernel_id"]) for k in r.json()["kernels"]] == [("alice", kid)]


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.asyncio(loop_scope="module")
async def test_bad_input_is_refused_naming_the_field_and_reserves_nothing(hub, alice_kernel):
    async with httpx.AsyncClient(base_url=hub.service_url, headers=hub.auth("alice"), timeout=30) as client:

        async def start(body, raw=None):
            return await client.post("api/kernels", content=raw if raw is not None else json.dumps(body))

        cases = [
            (None, "{not json", 400, "body"),
            ([1, 2], None, 400, "body"),
            ({"kernel_id": "k1", "image": "berth/none:0"}, None, 400, "image"),
            ({"kernel_id": "k1", "request": {"mem": "-1G"}}, None, 400, "mem"),
            ({"kernel_id": "k1", "request": {"cpu": -2}}, None, 400, "cpu"),
            ({"kernel_id": "k1", "request": {"cpu": 1, "mem": "2G"}}, None, 403, "max_mem"),
            ({"kernel_id": "k1", "preset": "huge"}, None, 400, "preset"),
            ({"kernel_id": "../etc"}, None, 400, "kernel_id"),
            ({"kernel_id": "k1", "owner": "bob"}, None, 400, "owner"),
            ({"kernel_id": "k1", "env": {"X": 1}}, None, 400, "env.X"),
        ]
        for body, raw, status, field in cases:
            r = await start(body, raw)
            assert r.status_code == status, (body, raw, r.text)
            data = r.json()
            assert data["message"]
            if status == 400:
                assert data["field"] == field and data["error"] == "RequestError", data
            else:
                assert data["limit"] == field and "1 GiB" in data["message"] and "default" in data["message"], data
        # issue 20, item 5: deep bodies were a 500, huge ones took seconds; now the limit is named
        for method, path in (("POST", "api/kernels"), ("PUT", "berth/api/profile")):
            for raw in ("[" * 100_000 + "]" * 100_000, '{"a":' * 50_000 + "1" + "}" * 50_000):
                r = await client.request(method, path, content=raw)
                assert r.status_code == 400 and "levels of arrays and objects" in r.json()["message"], r.text
        r = await client.post("api/kernels", content=" " * (50 * 2**20))
        assert r.status_code == 413 and "request size limit" in r.json()["message"], r.text
        r = await client.put("api/policies/groups/students", content=" " * (2 * 2**20))  # before any auth check
        assert r.status_code == 413, r.text
        r = await client.delete(f"api/kernels/{alice_kernel.kernel_id}?reason=because")
        assert r.status_code == 400 and r.json()["field"] == "reason"
        r = await client.post(f"api/kernels/{alice_kernel.kernel_id}/signal", json={"signal": "SIGSTOP"})
        assert r.status_code == 400 and r.json()["field"] == "signal"
    mine = await hub.backend("alice").list_kernels()
    assert [k["kernel_id"] for k in mine] == [alice_kernel.kernel_id]  # nothing else reserved


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.asyncio(loop_scope="module")
async def test_admin_changes_a_group_policy_at_run_time(hub):
    alice = hub.backend("alice")
    async with httpx.AsyncClient(base_url=hub.service_url, timeout=30) as client:
        policy = (await alice.policy())["policy"]
        assert policy["max_cpu"] == 1 and policy["sources"]["max_cpu"] == "default"
        r = await client.put("api/policies/groups/students", json={"max_cpu": 0.25}, headers=hub.auth("alice"))
        assert r.status_code == 403
        r = await client.put("api/policies/groups/students", json={"max_cpu": -1}, headers=hub.auth("carol"))
        assert r.status_code == 400 and r.json()["field"] == "group students.max_cpu"
        r = await client.put("api/policies/groups/students", json={"max_cpu": 0.25}, headers=hub.auth("carol"))
        assert r.status_code == 200, r.text
        try:
            policy = (await alice.policy())["policy"]
            assert policy["max_cpu"] == 0.25 and policy["sources"]["max_cpu"] == "group students"
            with pytest.raises(PolicyError, match="group students") as e:
                await alice.start_kernel(kernel_id=str(uuid.uuid4()), request={"cpu": 0.5})
            assert e.value.limit == "max_cpu"
            listed = (await client.get("api/policies", headers=hub.auth("carol"))).json()
            assert listed["stored"]["groups"] == {"students": {"max_cpu": 0.25}}
        finally:
            r = await client.delete("api/policies/groups/students", headers=hub.auth("carol"))
            assert r.status_code == 200
        assert (await alice.policy())["policy"]["max_cpu"] == 1
        r = await client.delete("api/policies/groups/students", headers=hub.auth("carol"))
        assert r.status_code == 404


# ---- restarts -------------------------------------------------------------------------------------------
async def wait_for_new_service(hub: Hub, old_pid: int, timeout: float = 45) -> int:
    """Wait until the hub has started another service process and it answers."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            pid = hub.service_pid()
            if pid != old_pid:
                await asyncio.to_thread(hub.wait_for_service, deadline)
                return pid
        except AssertionError:
            pass
        assert time.monotonic() < deadline, "the hub did not restart the Berth service"
        await asyncio.sleep(0.5)


async def wait_gone(pid: int, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while Path(f"/proc/{pid}").exists() and "Z" not in _state(pid):
        assert time.monotonic() < deadline, f"process {pid} did not exit"
        await asyncio.sleep(0.1)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "Z"


async def assert_adopted(hub: Hub, launch) -> None:
    alice = hub.backend("alice")
    assert (await alice.kernel_state(launch.kernel_id)).running
    [listed] = await alice.list_kernels()
    assert (listed["kernel_id"], listed["allocation_id"], listed["state"]) == (
        launch.kernel_id,
        launch.allocation_id,
        "running",
    )
    status, out = await run_cell(launch.connection, "print('still here')")
    assert (status, out.strip()) == ("ok", "still here")


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.asyncio(loop_scope="module")
async def test_service_stopped_with_sigterm_is_restarted_by_the_hub_and_adopts_the_kernel(hub, alice_kernel):
    old = hub.service_pid()
    os.kill(old, signal.SIGTERM)
    await wait_gone(old)
    started = time.monotonic()
    new = await wait_for_new_service(hub, old)  # the hub polls its managed services every ~30 s
    print(f"the hub restarted the Berth service {time.monotonic() - started:.1f} s after it exited")
    assert new != old
    await assert_adopted(hub, alice_kernel)


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.asyncio(loop_scope="module")
async def test_a_burst_of_starts_across_a_service_sigkill_fails_none_and_leaks_nothing(hub, alice_kernel):
    """Issue 20, item 3: every start while the service was down failed at once with 503."""
    alice = hub.backend("alice")
    old = hub.service_pid()
    ids = [str(uuid.uuid4()) for _ in range(4)]

    async def start(i: int, kernel_id: str):
        await asyncio.sleep(0.4 * i)  # spread over the kill: before it, in flight, while nothing listens
        return await alice.start_kernel(kernel_id=kernel_id, image=IMAGE, request={"cpu": 0.1, "mem": "128M"})

    async def kill():
        await asyncio.sleep(0.5)
        os.kill(old, signal.SIGKILL)

    results = await asyncio.gather(*(start(i, k) for i, k in enumerate(ids)), kill(), return_exceptions=True)
    failed = [r for r in results[:-1] if isinstance(r, BaseException)]
    assert failed == [], failed  # 0 failed starts
    assert hub.service_pid() != old
    try:
        for launch in results[:-1]:
            status, out = await run_cell(launch.connection, "print(1 + 1)")
            assert (status, out.strip()) == ("ok", "2")
        # 0 leaked: the ledger's live allocations are exactly the running containers, one per kernel
        listed = {k["kernel_id"]: k["container_id"] for k in await alice.list_kernels()}
        assert sorted(listed) == sorted([alice_kernel.kernel_id, *ids])
        client = docker.from_env()
        site = {c.id: c for c in client.containers.list(filters={"label": [f"io.jupyter.berth.site={SITE}"]})}
        # (a kernel that adopted a warm-pool container keeps the pool's labels: it is found by its id)
        labelled = {cid for cid, c in site.items() if c.labels.get("io.jupyter.berth.owner") == "alice"}
        assert set(listed.values()) <= set(site) and labelled <= set(listed.values())
    finally:
        for kernel_id in ids:
            with contextlib.suppress(NotFoundError):
                await alice.stop_kernel(kernel_id, now=True)


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.asyncio(loop_scope="module")
async def test_sigkill_and_hub_restart_lose_no_kernel_and_release_the_lost_one(hub, alice_kernel):
    alice = hub.backend("alice")
    doomed = await alice.start_kernel(kernel_id=str(uuid.uuid4()), image=IMAGE)
    os.kill(hub.service_pid(), signal.SIGKILL)  # no chance to clean up
    await asyncio.to_thread(hub.stop)  # the hub (and its proxy) go down too
    # while nothing runs, the second kernel's container is removed behind Berth's back
    await asyncio.to_thread(lambda: docker.from_env().containers.get(doomed.container_id).remove(force=True))
    await asyncio.to_thread(hub.start)
    await assert_adopted(hub, alice_kernel)
    with pytest.raises(NotFoundError):
        await alice.kernel_state(doomed.kernel_id)
    ledger = Ledger(data_dir=str(hub.data_dir), auto_upgrade=False)
    try:
        alloc = ledger.get_allocation(doomed.allocation_id)
        assert (alloc.state, alloc.release_reason) == ("released", "lost")
        assert ledger.get_allocation(alice_kernel.allocation_id).state == "running"
    finally:
        ledger.close()
    # finally a clean stop through the service releases the adopted kernel
    reason, message = await alice.stop_kernel(alice_kernel.kernel_id, now=True)
    assert reason == "shutdown" and await alice.list_kernels() == []

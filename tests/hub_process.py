"""A real JupyterHub in a subprocess, configured as the hub demo (jupyter_berth.hub.demo_config).

Used by tests/test_hub_spawn.py and benchmarks/classroom_burst.py. Every port is free and
picked at random, the state lives in a temporary directory, and the per-user networks get
a prefix of their own, so a run never touches the demo's or another test's hub.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import docker
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

RUNNING = "JupyterHub is now running"
#: The single-user image the hub tests spawn (``berth images bootstrap --all`` builds it).
SERVER_IMAGE = "berth/singleuser:3.11"


def server_image_or_skip(image: str = SERVER_IMAGE) -> None:
    """Skip a hub test whose single-user image is not built (in CI, where scripts/test.sh builds it: fail)."""
    import pytest

    try:
        docker.from_env().images.get(image)
    except docker.errors.ImageNotFound:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"{image} is not built: run `berth images bootstrap --all`")


class HubLog:
    """What every test hub does with its process and its log (``proc``, ``log_path``)."""

    proc: subprocess.Popen | None = None
    log_path: Path

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def interrupt(self, timeout: float) -> None:
        """SIGINT the hub (it stops users' servers and its services); SIGKILL its group after ``timeout``."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


@contextlib.contextmanager
def running(hub: HubProcess):
    """Start ``hub`` for a ``with`` block; stop it after, printing the end of its log (shown on failure)."""
    hub.start()
    try:
        yield hub
    finally:
        hub.stop()
        print(hub.log_tail(40))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class HubProcess(HubLog):
    """``jupyterhub -f <state>/jupyterhub_config.py`` with the Berth spawner and service.

    ``spawner`` is ``"berth"`` or ``"docker"`` (plain DockerSpawner on the same image, for
    comparisons); ``extra`` is appended to jupyterhub_config.py, ``berth_extra`` to the
    Berth config both the hub and the service read.
    """

    def __init__(
        self,
        root: Path,
        *,
        users=("alice", "bob", "teacher"),
        spawner: str = "berth",
        extra: str = "",
        berth_extra: str = "",
        cpu_overcommit: float = 4.0,
        policies: dict | None = None,
        network_prefix: str | None = None,
        site: str | None = None,
    ):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.port, self.hub_port, self.service_port, self.proxy_api_port = (free_port() for _ in range(4))
        self.url = f"http://127.0.0.1:{self.port}"
        self.api = f"{self.url}/hub/api"
        self.admin_token = secrets.token_hex(16)
        self.network_prefix = network_prefix or f"berth-t{secrets.token_hex(3)}-"
        #: This run's Berth site: everything the run creates carries it, and cleanup removes only that.
        self.site = site or f"t{secrets.token_hex(5)}"
        self.users = list(users)
        self.log_path = self.root / "hub.log"
        berth_config = self.root / "jupyter_berth_config.py"
        berth_config.write_text(
            textwrap.dedent(f"""\
            from jupyter_berth.hub.demo_config import configure_berth
            configure_berth(c, state_dir={str(self.root)!r}, cpu_overcommit={cpu_overcommit!r}, policies={policies!r})
            c.BerthService.network_prefix = {self.network_prefix!r}
            c.BerthService.site_id = {self.site!r}
            c.UsageTracker.sample_interval = 0
            c.BerthService.stop_timeout = 2
            c.BerthHubService.user_volume = {self.network_prefix + "user-{username}"!r}
            """)
            + textwrap.dedent(berth_extra)
        )
        hub_config = textwrap.dedent(f"""\
            from jupyter_berth.hub.demo_config import configure
            configure(c, state_dir={str(self.root)!r}, port={self.port}, hub_port={self.hub_port},
                      service_port={self.service_port}, proxy_api_port={self.proxy_api_port}, users={self.users!r},
                      cpu_overcommit={cpu_overcommit!r}, policies={policies!r}, server_idle_timeout=0,
                      service_config={str(berth_config)!r})
            load_subconfig({str(berth_config)!r})
            c.JupyterHub.api_tokens = {{{self.admin_token!r}: "teacher"}}
            c.Authenticator.admin_users = {{"teacher"}}
            c.JupyterHub.log_level = "INFO"
            c.BerthSpawner.user_volume = {self.network_prefix + "user-{username}"!r}
            """)
        if spawner == "docker":
            hub_config += textwrap.dedent(f"""\
                c.JupyterHub.spawner_class = "docker"
                c.DockerSpawner.image = "berth/singleuser:3.11"
                c.DockerSpawner.remove = True
                c.DockerSpawner.pull_policy = "never"
                c.DockerSpawner.prefix = "plain"
                c.DockerSpawner.network_name = {self.network_prefix + "plain"!r}
                c.DockerSpawner.notebook_dir = "/home/jovyan/work"
                c.DockerSpawner.volumes = {{{self.network_prefix + "user-{username}"!r}: "/home/jovyan/work"}}
                c.DockerSpawner.environment = {{"BERTH_SERVICE_URL": c.BerthSpawner.service_url, "BERTH_LOCAL_KERNEL": "1"}}
                """)
        self.config = self.root / "jupyterhub_config.py"
        self.config.write_text(hub_config + textwrap.dedent(extra))
        self.spawner = spawner
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> HubProcess:
        if self.spawner == "docker":
            self._ensure_plain_network()
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyterhub", "-f", str(self.config)],
            cwd=self.root,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyterhub exited with {self.proc.returncode}:\n{self.log_tail()}")
            if RUNNING in self.log_path.read_text(errors="replace"):
                return self
            time.sleep(0.2)
        raise RuntimeError(f"jupyterhub did not start in {timeout} s:\n{self.log_tail()}")

    def _ensure_plain_network(self) -> None:
        client = docker.from_env()
        name = self.network_prefix + "plain"
        if not client.networks.list(names=[name]):
            client.networks.create(name, driver="bridge", labels={"io.jupyter.berth.test": "1"})

    def stop(self, timeout: float = 30) -> None:
        """Interrupt the hub (it stops users' servers and its services), then clean what it left."""
        self.interrupt(timeout)
        self.cleanup_engine()

    def cleanup_engine(self) -> None:
        """Remove what this run created, and nothing else: what carries its site label, the plain
        spawner's containers on this run's own network, volumes named with this run's prefix."""
        client = docker.from_env()
        site_label = {"label": f"io.jupyter.berth.site={self.site}"}
        plain = self.network_prefix + "plain"
        doomed = client.containers.list(all=True, filters=site_label)
        if self.spawner == "docker":
            doomed += client.containers.list(all=True, filters={"network": plain})
        for c in doomed:
            with contextlib.suppress(docker.errors.NotFound):
                c.remove(force=True)
        for n in client.networks.list(filters=site_label) + client.networks.list(names=[plain]):
            if n.name == plain or n.attrs.get("Labels", {}).get("io.jupyter.berth.site") == self.site:
                with contextlib.suppress(docker.errors.APIError):
                    n.remove()
        for v in client.volumes.list(filters=site_label) + client.volumes.list():
            if (
                v.name.startswith(self.network_prefix)
                or (v.attrs.get("Labels") or {}).get("io.jupyter.berth.site") == self.site
            ):
                with contextlib.suppress(docker.errors.APIError):
                    v.remove(force=True)
        client.close()
        self._unmount_handover()

    def _unmount_handover(self) -> None:
        """Undo the mount hand-over roots of this run's pools (their containers are gone by now)."""
        from jupyter_berth.pool.mount_handover import MountHandover

        base = self.root / "berth" / "handover"
        for site in (self.site, f"{self.site}-servers"):
            handover = MountHandover(str(base), site)
            with contextlib.suppress(OSError):
                handover.clean(keep=())
                handover.teardown()

    def server_pool(self) -> dict[str, tuple[str, str]]:
        """The server pool's waiting containers: ``{id: (address, token)}`` (read as the engine's holder can)."""
        client = docker.from_env()
        found = {}
        try:
            for c in client.containers.list(filters={"label": [self.site_label, "io.jupyter.berth.server_pool=1"]}):
                if c.name.startswith(f"berth-spool-{self.site}-"):
                    env = dict(e.split("=", 1) for e in c.attrs["Config"]["Env"])
                    ip = next(iter(c.attrs["NetworkSettings"]["Networks"].values()))["IPAddress"]
                    found[c.id] = (ip, env["BERTH_POOL_TOKEN"])
        finally:
            client.close()
        return found

    def wait_server_pool(self, n: int = 1, timeout: float = 90) -> dict[str, tuple[str, str]]:
        """Until ``n`` waiting servers answer their token's ping with ``ready`` (their imports are done)."""
        from jupyter_berth.pool.activation import pool_request

        deadline = time.monotonic() + timeout
        while True:
            ready = {}
            for cid, (ip, token) in self.server_pool().items():
                with contextlib.suppress(OSError, ValueError, TimeoutError, asyncio.TimeoutError):
                    reply = asyncio.run(pool_request(ip, {"token": token, "op": "ping"}, 2.0))
                    if reply.get("status") == "ready":
                        ready[cid] = (ip, token)
            if len(ready) >= n:
                return ready
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server pool has no {n} ready server(s) after {timeout} s\n{self.log_tail()}")
            time.sleep(0.3)

    @property
    def site_label(self) -> str:
        """The engine filter for what this run's Berth made."""
        return f"io.jupyter.berth.site={self.site}"

    @property
    def headers(self) -> dict:
        return {"Authorization": f"token {self.admin_token}"}

    @property
    def service_url(self) -> str:
        """The Berth service as user servers reach it (the demo has it listen on docker0's address)."""
        from jupyter_berth.hub.demo_config import docker_host_ip

        return f"http://{docker_host_ip()}:{self.service_port}/services/berth/"

    def new_token(self, user: str, scopes: list[str] | None = None) -> str:
        """A new hub token of ``user`` (made with the admin token), with ``scopes`` or the user's own."""
        import httpx

        body = {"note": "tests", **({"scopes": scopes} if scopes is not None else {})}
        r = httpx.post(f"{self.api}/users/{user}/tokens", json=body, headers=self.headers, timeout=30)
        if r.status_code != 201:
            raise RuntimeError(f"no token for {user}: {r.status_code} {r.text}")
        return r.json()["token"]

    def wait_for_service(self, token: str, timeout: float = 60) -> None:
        """Until the Berth service answers ``api/info`` for ``token`` (the hub starts it after itself)."""
        import httpx

        deadline = time.monotonic() + timeout
        while True:
            try:
                if (
                    httpx.get(
                        self.service_url + "api/info", headers={"Authorization": f"token {token}"}, timeout=5
                    ).status_code
                    == 200
                ):
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or (self.proc is not None and self.proc.poll() is not None):
                raise RuntimeError(f"the Berth service did not answer in {timeout} s:\n{self.log_tail()}")
            time.sleep(0.3)


async def run_cell(hub: HubProcess, user: str, kernel_id: str, code: str, timeout: float = 30) -> str:
    """Execute ``code`` in a kernel through the user server's websocket (via the hub's proxy); its stdout."""
    url = f"ws://127.0.0.1:{hub.port}/user/{user}/api/kernels/{kernel_id}/channels"
    ws = await websocket_connect(HTTPRequest(url, headers=hub.headers, request_timeout=timeout))
    msg_id = uuid.uuid4().hex
    ws.write_message(
        json.dumps(
            {
                "header": {
                    "msg_id": msg_id,
                    "username": user,
                    "session": uuid.uuid4().hex,
                    "msg_type": "execute_request",
                    "version": "5.3",
                    "date": "",
                },
                "parent_header": {},
                "metadata": {},
                "channel": "shell",
                "buffers": [],
                "content": {
                    "code": code,
                    "silent": False,
                    "store_history": False,
                    "user_expressions": {},
                    "allow_stdin": False,
                    "stop_on_error": True,
                },
            }
        )
    )
    out = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            raw = await asyncio.wait_for(ws.read_message(), deadline - time.monotonic())
            if raw is None:
                raise RuntimeError("the kernel's websocket closed")
            msg = json.loads(raw)
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = msg["header"]["msg_type"]
            if kind == "stream":
                out.append(msg["content"]["text"])
            elif kind == "error":
                raise RuntimeError("\n".join(msg["content"]["traceback"]))
            elif kind == "status" and msg["content"]["execution_state"] == "idle":
                return "".join(out)
    finally:
        ws.close()
    raise TimeoutError(f"no answer from kernel {kernel_id} in {timeout} s")


__all__ = ["HubProcess", "free_port", "run_cell"]

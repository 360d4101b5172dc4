"""A real JupyterHub whose users' servers run on the test swarm (tests/swarm_cluster.py).

The hub, its proxy (``configurable-http-proxy``) and the hub-managed Berth service are
processes of this machine, running this checkout's code, inside the network namespace of
an "anchor" container on the swarm's manager (``nsenter --net=/proc/<pid>/ns/net``, with an
``/etc/hosts`` of their own that names the anchor, as a container's would). That
is the deployment docs/admin-scale-out.md §2.8 describes (the hub in a container on the
manager), with the hub's code taken from this checkout instead of an image: Berth attaches
the anchor to each user's overlay network (``c.SwarmRuntime.attach_containers``), so the
proxy reaches the servers at their overlay addresses and the servers reach the hub's API
and the Berth service by the anchor's name (Docker's DNS on their network).

Clients talk to the hub from inside the same namespace too (:meth:`SwarmHub.client`: a
Python script run there, printing JSON). The servers run ``berth/singleuser:3.11`` as the
nodes pulled it from the test registry (its own copy of Berth, from the image build).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from .hub_process import RUNNING, HubLog
from .swarm_cluster import IMAGE, NODE_LABELS, REGISTRY, SwarmCluster

#: What the client scripts import first: the hub's address and the admin token (filled in by :meth:`client`).
CLIENT_PRELUDE = """
import asyncio, json, sys, time, uuid
import httpx
URL, TOKEN = {url!r}, {token!r}
API = URL + "/hub/api"
H = {{"Authorization": "token " + TOKEN}}
"""


class SwarmHub(HubLog):
    """``jupyterhub`` in the network namespace of a container on the swarm's manager."""

    def __init__(self, root: Path, cluster: SwarmCluster, *, run: str, users=("ann", "bob"), policy: dict):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.cluster = cluster
        self.anchor = f"berth-test-hub-{run}"
        self.site = f"t{secrets.token_hex(5)}"
        self.port, self.hub_port, self.service_port, self.proxy_api_port = 8000, 8081, 10101, 8001  # its own netns
        self.url = f"http://127.0.0.1:{self.port}"
        self.admin_token = secrets.token_hex(16)
        self.users = list(users)
        self.log_path = self.root / "hub.log"
        self.proc: subprocess.Popen | None = None
        self.anchor_id: str | None = None
        berth = self.root / "jupyter_berth_config.py"
        berth.write_text(
            textwrap.dedent(f"""\
            from jupyter_berth.hub.demo_config import configure_berth
            configure_berth(c, state_dir={str(self.root)!r}, cpu_overcommit=1.0)
            c.BerthService.runtime_kind = "swarm"
            c.BerthService.site_id = {self.site!r}
            c.BerthService.default_policy = {policy!r}
            c.BerthService.group_policies = {{}}
            c.BerthService.user_policies = {{}}
            c.BerthService.stop_timeout = 2
            c.UsageTracker.sample_interval = 0
            c.SwarmRuntime.manager_url = {cluster.manager.url!r}
            c.SwarmRuntime.node_engines = {cluster.node_engines()!r}
            c.SwarmRuntime.registry = {REGISTRY!r}
            c.SwarmRuntime.node_labels = {NODE_LABELS!r}
            c.SwarmRuntime.refresh_interval = 1
            c.SwarmRuntime.pending_grace = 2
            c.SwarmRuntime.attach_containers = [{self.anchor!r}]
            """)
        )
        (self.root / "jupyterhub_config.py").write_text(
            textwrap.dedent(f"""\
            from jupyter_berth.hub.demo_config import configure
            configure(c, state_dir={str(self.root)!r}, port={self.port}, hub_port={self.hub_port},
                      service_port={self.service_port}, proxy_api_port={self.proxy_api_port}, users={self.users!r},
                      server_idle_timeout=0, host_ip="0.0.0.0", service_config={str(berth)!r})
            load_subconfig({str(berth)!r})
            c.JupyterHub.hub_connect_ip = {self.anchor!r}  # servers reach the hub API by the anchor's name
            c.BerthSpawner.service_url = "http://{self.anchor}:{self.service_port}/services/berth/"
            c.BerthSpawner.default_request = {{"cpu": 0.25, "mem": "512M"}}
            c.Spawner.start_timeout = 300
            c.Spawner.poll_interval = 2  # the hub notices a lost server within seconds
            c.Spawner.http_timeout = 300
            c.JupyterHub.api_tokens = {{{self.admin_token!r}: {self.users[0]!r}}}
            c.Authenticator.admin_users = {{{self.users[0]!r}}}
            c.JupyterHub.log_level = "INFO"
            """)
        )

    @property
    def netns(self) -> str:
        return f"/proc/{self._anchor_pid()}/ns/net"

    def _anchor_pid(self) -> int:
        with contextlib.closing(self.cluster.manager.client()) as c:
            return int(c.api.inspect_container(self.anchor)["State"]["Pid"])

    def start(self, timeout: float = 90) -> SwarmHub:
        with contextlib.closing(self.cluster.manager.client()) as c:
            ctr = c.api.create_container(
                f"{REGISTRY}/{IMAGE}",
                ["sleep", "infinity"],
                name=self.anchor,
                user="1000:1000",
                labels={"io.jupyter.berth.test": self.anchor},
            )
            c.api.start(ctr["Id"])
            self.anchor_id = ctr["Id"]
        # In a container the hub resolves its own name; here the processes get a mount namespace of their own
        # whose /etc/hosts says so (and maps this machine's name, which JupyterHub puts in for 0.0.0.0, to here).
        hosts = self.root / "hosts"
        hosts.write_text(f"127.0.0.1 localhost {self.anchor} {socket.gethostname()}\n")
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "--",
                "sh",
                "-c",
                'mount --bind "$0" /etc/hosts && exec "$@"',
                str(hosts),
                "nsenter",
                f"--net={self.netns}",
                "--",
                sys.executable,
                "-m",
                "jupyterhub",
                "-f",
                "jupyterhub_config.py",
            ],
            cwd=self.root,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "PATH": os.environ.get("PATH", "") + ":/usr/local/bin:/usr/bin"},
        )
        log.close()
        deadline = time.monotonic() + timeout
        while RUNNING not in self.log_path.read_text(errors="replace"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"jupyterhub did not start ({self.proc.poll()}):\n{self.log_tail()}")
            time.sleep(0.3)
        return self

    def client(self, body: str, timeout: float = 400) -> dict:
        """Run ``body`` (Python, after :data:`CLIENT_PRELUDE`) in the hub's namespace; the JSON it prints last."""
        code = CLIENT_PRELUDE.format(url=self.url, token=self.admin_token) + textwrap.dedent(body)
        proc = subprocess.run(
            ["nsenter", f"--net={self.netns}", "--", sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"client failed ({proc.returncode}): {proc.stderr[-3000:]}\nhub log:\n{self.log_tail()}")
        return json.loads(proc.stdout.strip().splitlines()[-1])

    def stop(self, timeout: float = 60) -> None:
        """Stop the hub (it stops the servers: cleanup_servers), remove the anchor and what the site left."""
        self.interrupt(timeout)
        with contextlib.closing(self.cluster.manager.client()) as c:
            for service in c.api.services(filters={"label": f"io.jupyter.berth.site={self.site}"}):
                with contextlib.suppress(Exception):
                    c.api.remove_service(service["ID"])
            with contextlib.suppress(Exception):
                c.api.remove_container(self.anchor, force=True)


#: Start a user's server through the hub's REST API and wait until the hub says it is ready; then ask the
#: server (through the proxy) for its status, start a Berth kernel in it and run a cell (through the proxy).
SPAWN_AND_RUN = """
from tornado.websocket import websocket_connect
from tornado.httpclient import HTTPRequest

user = sys.argv[1] if len(sys.argv) > 1 else {user!r}
r = httpx.post(API + f"/users/{{user}}/server", headers=H, json={{}}, timeout=60)
assert r.status_code in (201, 202), (r.status_code, r.text)
deadline = time.monotonic() + 300
while True:
    model = httpx.get(API + f"/users/{{user}}", headers=H, timeout=30).json()
    server = (model.get("servers") or {{}}).get("")
    if server and server.get("ready"):
        break
    assert time.monotonic() < deadline, model
    if not server or not server.get("pending"):
        assert server, ("the spawn failed", model)
    time.sleep(1)
status = httpx.get(URL + f"/user/{{user}}/api/status", headers=H, timeout=30)
kernel = httpx.post(URL + f"/user/{{user}}/api/kernels", headers=H, json={{"name": "berth-python-3.11"}}, timeout=300)
assert kernel.status_code == 201, (kernel.status_code, kernel.text)
kid = kernel.json()["id"]

async def cell(code):
    ws = await websocket_connect(HTTPRequest(f"ws://127.0.0.1:{port}/user/{{user}}/api/kernels/{{kid}}/channels",
                                             headers=H, request_timeout=120))
    msg_id = uuid.uuid4().hex
    ws.write_message(json.dumps({{"header": {{"msg_id": msg_id, "username": user, "session": uuid.uuid4().hex,
        "msg_type": "execute_request", "version": "5.3", "date": ""}}, "parent_header": {{}}, "metadata": {{}},
        "channel": "shell", "buffers": [], "content": {{"code": code, "silent": False, "store_history": False,
        "user_expressions": {{}}, "allow_stdin": False, "stop_on_error": True}}}}))
    out = []
    while True:
        msg = json.loads(await asyncio.wait_for(ws.read_message(), 120))
        if msg.get("parent_header", {{}}).get("msg_id") != msg_id:
            continue
        if msg["header"]["msg_type"] == "stream":
            out.append(msg["content"]["text"])
        elif msg["header"]["msg_type"] == "error":
            out.append("ERROR " + msg["content"]["ename"])
        elif msg["header"]["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            ws.close()
            return "".join(out)

out = asyncio.run(cell("import socket; print(6 * 7, socket.gethostname())"))
print(json.dumps({{"status": status.status_code, "kernel": kid, "cell": out, "server": server}}))
"""


__all__ = ["SPAWN_AND_RUN", "SwarmHub"]

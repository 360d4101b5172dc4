"""Egress (issue 20, item 6): a kernel cannot reach link-local addresses (cloud metadata) nor the
host's own services, except the ports Berth lets through and those an admin allows.

No traffic leaves the machine: the link-local listener lives in a network namespace this test
creates (a veth pair, 169.254.X.2), the host's services are listeners this test opens. A
control service with the policy off reaches all of them, which proves the routes work.
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import uuid

import docker
import pytest

from jupyter_berth.kernel_launch import user_network
from jupyter_berth.runtime.docker import DockerRuntime
from jupyter_berth.runtime.egress import EgressPolicy
from jupyter_berth.service import BerthService

from .berth_fixtures import service_config

pytestmark = [
    pytest.mark.docker,
    pytest.mark.skipif(
        os.geteuid() != 0 or not shutil.which("iptables") or not shutil.which("ip"),
        reason="needs root, iptables and ip (network namespaces)",
    ),
]

PROBE = """
import json, socket, sys
out = {}
for name, host, port in json.loads(sys.argv[1]):
    try:
        with socket.create_connection((host, port), timeout=3) as s:
            out[name] = "ok:" + s.recv(32).decode()
    except OSError as e:
        out[name] = type(e).__name__
print(json.dumps(out))
"""

SERVE = """
import socket, sys
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((sys.argv[1], int(sys.argv[2])))
srv.listen(8)
print("listening", flush=True)
while True:
    c, _ = srv.accept()
    c.sendall(b"metadata")
    c.close()
"""


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@pytest.fixture
def link_local_listener():
    """A TCP listener on 169.254.X.2:80 inside a namespace of this test's own."""
    tag = secrets.token_hex(3)
    ns, host_if, ns_if = f"berth-t{tag}", f"vbh{tag}", f"vbn{tag}"
    third = 100 + secrets.randbelow(150)
    host_ip, ns_ip = f"169.254.{third}.1", f"169.254.{third}.2"
    _ip("netns", "add", ns)
    proc = None
    try:
        _ip("link", "add", host_if, "type", "veth", "peer", "name", ns_if)
        _ip("link", "set", ns_if, "netns", ns)
        _ip("addr", "add", f"{host_ip}/30", "dev", host_if)
        _ip("link", "set", host_if, "up")
        _ip("netns", "exec", ns, "ip", "addr", "add", f"{ns_ip}/30", "dev", ns_if)
        _ip("netns", "exec", ns, "ip", "link", "set", ns_if, "up")
        _ip("netns", "exec", ns, "ip", "link", "set", "lo", "up")
        proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, "-c", SERVE, ns_ip, "80"], stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout.readline().strip() == "listening"
        yield ns_ip
    finally:
        if proc is not None:
            proc.kill()
            proc.wait()
        subprocess.run(["ip", "link", "del", host_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


class HostListener:
    """A TCP service on every host address (as a database or an engine API would be)."""

    def __init__(self, answer: bytes):
        self.sock = socket.socket()
        self.sock.bind(("0.0.0.0", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.answer = answer
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.sendall(self.answer)
            conn.close()

    def close(self):
        self.sock.close()


async def _probe(service: BerthService, user: str, targets: list) -> dict:
    kernel_id = f"egress-{uuid.uuid4().hex[:8]}"
    launch = await service.start_kernel(user, kernel_id=kernel_id, request={"cpu": 0.25, "mem": "128M"})
    try:
        container = docker.from_env().containers.get(launch.container_id)
        code, out = container.exec_run(["/opt/venv/bin/python", "-c", PROBE, json.dumps(targets)])
        assert code == 0, out
        return json.loads(out.decode().strip().splitlines()[-1])
    finally:
        await service.stop_kernel(user, kernel_id, now=True)


async def test_kernels_reach_neither_link_local_nor_the_hosts_services(tmp_path, link_local_listener):
    database, allowed = HostListener(b"database"), HostListener(b"allowed")
    services = []
    try:
        results = {}
        for name, enabled in (("control", False), ("enforced", True)):
            config = service_config(str(tmp_path / name))
            config.BerthService.site_id = f"eg{name[0]}{uuid.uuid4().hex[:8]}"
            config.EgressPolicy.enabled = enabled
            config.EgressPolicy.allow_host_ports = [allowed.port]
            service = BerthService(config=config, runtime=DockerRuntime())
            await service.start()
            services.append(service)
            await _probe(service, "ann", [])  # the user's network exists once a kernel started
            network = docker.from_env().networks.get(user_network(service.network_prefix, "ann", service.site_id))
            ipam = network.attrs["IPAM"]["Config"][0]  # the host's address on the bridge
            gateway = ipam.get("Gateway") or str(ipaddress.ip_network(ipam["Subnet"])[1])
            results[name] = await _probe(
                service,
                "ann",
                [
                    ["metadata", link_local_listener, 80],
                    ["host-database", gateway, database.port],
                    ["host-allowed", gateway, allowed.port],
                ],
            )
        assert results["control"] == {
            "metadata": "ok:metadata",
            "host-database": "ok:database",
            "host-allowed": "ok:allowed",
        }, results
        enforced = results["enforced"]
        assert enforced["metadata"] in ("ConnectionRefusedError", "TimeoutError"), results
        assert enforced["host-database"] in ("ConnectionRefusedError", "TimeoutError"), results
        assert enforced["host-allowed"] == "ok:allowed", results
    finally:
        database.close()
        allowed.close()
        client = docker.from_env()
        for service in services:
            for alloc in await service.list_kernels():
                await service.stop_kernel(alloc.owner, alloc.subject, now=True)
            await service.stop()
            EgressPolicy().remove_site(service.site_id)
            for n in client.networks.list(filters={"label": f"io.jupyter.berth.site={service.site_id}"}):
                n.remove()


def test_the_policy_refuses_a_malformed_range():
    from jupyter_berth.errors import EngineError

    with pytest.raises(EngineError, match="CIDR"):
        EgressPolicy(deny=["metadata"])
    assert EgressPolicy(deny=["169.254.169.254"]).deny == ["169.254.169.254/32"]

"""Two Berth sites on one engine never touch each other (issue 20, item 1; design decision 10).

The names: pure. Two embedded services with the same user and the same kernel id: both
start, restart, stop and clean up on their own. Two real hubs with the same user names:
spawns, stops, restarts and cleanup in one leave the other's servers running, and a
container of the right name that carries no site label is never removed.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import docker
import httpx
import pytest

from jupyter_berth.errors import EngineError
from jupyter_berth.kernel_launch import user_network
from jupyter_berth.runtime import site_scope
from jupyter_berth.runtime.docker import DockerRuntime
from jupyter_berth.service import BerthService

from .berth_fixtures import service_config
from .hub_process import HubProcess, running

SERVER_IMAGE = "berth/singleuser:3.11"


def test_names_differ_by_site_and_owner_and_fit_the_tightest_engine_rule():
    kernel = str(uuid.uuid4())
    names = {
        site_scope.container_name(site, "kernel", owner, kernel)
        for site in ("site-a", "site-b")
        for owner in ("ann", "bob")
    }
    assert len(names) == 4
    assert all(len(n) <= 63 and n.startswith(("berth-site-a-kernel-", "berth-site-b-kernel-")) for n in names)
    long = site_scope.container_name("x" * 40, "server", "u" * 200, "u" * 200 + "/lab")
    assert len(long) <= 63 and long.replace("-", "").isalnum()
    assert user_network("berth-u-", "Ann", "site-a") == "berth-u-site-a-ann"
    assert user_network("berth-u-", "ann", "site-a") != user_network("berth-u-", "ann", "site-b")


def test_only_exactly_this_sites_label_belongs_to_it():
    mine = {"io.jupyter.berth.managed": "1", "io.jupyter.berth.site": "a"}
    assert site_scope.belongs_to(mine, "a")
    assert not site_scope.belongs_to(mine, "b")
    assert not site_scope.belongs_to({"io.jupyter.berth.managed": "1"}, "a")  # Berth's, but no site
    assert not site_scope.belongs_to({"io.jupyter.berth.site": "a"}, "a")  # not marked as Berth's
    assert not site_scope.belongs_to(None, "a")
    assert "belongs to no Berth site" in site_scope.foreign_message("container", "x", {}, "a")


async def _service(data_dir, site: str) -> BerthService:
    config = service_config(str(data_dir))
    config.BerthService.site_id = site
    service = BerthService(config=config, runtime=DockerRuntime())
    await service.start()
    return service


def _cleanup(site: str) -> None:
    """What a test run's cleanup may do: remove what carries its own site label."""
    client = docker.from_env()
    label = {"label": f"io.jupyter.berth.site={site}"}
    for c in client.containers.list(all=True, filters=label):
        c.remove(force=True)
    for n in client.networks.list(filters=label):
        n.remove()
    client.close()


@pytest.mark.docker
async def test_two_services_with_the_same_user_and_kernel_id_never_touch_each_other(tmp_path):
    site_a, site_b = f"sa{uuid.uuid4().hex[:8]}", f"sb{uuid.uuid4().hex[:8]}"
    a = await _service(tmp_path / "a", site_a)
    b = await _service(tmp_path / "b", site_b)
    kernel_id = f"same-{uuid.uuid4().hex[:8]}"
    request = {"cpu": 0.25, "mem": "128M"}
    try:
        ka = await a.start_kernel("ann", kernel_id=kernel_id, request=request)
        kb = await b.start_kernel("ann", kernel_id=kernel_id, request=request)  # was: 409, the name is taken
        assert ka.container_id != kb.container_id
        info_a = await a.runtime.inspect(ka.container_id)
        assert info_a.running and info_a.labels["io.jupyter.berth.site"] == site_a

        # B restarts: its reconcile adopts its own kernel and leaves A's alone
        await b.stop()
        b = await _service(tmp_path / "b", site_b)
        assert [k.subject for k in await b.list_kernels()] == [kernel_id]
        assert (await a.runtime.inspect(ka.container_id)).running

        # B stops its kernel and its run's cleanup removes what carries its label: A keeps running
        await b.stop_kernel("ann", kernel_id, now=True)
        await asyncio.to_thread(_cleanup, site_b)
        assert (await a.runtime.inspect(ka.container_id)).running
        assert (await a.kernel_state("ann", kernel_id)).running
        network_a = user_network(a.network_prefix, "ann", site_a)
        assert docker.from_env().networks.list(names=[network_a])
    finally:
        for service in (a, b):
            for alloc in await service.list_kernels():
                await service.stop_kernel(alloc.owner, alloc.subject, now=True)
            await service.stop()
        await asyncio.to_thread(_cleanup, site_a)
        await asyncio.to_thread(_cleanup, site_b)


@pytest.mark.docker
async def test_a_network_of_another_site_is_never_joined(tmp_path):
    rt = DockerRuntime()
    name = f"berth-u-foreign-{uuid.uuid4().hex[:6]}"
    client = docker.from_env()
    theirs = client.networks.create(name, labels={"io.jupyter.berth.managed": "1", "io.jupyter.berth.site": "other"})
    try:
        with pytest.raises(EngineError, match="belongs to Berth site 'other'"):
            await rt.ensure_network(name, {"owner": "ann", "site": "mine"})
        assert client.networks.get(theirs.id).attrs["Labels"]["io.jupyter.berth.site"] == "other"
    finally:
        theirs.remove()
        rt.close()


# ---- two real hubs ------------------------------------------------------------------------------


def _api(hub, method: str, path: str, **kw) -> httpx.Response:
    return httpx.request(method, hub.api + path, headers=hub.headers, timeout=60, **kw)


def _wait(hub, user: str, ready: bool, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        model = _api(hub, "GET", f"/users/{user}").json()
        server = model.get("servers", {}).get("")
        if ready and server and server.get("ready"):
            return model
        if not ready and not server:
            return model
        if ready and (not server or not server.get("pending")):
            raise AssertionError(f"{user}'s spawn ended without a server: {model}\n{hub.log_tail()}")
        time.sleep(0.3)
    raise AssertionError(f"{user}'s server not {'ready' if ready else 'gone'} in {timeout} s\n{hub.log_tail()}")


def _servers(hub, user: str) -> list:
    client = docker.from_env()
    return [
        c
        for c in client.containers.list(all=True, filters={"label": ["io.jupyter.berth.kind=server", hub.site_label]})
        if c.labels.get("io.jupyter.berth.owner") == user
    ]


@pytest.mark.docker
@pytest.mark.slow
def test_two_hubs_with_the_same_users_spawn_stop_restart_and_clean_up_apart(tmp_path):
    try:
        docker.from_env().images.get(SERVER_IMAGE)
    except docker.errors.ImageNotFound:
        pytest.skip(f"{SERVER_IMAGE} is not built: run `berth images bootstrap --all`")
    users = ("alice", "bob", "teacher")
    small = {"default": {"max_cpu": 1, "max_mem": "1G", "default": {"cpu": 0.25, "mem": "256M"}}}
    # cold spawns: the test finds servers by their owner label and names a container as B's spawn would
    # (an adopted pool server keeps the pool's labels and name; tests/test_server_pool.py covers the pool)
    cold = "c.ServerPool.size = 0\n"
    hub_a = HubProcess(tmp_path / "a", users=users, policies=small, extra=cold)
    hub_b = HubProcess(tmp_path / "b", users=users, policies=small, extra=cold)
    with running(hub_a), running(hub_b):
        for hub in (hub_a, hub_b):
            assert _api(hub, "POST", "/users/alice/server").status_code in (201, 202)
        for hub in (hub_a, hub_b):
            _wait(hub, "alice", ready=True)
        (a_alice,) = _servers(hub_a, "alice")
        (b_alice,) = _servers(hub_b, "alice")
        assert a_alice.id != b_alice.id and a_alice.status == "running"  # B's spawn did not remove A's

        # B stops and restarts alice's server: A's keeps running
        assert _api(hub_b, "DELETE", "/users/alice/server").status_code in (202, 204)
        _wait(hub_b, "alice", ready=False)
        assert _api(hub_b, "POST", "/users/alice/server").status_code in (201, 202)
        _wait(hub_b, "alice", ready=True)
        a_alice.reload()
        assert a_alice.status == "running"

        # a container with the name B would give bob's server, but no site label: B refuses, keeps it
        client = docker.from_env()
        squatter = client.containers.create(
            SERVER_IMAGE,
            ["sleep", "600"],
            name=site_scope.container_name(hub_b.site, "server", "bob", "bob/"),
            labels={"io.jupyter.berth.owner": "bob"},
        )
        try:
            _api(hub_b, "POST", "/users/bob/server")
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                server = _api(hub_b, "GET", "/users/bob").json().get("servers", {}).get("")
                if not server or not server.get("pending"):
                    break
                time.sleep(0.3)
            assert not _api(hub_b, "GET", "/users/bob").json().get("servers", {}).get("", {}).get("ready")
            assert "belongs to no Berth site" in hub_b.log_tail(400)
            squatter.reload()  # still there
        finally:
            squatter.remove(force=True)

        # B's run cleans up: A's server and network are untouched and A still serves alice
        hub_b.cleanup_engine()
        a_alice.reload()
        assert a_alice.status == "running"
        assert not _servers(hub_b, "alice")
        assert client.networks.list(names=[user_network(hub_a.network_prefix, "alice", hub_a.site)])
        model = _api(hub_a, "GET", "/users/alice").json()
        assert model["servers"][""]["ready"]

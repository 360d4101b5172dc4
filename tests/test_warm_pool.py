"""The warm pool against the real Docker engine: adoption, limits, networks, refills, cold
fallbacks, the activation's authentication, drain and reconciliation across restarts."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
from datetime import datetime, timezone
from types import SimpleNamespace

import pytest

from jupyter_berth import reconcile
from jupyter_berth.errors import ConflictError, RequestError
from jupyter_berth.kernel_launch import FOLDERS_ROOT, KernelConnection, kernel_spec, user_network
from jupyter_berth.kernels import backend
from jupyter_berth.pool.warm_pool import PoolKey, WarmPool, parse_mount, pool_request
from jupyter_berth.resources import Resources
from jupyter_berth.runtime.base import Mount
from jupyter_berth.runtime.docker import DockerRuntime
from jupyter_berth.runtime.labels import make_labels
from jupyter_berth.runtime.site_scope import container_name
from jupyter_berth.service import BerthService, standalone_user
from tests.pool_fixtures import (  # noqa: F401 - fixtures
    KERNEL,
    KERNEL_VIEW,
    POOL_SIZE,
    cleanup,
    eventually,
    networks_of,
    pool_config,
    pool_kernelspecs,
    pool_service,
    run_json,
    start,
    stop,
    write_kernelspecs,
)

MiB = 1024**2


def ready_ids(pool: WarmPool) -> set[str]:
    return {pc.id for state in pool._keys.values() for pc in state.ready}


def a_ready_container(pool: WarmPool):
    return next(pc for state in pool._keys.values() for pc in state.ready)


# -- with Docker -----------------------------------------------------------------------------------
@pytest.mark.docker
async def test_start_adopts_a_pool_container_with_the_requested_limits(pool_service, pool_kernelspecs, workdir):
    pool = pool_service._pool
    await pool.wait_full(timeout=90)
    waiting = ready_ids(pool)
    assert len(waiting) == POOL_SIZE
    assert await pool_service.list_kernels() == []  # pool containers are not in the ledger

    km, kc = await start(workdir, request={"cpu": 0.5, "mem": "320M", "pids": 200}, KERNEL_COLOR="teal")
    try:
        launch = km.provisioner.launch
        assert launch.container_id in waiting  # served from the pool
        view = await run_json(kc, KERNEL_VIEW)
        assert view["mem"] == view["memsw"] == str(320 * MiB)
        assert view["cpu"] == "50000" and view["pids"] == "200"
        assert view["uid"] == 1000 and view["cwd"] == str(workdir)
        assert view["env"]["KERNEL_COLOR"] == "teal" and view["env"]["BERTH_KERNEL_ID"] == km.kernel_id
        assert "BERTH_POOL_TOKEN" not in view["env"] and "BERTH_CONNECTION" not in view["env"]
        assert view["activation_port_open"] is False  # the listener closed on activation
        assert view["hist_file"] == ":memory:" and view["argv"] == ["-f"]  # as in a cold start

        (alloc,) = await pool_service.list_kernels()
        assert alloc.container_id == launch.container_id and alloc.state == "running" and alloc.image_digest
        # on the user's network, off the pool network, named after the kernel
        user_net = user_network(pool_service.network_prefix, alloc.owner, pool_service.site_id)
        assert ipaddress.ip_address(launch.connection["ip"]) in ipaddress.ip_network(pool_service.user_subnets)

        async def settled():
            info = await pool_service.runtime.inspect(launch.container_id)
            on = await networks_of(pool_service, launch.container_id)
            return on == {user_net} and info.name == container_name(
                pool_service.site_id, "kernel", alloc.owner, km.kernel_id
            )

        assert await eventually(settled), await networks_of(pool_service, launch.container_id)

        # the pool refills with new containers, which stay out of the ledger
        await pool.wait_full(timeout=90)
        refilled = ready_ids(pool)
        assert len(refilled) == POOL_SIZE and launch.container_id not in refilled
        assert [a.container_id for a in await pool_service.list_kernels()] == [launch.container_id]

        # a restart is warm too, keeps the grant and the address (clients reconnect by themselves)
        await km.restart_kernel(now=True)
        await kc.wait_for_ready(timeout=120)
        again = km.provisioner.launch
        assert again.container_id in refilled
        assert again.connection["ip"] == launch.connection["ip"]
        assert (await run_json(kc, KERNEL_VIEW))["mem"] == str(320 * MiB)
        assert await pool_service.runtime.inspect(launch.container_id) is None
    finally:
        await stop(km, kc)
    assert await pool_service.runtime.inspect(again.container_id) is None
    assert await pool_service.list_kernels() == []


@pytest.mark.docker
async def test_standalone_pool_hands_over_the_work_directory_and_waits_on_the_users_network(
    tmp_path, workdir, monkeypatch
):
    """Standalone, as the embedded service configures it (the one user, the server's root as hand-over
    target): the pool fills at start, on the user's own network, so even the first start adopts; the
    kernel sees the user's files, writes land on the host, and after release nothing stays mounted.
    (Replaces the pool that learned its mounts from a cold first start and served only its first user.)"""
    data = tmp_path / "berth-data"
    data.mkdir()
    (workdir / "hello.txt").write_text("from the host")
    config = pool_config(str(data), None)
    config.WarmPool.user = standalone_user()[0]
    config.WarmPool.handover_targets = [str(workdir), FOLDERS_ROOT]
    service = BerthService(config=config, runtime=DockerRuntime())
    await service.start()
    backend._service = service
    kernels = []
    try:
        await write_kernelspecs(service, tmp_path, monkeypatch)
        pool = service._pool
        if pool.handover.unavailable:
            pytest.skip(f"no mount hand-over here: {pool.handover.unavailable}")
        await pool.wait_full(timeout=90)
        user_net = user_network(service.network_prefix, standalone_user()[0], service.site_id)
        waiting = ready_ids(pool)
        for cid in waiting:
            assert await networks_of(service, cid) == {user_net}

        kernels.append(await start(workdir, request={"cpu": 0.25, "mem": "256M"}))
        first = kernels[0][0].provisioner.launch
        assert first.container_id in waiting  # the first start is warm
        view = await run_json(kernels[0][1], FILES_VIEW.format(path=str(workdir)))
        assert view["hello"] == "from the host" and view["cwd"] == str(workdir)
        assert (workdir / "written.txt").read_text() == "by the kernel"
        waiting = ready_ids(pool)

        kernels.append(await start(workdir, request={"cpu": 0.5, "mem": "300M"}))
        km, kc = kernels[1]
        second = km.provisioner.launch
        assert second.container_id in waiting
        assert await networks_of(service, second.container_id) == {user_net}
        assert (await run_json(kc, KERNEL_VIEW))["mem"] == str(300 * MiB)

        # a restart asks for its old address: the adopted container is given it after activation
        await pool.wait_full(timeout=90)
        refilled = ready_ids(pool)
        await km.restart_kernel(now=True)
        await kc.wait_for_ready(timeout=120)
        third = km.provisioner.launch
        assert third.container_id in refilled and third.connection["ip"] == second.connection["ip"]
        assert (await run_json(kc, KERNEL_VIEW))["cwd"] == str(workdir)
        for km, kc in kernels:
            await stop(km, kc)
        kernels = []
        handed = pool.handover.handover
        assert [n for n in handed.names() if handed.mounted(n)] == []  # released kernels keep nothing mounted
    finally:
        for km, kc in kernels:
            await stop(km, kc)
        backend._service = None
        await cleanup(service)


FILES_VIEW = r"""
import json, os
open("written.txt", "w").write("by the kernel")
print(json.dumps({{"hello": open(os.path.join("{path}", "hello.txt")).read(), "cwd": os.getcwd()}}))
"""


@pytest.mark.docker
async def test_request_with_other_mounts_or_a_new_image_build_starts_cold(pool_service, pool_kernelspecs, tmp_path):
    pool = pool_service._pool
    await pool.wait_full(timeout=90)
    waiting = ready_ids(pool)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    if os.getuid() == 0:
        os.chown(elsewhere, 1000, 100)
    km, kc = await start(elsewhere, request={"cpu": 0.25, "mem": "256M"})
    try:
        launch = km.provisioner.launch
        info = await pool_service.runtime.inspect(launch.container_id)
        assert info.berth_labels["kind"] == "kernel" and info.berth_labels["allocation"] == launch.allocation_id
        assert ready_ids(pool) == waiting  # the pool was not touched
        view = await run_json(kc, KERNEL_VIEW)
        assert view["hist_file"] == ":memory:" and view["argv"] == ["-f"]
    finally:
        await stop(km, kc)

    # A pool container from an older build of the image is discarded, never adopted.
    workdir = pool._configured_mounts[0].source
    spec = kernel_spec(
        owner="ann",
        kernel_id="k-stale",
        allocation_id="a1",
        image="berth/python:3.11",
        resources=Resources(cpu=0.25, mem=256 * MiB),
        connection=KernelConnection(key="k"),
        network="unused",
        cwd=workdir,
        mounts=[Mount(workdir, workdir)],
        site=pool_service.site_id,
    )
    assert await pool.adopt(spec, image_id="sha256:" + "0" * 64) is None
    assert ready_ids(pool) == set()

    async def gone():
        return all([await pool_service.runtime.inspect(cid) is None for cid in waiting])

    assert await eventually(gone)
    await pool.wait_full(timeout=90)  # refilled from the current image


@pytest.mark.docker
async def test_activation_port_refuses_a_wrong_token_and_other_containers(pool_service):
    pool = pool_service._pool
    await pool.wait_full(timeout=90)
    target = a_ready_container(pool)
    other = next(pc for state in pool._keys.values() for pc in state.ready if pc.id != target.id)
    connection = KernelConnection(key="attacker").for_container()
    for message in (
        {"token": "not-the-token", "connection": connection, "cwd": "/tmp", "env": {}},
        {"connection": connection},
        {"token": "", "op": "ping"},
    ):
        reply = await pool_request(target.ip, message, timeout=5)
        assert reply == {"status": "refused", "message": "wrong activation token"}
    # no kernel started: its shell port is closed, and it still waits for the real activation
    with pytest.raises(OSError):
        await asyncio.wait_for(asyncio.open_connection(target.ip, 50001), 3)
    assert (await pool_request(target.ip, {"token": target.token, "op": "ping"}, timeout=5))["status"] == "ready"

    # The pool network keeps containers apart: another pool container cannot reach the port at all.
    api = pool_service.runtime.client.api
    probe = (
        "import socket; s=socket.socket(); s.settimeout(2); "
        f"print('reached' if s.connect_ex(('{target.ip}', 50000)) == 0 else 'unreachable')"
    )
    exec_id = await asyncio.to_thread(api.exec_create, other.id, ["python", "-c", probe])
    output = await asyncio.to_thread(api.exec_start, exec_id)
    assert output.decode().strip() == "unreachable"


@pytest.mark.docker
async def test_restart_removes_stale_pool_containers_adopts_kernels_and_drain_keeps_them(tmp_path, workdir):
    data = tmp_path / "berth-data"
    data.mkdir()
    config = pool_config(str(data), [f"{workdir}:{workdir}"])
    mounts = [Mount(str(workdir), str(workdir))]
    first = BerthService(config=config, runtime=DockerRuntime())
    await first.start()
    runtime = DockerRuntime()
    try:
        await first._pool.wait_full(timeout=90)
        launch = await first.start_kernel(
            "ann", kernel_id="k-pool", request={"cpu": 0.25, "mem": "256M"}, cwd=str(workdir), mounts=mounts
        )
        stale = ready_ids(first._pool)
        assert launch.container_id not in stale
        # the service dies without draining its pool (its background work just stops)
        pool, first._pool = first._pool, None
        pool._closed = True
        await pool._bg.stop()
        await first.stop()

        second = BerthService(config=config, runtime=DockerRuntime())
        result = await second.start()
        try:
            assert [(a.id, c.id) for a, c in result.adopt] == [(launch.allocation_id, launch.container_id)]
            assert {c.id for c in result.stop} >= stale  # a previous run's unadopted pool containers
            for cid in stale:
                assert await runtime.inspect(cid) is None
            await second._pool.wait_full(timeout=90)
            fresh, run_id = ready_ids(second._pool), second._pool.run_id
            assert fresh.isdisjoint(stale)
        finally:
            await second.stop()  # drains its own pool; the adopted kernel keeps running
        for cid in fresh:
            assert await runtime.inspect(cid) is None
        kernel = await runtime.inspect(launch.container_id)
        assert kernel is not None and kernel.running
        assert await runtime.list({"site": second.site_id, "kind": "pool", "pool_run": run_id}) == []

        third = BerthService(config=pool_config(str(data), None, size=0), runtime=DockerRuntime())
        result = await third.start()
        assert [c.id for _, c in result.adopt] == [launch.container_id]
        reason, _ = await third.stop_kernel("ann", "k-pool", now=True)
        assert reason == "shutdown"
        assert await runtime.inspect(launch.container_id) is None
        await third.stop()
    finally:
        for c in await runtime.list({"site": first.site_id}):
            await runtime.remove(c.id)
        await runtime.remove_network(f"berth-pool-{first.site_id}")
        runtime.close()


# -- without Docker ---------------------------------------------------------------------------------
def _container(cid, running=True, **labels):
    return SimpleNamespace(
        id=cid,
        name=cid,
        running=running,
        oom_killed=False,
        labels=make_labels(**{"owner": "pool", "kind": "pool", "subject": cid, **labels}),
    )


def _allocation(aid, container_id=None, state="running"):
    return SimpleNamespace(id=aid, container_id=container_id, state=state, created_at=datetime.now(timezone.utc))


def test_reconcile_maps_adopted_pool_containers_by_id_and_removes_stale_ones():
    adopted = _container("c-adopted", pool_run="old")
    stale = _container("c-stale", pool_run="old")
    mine = _container("c-mine", pool_run="now")
    labelled = _container("c-kernel", owner="ann", kind="kernel", allocation="a2")
    allocations = [_allocation("a1", "c-adopted"), _allocation("a2", "c-kernel")]
    keeps = lambda c: c.labels.get("io.jupyter.berth.pool_run") == "now"  # noqa: E731
    result = reconcile.plan(allocations, [adopted, stale, mine, labelled], pool_keeps=keeps)
    assert [(a.id, c.id) for a, c in result.adopt] == [("a1", "c-adopted"), ("a2", "c-kernel")]
    assert [c.id for c in result.stop] == ["c-stale"]
    assert result.release == []
    # with no pool running, every unadopted pool container is a stray
    assert [c.id for c in reconcile.plan(allocations, [adopted, stale, mine]).stop] == ["c-stale", "c-mine"]
    # an adopted kernel whose container exited is released like any other
    result = reconcile.plan([_allocation("a1", "c-adopted")], [_container("c-adopted", running=False)])
    assert [(a.id, why) for a, why in result.release] == [("a1", "exited")]


def test_which_requests_fit_the_pool():
    pool = WarmPool(None, "site", size=2, images=["berth/python:3.11"], mounts=["/srv/nb:/srv/nb"], shm="64M")
    nb = [Mount("/srv/nb", "/srv/nb")]

    def spec(**kw):
        args = dict(
            owner="ann",
            kernel_id="k",
            allocation_id="a",
            image="berth/python:3.11",
            resources=Resources(cpu=1, mem=512 * MiB),
            connection=KernelConnection(key="k"),
            network="n",
            mounts=nb,
        )
        args.update(kw)
        return kernel_spec(**args)

    assert pool.unfit_reason(spec()) is None
    assert "no pool for image" in pool.unfit_reason(spec(image="berth/other:1"))
    assert "mounts differ" in pool.unfit_reason(spec(mounts=[]))
    assert "mounts differ" in pool.unfit_reason(spec(mounts=nb + [Mount("/data", "/data", read_only=True)]))
    assert "GPU" in pool.unfit_reason(spec(gpu_device_ids=["0"]))
    assert "shared memory 128 MiB is more than the pool's 64 MiB" in pool.unfit_reason(
        spec(resources=Resources(cpu=1, mem=512 * MiB, shm=128 * MiB))
    )

    # mount hand-over (the default): a pool per set of targets; the user's mounts must lie at or under them
    handing = WarmPool(None, "site", size=2, images=["berth/python:3.11"])
    handing.handover.unavailable = None  # what fits is decided without an engine
    folder = Mount("/srv/folders/data", f"{FOLDERS_ROOT}/data", read_only=True)
    assert "no pool for image" in handing.unfit_reason(spec())  # no pool yet
    handing._keys[PoolKey("berth/python:3.11", (), None, ("/srv/nb", FOLDERS_ROOT))] = object()
    assert handing.unfit_reason(spec()) is None
    assert handing.unfit_reason(spec(mounts=nb + [folder], network="berth-u-bob")) is None  # any user's network
    assert handing.unfit_reason(spec(mounts=[])) is None
    assert "not at or under" in handing.unfit_reason(spec(mounts=[Mount("/elsewhere", "/elsewhere")]))
    handing._add_key = lambda key: handing._keys.setdefault(key, object())  # record what it learns
    handing._learn(spec(mounts=[Mount("/elsewhere", "/elsewhere"), folder]))
    assert PoolKey("berth/python:3.11", (), None, ("/elsewhere", FOLDERS_ROOT)) in handing._keys
    # a start that could never adopt (here: more shared memory) teaches nothing, whatever its mounts
    big_shm = spec(mounts=[Mount("/other", "/other")], resources=Resources(cpu=1, mem=512 * MiB, shm=128 * MiB))
    assert asyncio.run(handing.adopt(big_shm)) is None
    assert not any("/other" in k.targets for k in handing._keys)
    assert asyncio.run(handing.adopt(spec(mounts=[Mount("/other", "/other")]))) is None  # mounts only: learned
    assert any("/other" in k.targets for k in handing._keys)
    # standalone: the pool waits on the one user's network; a kernel on another network starts cold
    handing._keys = {PoolKey("berth/python:3.11", (), "n", ("/srv/nb", FOLDERS_ROOT)): object()}
    assert handing.unfit_reason(spec()) is None
    assert "waits on n" in handing.unfit_reason(spec(network="berth-u-bob"))
    # without hand-over (a service that is not root) only requests without mounts fit
    handing.handover.unavailable = "the service does not run as root"
    assert "cannot be handed over here" in handing.unfit_reason(spec())
    assert handing.unfit_reason(spec(mounts=[])) is None


def test_pool_size_follows_demand_within_its_memory_reserve():
    from collections import deque

    from jupyter_berth.pool import pool_sizing

    now = 1000.0
    assert pool_sizing.target(None, 2, 4, 60, now) == 2
    assert pool_sizing.target(deque([now - 1] * 3), 2, 4, 60, now) == 3  # a burst: more wait
    assert pool_sizing.target(deque([now - 1] * 9), 2, 4, 60, now) == 4  # at most max_size
    assert pool_sizing.target(deque([now - 120] * 9), 2, 4, 60, now) == 2  # old demand is forgotten
    states = [SimpleNamespace(ready=[1, 2], starting=1)]
    assert pool_sizing.room(1024 * MiB, 256 * MiB, states) == 1  # 1G holds 4 at 256M; 3 are held
    assert pool_sizing.room(512 * MiB, 256 * MiB, states) == 0
    assert pool_sizing.least_wanted(["a", "b", "c"], {"a": deque([5.0]), "c": deque([1.0])}) == ["b", "c", "a"]


def test_parse_mount():
    assert parse_mount("/a:/b") == Mount("/a", "/b")
    assert parse_mount("/a:/b:ro") == Mount("/a", "/b", read_only=True)
    assert parse_mount("/a") == Mount("/a", "/a")
    with pytest.raises(RequestError, match="source:target"):
        parse_mount("/a:/b:rx")


@pytest.mark.docker
def test_a_fresh_install_starts_its_default_kernel_warm_through_the_sync_kernel_manager(tmp_path, workdir, monkeypatch):
    """Default settings (only where the data lives): the embedded service's pool is on, hands the working
    directory over, and serves the plain synchronous KernelManager (as nbclient uses it), which reads the
    deployment's config file ($BERTH_CONFIG). Every start after the first adopts."""
    from jupyter_client.manager import KernelManager
    from jupyter_core.utils import run_sync
    from traitlets.config import Config

    kernels = tmp_path / "jupyter" / "kernels" / "berth-default"
    kernels.mkdir(parents=True)
    (kernels / "kernel.json").write_text(
        json.dumps(
            {
                "argv": ["berth-kernel", "-f", "{connection_file}"],
                "display_name": "Berth default",
                "language": "python",
                "metadata": {"kernel_provisioner": {"provisioner_name": "berth", "config": {}}},
            }
        )
    )
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.chdir(workdir)
    (workdir / "hello.txt").write_text("from the host")
    # the deployment's config file, as a plain KernelManager's embedded service reads it ($BERTH_CONFIG)
    settings = tmp_path / "jupyter_berth_config.py"
    settings.write_text(
        f"c.BerthService.data_dir = {str(tmp_path / 'berth-data')!r}\nc.UsageTracker.sample_interval = 0\n"
    )
    monkeypatch.setenv("BERTH_CONFIG", str(settings))
    config = Config()
    backend._service = None
    kinds, texts, service = [], [], None
    try:
        running = []
        for i in range(4):
            km = KernelManager(kernel_name="berth-default", config=config)
            km.start_kernel(cwd=str(workdir), env={"BERTH_REQUEST": '{"cpu": 0.5, "mem": "256M"}'})  # as nbclient
            service = backend._service
            if i == 0:
                assert service.pool_size == 2 and service._pool is not None  # on by default
                assert service.data_dir == str(tmp_path / "berth-data")  # the config file was read
                if service._pool.handover.unavailable:
                    pytest.skip(f"no mount hand-over here: {service._pool.handover.unavailable}")
            launch = km.provisioner.launch
            labels = service.runtime.client.api.inspect_container(launch.container_id)["Config"]["Labels"]
            kinds.append(labels["io.jupyter.berth.kind"])  # an adopted container keeps its pool labels
            running.append(km)
            if i == 2:
                for km in running:
                    km.shutdown_kernel(now=True)
            run_sync(service._pool.wait_full)(timeout=180)  # a loaded machine: wait for the refill, not a guess
        kc = km.client()  # the last one: the working directory was handed over
        kc.start_channels()
        kc.wait_for_ready(timeout=120)
        reply = kc.execute_interactive("print(open('hello.txt').read())", output_hook=texts.append)
        assert reply["content"]["status"] == "ok"
        kc.stop_channels()
        km.shutdown_kernel(now=True)
        assert any("from the host" in m["content"].get("text", "") for m in texts)
        # the first start met a pool that had just begun to fill; every later one adopted
        assert kinds == ["kernel", "pool", "pool", "pool"], kinds
        handed = service._pool.handover.handover
        assert [n for n in handed.names() if handed.mounted(n)] == []  # released kernels keep nothing mounted
    finally:
        if service is not None:
            run_sync(cleanup)(service)
        backend._service = None


@pytest.mark.docker
async def test_users_volumes_and_folders_adopt_and_a_handed_over_folder_cannot_be_deleted(tmp_path, workdir):
    """Hub-like pool (shared pool network, hand-over at the work directory and the folders): two users'
    kernels adopt with their own mounts and folders; a folder handed to a running kernel is refused
    deletion like a mounted one; after the kernel stops it can be deleted."""
    data = tmp_path / "berth-data"
    data.mkdir()
    config = pool_config(str(data), None)
    config.WarmPool.handover_targets = ["/home/jovyan/work", FOLDERS_ROOT]
    service = BerthService(config=config, runtime=DockerRuntime())
    await service.start()
    try:
        pool = service._pool
        if pool.handover.unavailable:
            pytest.skip(f"no mount hand-over here: {pool.handover.unavailable}")
        await pool.wait_full(timeout=90)
        waiting = ready_ids(pool)
        view = await service.folders.create_folder("ann", (), "data")
        homes = {}
        for user in ("ann", "bob"):
            homes[user] = tmp_path / f"home-{user}"
            homes[user].mkdir()
            os.chown(homes[user], 1000, 100)
        launches = {}
        for user in ("ann", "bob"):
            launches[user] = await service.start_kernel(
                user,
                kernel_id=f"k-{user}",
                request={"cpu": 0.25, "mem": "256M"},
                cwd="/home/jovyan/work",
                mounts=[Mount(str(homes[user]), "/home/jovyan/work")],
                folders=["data"] if user == "ann" else [],
            )
            assert launches[user].container_id in waiting  # adopted, whoever the user
            waiting = ready_ids(pool) | waiting
        with pytest.raises(ConflictError, match="a kernel in container"):
            await service.folders.delete_folder("ann", (), view.folder.reference)
        await service.stop_kernel("ann", "k-ann", now=True)
        await service.folders.delete_folder("ann", (), view.folder.reference)  # released: nothing holds it now
        handed = pool.handover.handover
        assert [n for n in handed.names() if handed.mounted(n)] != []  # bob's kernel still has its files
        await service.stop_kernel("bob", "k-bob", now=True)
        assert [n for n in handed.names() if handed.mounted(n)] == []
    finally:
        await cleanup(service)


@pytest.mark.docker
def test_a_plain_kernel_manager_process_leaves_no_pool_containers_behind(tmp_path, workdir):
    """A process without a server (nbclient) never stops its embedded service itself: at exit the service
    is stopped, so its warm pool's containers (and their hand-over slots) do not outlive the process."""
    import subprocess
    import sys

    import docker

    kernels = tmp_path / "jupyter" / "kernels" / "berth-default"
    kernels.mkdir(parents=True)
    (kernels / "kernel.json").write_text(
        json.dumps(
            {
                "argv": ["berth-kernel", "-f", "{connection_file}"],
                "display_name": "Berth default",
                "language": "python",
                "metadata": {"kernel_provisioner": {"provisioner_name": "berth", "config": {}}},
            }
        )
    )
    settings = tmp_path / "jupyter_berth_config.py"
    settings.write_text(
        f"c.BerthService.data_dir = {str(tmp_path / 'berth-data')!r}\nc.UsageTracker.sample_interval = 0\n"
    )
    script = (
        "from jupyter_client.manager import KernelManager\n"
        "from jupyter_berth.kernels import backend\n"
        "km = KernelManager(kernel_name='berth-default')\n"
        f"km.start_kernel(cwd={str(workdir)!r})\n"
        "km.shutdown_kernel(now=True)\n"
        "print('site', backend._service.site_id, flush=True)\n"
    )
    env = dict(os.environ, JUPYTER_PATH=str(tmp_path / "jupyter"), BERTH_CONFIG=str(settings))
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=workdir, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    site = done.stdout.split("site ", 1)[1].split()[0]
    client = docker.from_env()
    try:
        left = client.containers.list(all=True, filters={"label": f"io.jupyter.berth.site={site}"})
        assert [c.name for c in left] == []
    finally:
        client.close()
    with open("/proc/self/mountinfo") as f:
        assert [line for line in f if str(tmp_path / "berth-data") in line] == []

"""Berth on a Docker Swarm of two nodes made on this machine (tests/swarm_cluster.py).

The manager (``berth-sw-mgr``) and a worker (``berth-sw-w1``) are extra ``dockerd``
processes in network namespaces of their own; the host's engine is never a swarm member.
Node labels give Berth a small share of each node (``berth.cpu``: 0.5 core on the
manager, 1 on the worker), so "the manager is full" happens after one kernel while Swarm's
own reservations and the ``node.id`` constraint Berth sets keep Swarm in agreement.

The first tests need no cluster (the service spec is a pure function); the rest are
marked ``swarm`` and ``docker`` and share one cluster for the module. Run them with
``python -m pytest tests/test_swarm.py -q`` (as root).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import tempfile
import time
import uuid
from types import SimpleNamespace

import docker
import docker.errors
import pytest
from traitlets.config import Config

from jupyter_berth.errors import CapacityError, NotFoundError, RequestError
from jupyter_berth.hub.spawner import BerthSpawner
from jupyter_berth.hub.spawner_core import HubCore
from jupyter_berth.imagebuild.singleuser import DEFAULT_SERVER_IMAGE
from jupyter_berth.kernel_launch import user_network
from jupyter_berth.resources import Resources
from jupyter_berth.runtime.base import ContainerSpec, Mount
from jupyter_berth.runtime.labels import make_labels
from jupyter_berth.runtime.swarm import SwarmRuntime
from jupyter_berth.runtime.swarm_spec import (
    NODE_LABEL,
    label_constraints,
    registry_ref,
    service_spec,
    task_view,
    user_facing_ref,
)
from jupyter_berth.runtime.swarm_topology import GWBRIDGE, leave_swarm
from jupyter_berth.servers import ServerContainer
from jupyter_berth.service import BerthService
from jupyter_berth.swarm_nodes import lost_message, node_capacity

from .berth_fixtures import service_config
from .swarm_cluster import IMAGE, NODE_LABELS, REGISTRY, SwarmCluster, cluster_available
from .swarm_hub import SPAWN_AND_RUN, SwarmHub

MiB = 1024**2
GiB = 1024**3
RUN = uuid.uuid4().hex[:6]
MGR, W1 = "berth-sw-mgr", "berth-sw-w1"
#: What each node lets Berth allot (node labels; the nodes themselves have 2 cores and 24 GiB).
CAPS = {MGR: {"berth.cpu": "0.5", "berth.mem": "2G"}, W1: {"berth.cpu": "1", "berth.mem": "2G"}}
KERNEL = {"cpu": 0.5, "mem": "256M"}

# -- without a cluster: the service spec and the node arithmetic ----------------------------


def _spec(**kw) -> ContainerSpec:
    base = dict(
        name="berth-kernel-k_1",
        image="berth/python:3.11",
        command=["berth-kernel"],
        resources=Resources(cpu=0.5, mem=256 * MiB, pids=100, shm=32 * MiB),
        labels=make_labels("ann", "kernel", "k_1", allocation="a1"),
        network="berth-u-ann",
    )
    base.update(kw)
    return ContainerSpec(**base)


def test_service_spec_is_one_pinned_replica_with_limits_equal_to_reservations():
    body = service_spec(
        _spec(mounts=[Mount("/srv/data", "/home/jovyan/folders/data", read_only=True)]),
        image="reg:5000/berth/python:3.11@sha256:abc",
        node_id="n1",
        constraints=label_constraints({"berth.kernels": "true"}),
        stop_grace=2,
    )
    task = body["TaskTemplate"]
    assert body["Name"] == "berth-kernel-k-1"  # Swarm names: letters, digits, '-'
    assert body["Mode"] == {"Replicated": {"Replicas": 1}}
    assert body["EndpointSpec"] == {"Mode": "dnsrr"}
    assert task["RestartPolicy"]["Condition"] == "none"
    assert task["Resources"]["Limits"] == {"NanoCPUs": 500_000_000, "MemoryBytes": 256 * MiB, "Pids": 100}
    assert task["Resources"]["Reservations"] == {"NanoCPUs": 500_000_000, "MemoryBytes": 256 * MiB}
    assert task["Placement"]["Constraints"] == ["node.labels.berth.kernels==true", "node.id==n1"]
    assert task["Networks"] == [{"Target": "berth-u-ann"}]
    c = task["ContainerSpec"]
    assert c["Args"] == ["berth-kernel"] and "Command" not in c  # the image's entrypoint (tini) stays
    assert c["User"] == "1000:1000" and c["CapabilityDrop"] == ["ALL"] and c["StopGracePeriod"] == 2_000_000_000
    assert {"Type": "bind", "Source": "/srv/data", "Target": "/home/jovyan/folders/data", "ReadOnly": True} in c[
        "Mounts"
    ]
    assert {"Type": "tmpfs", "Target": "/dev/shm", "TmpfsOptions": {"SizeBytes": 32 * MiB}} in c["Mounts"]
    assert c["Labels"]["io.jupyter.berth.owner"] == "ann" == body["Labels"]["io.jupyter.berth.owner"]
    assert c["Labels"]["io.jupyter.berth.managed"] == "1"


def test_service_spec_keeps_the_isolation_rules():
    with pytest.raises(RequestError, match="root"):
        service_spec(_spec(user="0:0"), image="x")
    with pytest.raises(RequestError, match="Docker socket"):
        service_spec(_spec(mounts=[Mount("/var/run", "/x")]), image="x")


def test_gpus_are_named_to_the_container_not_reserved_in_swarm():
    whole = service_spec(_spec(resources=Resources(cpu=1, mem=GiB, gpu=1), gpu_device_ids=["GPU-a"]), image="x")
    assert "NVIDIA_VISIBLE_DEVICES=GPU-a" in whole["TaskTemplate"]["ContainerSpec"]["Env"]
    # Berth's ledger holds GPU shares; a Swarm generic-resource reservation would get the running
    # task rejected on the next node update (Docker 20.10; see the GPU cluster test).
    assert "GenericResources" not in whole["TaskTemplate"]["Resources"]["Reservations"]


def test_declared_gpu_mps_plan_is_refused_on_swarm_which_has_no_ipc_mode():
    from jupyter_berth.gpu import GpuDevice, GpuShare, plan

    device = GpuDevice(index=0, uuid="GPU-declared-0", name="declared T4", memory_bytes=16 * GiB, declared=True)
    mps = plan([GpuShare(device.uuid, 0.25)], [device], "mps")
    spec = _spec(resources=Resources(cpu=1, mem=GiB, gpu=0.25), gpu_device_ids=mps.device_ids, ipc_mode=mps.ipc_mode)
    with pytest.raises(RequestError) as e:
        service_spec(spec, image="x")
    assert e.value.field == "gpu_enforcement" and "no IPC mode" in e.value.message
    # interception and framework caps need no IPC mode: they start
    other = plan([GpuShare(device.uuid, 0.25)], [device], "none")
    body = service_spec(_spec(gpu_device_ids=other.device_ids, ipc_mode=other.ipc_mode), image="x")
    assert "NVIDIA_VISIBLE_DEVICES=GPU-declared-0" in body["TaskTemplate"]["ContainerSpec"]["Env"]
    assert service_spec(_spec(ipc_mode="private"), image="x")["Name"] == "berth-kernel-k-1"


def test_image_references_and_task_states():
    assert registry_ref("berth/python:3.11", "reg:5000") == "reg:5000/berth/python:3.11"
    assert registry_ref("other.example/x:1", "reg:5000") == "other.example/x:1"
    assert user_facing_ref("reg:5000/berth/python:3.11", "reg:5000") == "berth/python:3.11"
    assert task_view(None).status == "created"
    failed = task_view({"Status": {"State": "rejected", "Err": "No such image: x"}, "NodeID": "n"})
    assert failed.status == "dead" and "No such image" in failed.message
    done = task_view({"Status": {"State": "complete", "ContainerStatus": {"ContainerID": "c", "ExitCode": 0}}})
    assert (done.status, done.exit_code) == ("exited", 0)


def test_named_volumes_carry_their_labels_and_the_shared_driver_to_whichever_node_runs_the_task():
    runtime = SwarmRuntime(volume_driver="local", volume_driver_options={"type": "nfs", "device": ":/homes/{volume}"})
    assert (
        asyncio.run(runtime.ensure_volume("berth-s1-user-ann", {"owner": "ann", "site": "s1"})) == "berth-s1-user-ann"
    )
    body = service_spec(
        _spec(mounts=[Mount("berth-s1-user-ann", "/home/jovyan/work"), Mount("/srv/x", "/x")]),
        image="x",
        volume_options=runtime._volume_options,
    )
    home, bind = body["TaskTemplate"]["ContainerSpec"]["Mounts"][:2]
    assert home["Type"] == "volume" and home["VolumeOptions"]["Labels"]["io.jupyter.berth.site"] == "s1"
    assert home["VolumeOptions"]["DriverConfig"] == {
        "Name": "local",
        "Options": {"type": "nfs", "device": ":/homes/berth-s1-user-ann"},
    }
    assert "VolumeOptions" not in bind
    with pytest.raises(RequestError):
        asyncio.run(runtime.ensure_volume("bad/name"))


def test_overlay_candidates_skip_subnets_other_networks_hold():
    from jupyter_berth.runtime.networks import free_subnets

    candidates = ["10.214.1.0/26", "10.214.2.0/26", "10.214.3.0/26"]
    assert free_subnets(candidates, ["10.214.1.0/26", "10.214.2.0/24"]) == ["10.214.3.0/26"]
    assert free_subnets(candidates, []) == candidates


def test_node_labels_cap_what_berth_may_allot():
    node = {"cpu": 8.0, "mem": 32 * GiB, "labels": {"berth.cpu": "6", "berth.mem": "16G"}}
    assert node_capacity(node, cpu_overcommit=1.0, mem_reserved=512 * MiB) == (6.0, 16 * GiB)
    assert node_capacity({"cpu": 8.0, "mem": 32 * GiB}, 2.0, 0) == (16.0, 32 * GiB)
    assert "berth-sw-w1" in lost_message("kernel", "berth-sw-w1", "left the cluster")


# -- the cluster ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def swarm_cluster():
    why = cluster_available()
    if why:
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    extra: tuple[str, ...] = (DEFAULT_SERVER_IMAGE,)  # the server image too, when this host has it
    with contextlib.closing(docker.from_env()) as host:
        try:
            host.images.get(DEFAULT_SERVER_IMAGE)
        except docker.errors.ImageNotFound:
            extra = ()
    cluster = SwarmCluster(workers=1, extra_images=extra)
    try:
        cluster.up()
        print(f"swarm test cluster up in {cluster.timings['up']:.1f} s: {cluster.timings}")
        with contextlib.closing(cluster.manager.client()) as c:
            for n in c.api.nodes():
                spec = dict(n["Spec"])
                spec["Labels"] = {**(spec.get("Labels") or {}), **CAPS[n["Description"]["Hostname"]]}
                c.api.update_node(n["ID"], n["Version"]["Index"], spec)
        yield cluster
    finally:
        cluster.down()


def swarm_config(data_dir: str, cluster: SwarmCluster, service: dict | None = None, **runtime) -> Config:
    c = service_config(data_dir)
    c.BerthService.runtime_kind = "swarm"
    c.BerthService.default_policy = {"max_cpu": 2, "max_mem": "2G", "default": {"cpu": 0.5, "mem": "256M"}}
    for name, value in (service or {}).items():  # "Class.name" for another section, else BerthService's
        section, _, name = name.rpartition(".")
        setattr(c[section or "BerthService"], name, value)
    c.SwarmRuntime.manager_url = cluster.manager.url
    c.SwarmRuntime.node_engines = cluster.node_engines()
    c.SwarmRuntime.registry = REGISTRY
    c.SwarmRuntime.node_labels = NODE_LABELS
    c.SwarmRuntime.refresh_interval = 0
    c.SwarmRuntime.pending_grace = 2
    for name, value in runtime.items():
        setattr(c.SwarmRuntime, name, value)
    return c


@contextlib.asynccontextmanager
async def swarm_service(tmp_path, cluster: SwarmCluster, service: dict | None = None, **runtime):
    """A started BerthService on the test swarm (``service``: BerthService settings, ``runtime``: SwarmRuntime's)."""
    data = tmp_path / f"berth-data-{uuid.uuid4().hex[:4]}"
    data.mkdir()
    service = BerthService(config=swarm_config(str(data), cluster, service, **runtime))
    await service.start()
    assert isinstance(service.runtime, SwarmRuntime)
    try:
        yield service
    finally:
        for alloc in await service.list_kernels():
            with contextlib.suppress(Exception):
                await service.stop_kernel(alloc.owner, alloc.subject, now=True)
        for c in await service.runtime.list({"site": service.site_id}):
            await service.runtime.remove(c.id)
        await service.stop()


@pytest.mark.swarm
@pytest.mark.docker
async def test_capacity_is_per_node_from_swarm_with_images_reported_per_node(swarm_cluster, tmp_path):
    async with swarm_service(tmp_path, swarm_cluster) as service:
        nodes = {n.name: n for n in await service._db(service.ledger.nodes)}
        assert set(nodes) == {MGR, W1}
        assert (nodes[MGR].cpu, nodes[MGR].mem, nodes[MGR].state) == (0.5, 2 * GiB, "ready")
        assert (nodes[W1].cpu, nodes[W1].mem, nodes[W1].state) == (1.0, 2 * GiB, "ready")
        assert nodes[MGR].labels["swarm.role"] == "manager" and nodes[W1].labels["swarm.role"] == "worker"
        # The worker advertises a GPU as a Swarm generic resource; the ledger records it on that node.
        assert [(d["uuid"], d["node"]) for d in nodes[W1].gpu] == [(f"GPU-declared-{W1}-0", W1)]
        assert not nodes[MGR].gpu
        summary = await service.refresh_capacity()  # the cluster as the ledger sees it: the sum of its hosts
        assert (summary["cpu"], summary["mem"], summary["down"], summary["lost"]) == (1.5, 4 * GiB, [], [])
        facts = await service.runtime.ping()
        assert (facts["engine"], facts["nodes"], facts["ready"]) == ("swarm", 2, 2)
        report = {n.name: n for n in await service.runtime.nodes()}
        for name in (MGR, W1):
            present = {i["ref"]: i["id"] for i in report[name].images}
            assert present[IMAGE] == swarm_cluster.image_id, (name, report[name].images)
        assert IMAGE in [i.ref for i in await service.images.catalog_view()]  # the catalog shows the name users know


@pytest.mark.swarm
@pytest.mark.docker
async def test_image_versions_are_distributed_through_the_registry(swarm_cluster, tmp_path):
    probe = "berth/python:swarm-probe"
    with (
        contextlib.closing(swarm_cluster.manager.client()) as mgr,
        contextlib.closing(swarm_cluster.workers[0].client()) as w1,
    ):
        with contextlib.suppress(docker.errors.NotFound):
            w1.api.remove_image(f"{REGISTRY}/{probe}")  # a cached data root may still have it
        mgr.api.tag(f"{REGISTRY}/{IMAGE}", f"{REGISTRY}/berth/python", "swarm-probe")
        for event in mgr.api.push(f"{REGISTRY}/berth/python", tag="swarm-probe", stream=True, decode=True):
            assert "error" not in event, event
        try:
            async with swarm_service(tmp_path, swarm_cluster) as service:
                before = {n.name: {i["ref"] for i in n.images} for n in await service.runtime.nodes()}
                assert probe in before[MGR] and probe not in before[W1]
                assert await service.runtime.distribute_image(probe) == {MGR: "present", W1: "pulled"}
                after = {n.name: {i["ref"]: i["id"] for i in n.images} for n in await service.runtime.nodes()}
                assert after[MGR][probe] == after[W1][probe] == swarm_cluster.image_id
        finally:
            for client in (mgr, w1):
                with contextlib.suppress(docker.errors.NotFound):
                    client.api.remove_image(f"{REGISTRY}/{probe}")


def _swarm_reservations(cluster: SwarmCluster, site: str) -> dict[str, float]:
    """Cores Swarm has reserved per node for this site's running tasks (what Swarm places by)."""
    with contextlib.closing(cluster.manager.client()) as c:
        hostnames = {n["ID"]: n["Description"]["Hostname"] for n in c.api.nodes()}
        out: dict[str, float] = {}
        for s in c.api.services(filters={"label": f"io.jupyter.berth.site={site}"}):
            for t in c.api.tasks(filters={"service": s["ID"]}):
                if t["Status"]["State"] == "running":
                    nano = t["Spec"]["Resources"]["Reservations"]["NanoCPUs"]
                    out[hostnames[t["NodeID"]]] = out.get(hostnames[t["NodeID"]], 0) + nano / 1e9
        return out


@pytest.mark.swarm
@pytest.mark.docker
async def test_kernels_go_to_the_worker_when_the_manager_is_full_and_nothing_is_oversubscribed(swarm_cluster, tmp_path):
    user = f"ann-{RUN}"
    async with swarm_service(tmp_path, swarm_cluster) as service:
        first = await service.start_kernel(user, kernel_id=f"k0-{RUN}", request=KERNEL)
        # The manager (0.5 core for Berth) is now full: three more race for the worker's one core.
        results = await asyncio.gather(
            *(service.start_kernel(user, kernel_id=f"k{i}-{RUN}", request=KERNEL) for i in (1, 2, 3)),
            return_exceptions=True,
        )
        started = [r for r in results if not isinstance(r, BaseException)]
        refused = [r for r in results if isinstance(r, BaseException)]
        assert len(started) == 2 and len(refused) == 1, results
        assert isinstance(refused[0], CapacityError) and not refused[0].never_fits, refused[0]
        allocs = {a.subject: a for a in await service.list_kernels(user)}
        assert allocs[first.kernel_id].node == MGR
        assert {allocs[k.kernel_id].node for k in started} == {W1}
        for launch in [first, *started]:  # Swarm ran each task where Berth's admission put it
            info = await service.runtime.inspect(launch.container_id)
            assert info.running and info.node == allocs[launch.kernel_id].node
        # Nothing oversubscribed: the ledger and Swarm's reservations agree, within each node's share.
        caps = {n.name: n.cpu for n in await service._db(service.ledger.nodes)}
        used = {n: u.cpu for n, u in (await service._db(service.ledger.node_usage)).items()}
        assert used == {MGR: 0.5, W1: 1.0}
        assert all(used[n] <= caps[n] for n in used)
        assert _swarm_reservations(swarm_cluster, service.site_id) == pytest.approx(used)
        # Larger than any single node (1.5 cores in all, but at most 1 on one node): refused, not queued.
        with pytest.raises(CapacityError) as big:
            await service.start_kernel(user, kernel_id=f"big-{RUN}", request={"cpu": 1.5, "mem": "256M"})
        assert big.value.never_fits and W1 in big.value.message and "1 CPU" in big.value.message
        # The same isolation as on one host, on the worker.
        alloc = allocs[started[0].kernel_id]
        with contextlib.closing(swarm_cluster.workers[0].client()) as w1:
            ctr = w1.api.containers(filters={"label": f"io.jupyter.berth.allocation={alloc.id}"})
            assert len(ctr) == 1, ctr
            exec_id = w1.api.exec_create(
                ctr[0]["Id"],
                [
                    "sh",
                    "-c",
                    "id -u; grep -E '^(CapEff|NoNewPrivs)' /proc/1/status; "
                    "cat /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/memory/memory.limit_in_bytes "
                    "/sys/fs/cgroup/cpu/cpu.cfs_quota_us",
                ],
            )
            out = w1.api.exec_start(exec_id).decode().split()
        assert out == ["1000", "CapEff:", "0000000000000000", "NoNewPrivs:", "1", "512", str(256 * MiB), "50000"], out
        for launch in [first, *started]:
            await service.stop_kernel(user, launch.kernel_id, now=True)
        assert not await service.list_kernels(user)
        assert not await service.runtime.list({"site": service.site_id})


@pytest.mark.swarm
@pytest.mark.docker
async def test_a_gpu_kernel_goes_to_the_node_that_has_the_gpu(swarm_cluster, tmp_path):
    """The worker advertises GPU-declared-berth-sw-w1-0 to Swarm; Berth declares the device on that node
    (c.GpuManager.devices with "node") and places and accounts it in its ledger."""
    user = f"gus-{RUN}"
    gpu = f"GPU-declared-{W1}-0"
    settings = {
        "GpuManager.devices": [{"uuid": gpu, "name": "declared test GPU", "memory": "16G", "node": W1}],
        "default_policy": {
            "max_cpu": 2,
            "max_mem": "2G",
            "max_gpu": 1,
            "total_gpu": 2,
            "default": {"cpu": 0.5, "mem": "256M"},
        },
    }
    async with swarm_service(tmp_path, swarm_cluster, settings) as service:
        launch = await service.start_kernel(user, kernel_id=f"kg-{RUN}", request={**KERNEL, "gpu": 1})
        (alloc,) = await service.list_kernels(user)
        assert alloc.node == W1 and [d["uuid"] for d in alloc.gpu_devices] == [gpu]  # the manager had CPU, not the GPU
        with contextlib.closing(swarm_cluster.manager.client()) as mgr:
            task = mgr.api.tasks(filters={"service": launch.container_id})[0]
            assert f"NVIDIA_VISIBLE_DEVICES={gpu}" in task["Spec"]["ContainerSpec"]["Env"]
            # A node update (an admin adds a label) must not take the kernel down. With a Swarm
            # generic-resource reservation, Docker 20.10's constraint enforcer would reject it here.
            node = mgr.api.inspect_node(W1)
            spec = dict(node["Spec"], Labels={**node["Spec"]["Labels"], "berth.test-touch": RUN})
            mgr.api.update_node(node["ID"], node["Version"]["Index"], spec)
            await asyncio.sleep(2)
            assert (await service.runtime.inspect(launch.container_id)).running
            node = mgr.api.inspect_node(W1)
            labels = {k: v for k, v in node["Spec"]["Labels"].items() if k != "berth.test-touch"}
            mgr.api.update_node(node["ID"], node["Version"]["Index"], dict(node["Spec"], Labels=labels))
        with pytest.raises(CapacityError, match="GPU"):  # one device, held whole
            await service.start_kernel(user, kernel_id=f"kg2-{RUN}", request={**KERNEL, "gpu": 1})


STAND_IN = r"""
import json, os, sys
from jupyter_client import BlockingKernelClient

client = BlockingKernelClient()
client.load_connection_info(json.loads(os.environ["BERTH_TEST_CONNECTION"]))
client.start_channels()
client.wait_for_ready(timeout=120)

def run(code, timeout=60):
    out = []
    def hook(msg):
        if msg["msg_type"] == "stream":
            out.append(msg["content"]["text"])
        elif msg["msg_type"] == "error":
            out.append(msg["content"]["ename"])
    reply = client.execute_interactive(code, output_hook=hook, timeout=timeout)
    return reply["content"]["status"], "".join(out)

print("CELL", json.dumps(run("import socket; open('/home/jovyan/folders/shared/note.txt', 'w').write("
      "'written on ' + socket.gethostname()); print(6 * 7)")), flush=True)
print("SEEN", json.dumps(open("/shared/note.txt").read()), flush=True)
print("READY", flush=True)
print("INTERRUPTED", json.dumps(run("import time; time.sleep(60)", timeout=90)), flush=True)
"""


@pytest.mark.swarm
@pytest.mark.docker
async def test_a_user_server_on_the_manager_reaches_a_kernel_on_the_worker(swarm_cluster, tmp_path):
    user = f"bob-{RUN}"
    shared = tempfile.mkdtemp(prefix="berth-swarm-shared-")  # every test node sees the host's /tmp
    os.chmod(shared, 0o755)
    os.chown(shared, 1000, 1000)
    stand_in = None
    async with swarm_service(tmp_path, swarm_cluster) as service:
        try:
            launch = await service.start_kernel(
                user,
                kernel_id=f"kw-{RUN}",
                request={"cpu": 1, "mem": "256M"},
                mounts=[Mount(shared, "/home/jovyan/folders/shared")],
            )
            (alloc,) = await service.list_kernels(user)
            assert alloc.node == W1  # only the worker has a whole core for Berth
            # The user's server stands in as a container on the manager, on the user's overlay network.
            with contextlib.closing(swarm_cluster.manager.client()) as mgr:
                stand_in = mgr.containers.run(
                    f"{REGISTRY}/{IMAGE}",
                    ["python", "-c", STAND_IN],
                    detach=True,
                    user="1000:1000",
                    network=user_network(service.network_prefix, user, service.site_id),
                    environment={"BERTH_TEST_CONNECTION": json.dumps(launch.to_json()["connection"])},
                    volumes={shared: {"bind": "/shared", "mode": "ro"}},
                    labels={"io.jupyter.berth.test": RUN},
                )
                deadline = time.monotonic() + 90
                while b"READY" not in stand_in.logs():
                    stand_in.reload()
                    assert stand_in.status == "running", stand_in.logs().decode()
                    assert time.monotonic() < deadline, stand_in.logs().decode()
                    await asyncio.sleep(0.2)
                usage = (await service.my_kernels(user))[0]["usage"]  # docker stats through the worker's engine
                assert usage is not None and usage["mem_bytes"] > 0 and usage["pids"] >= 1
                await asyncio.sleep(1)  # the cell is sleeping now
                await service.signal_kernel(user, launch.kernel_id, signal.SIGINT)  # through the worker's engine
                assert (await asyncio.to_thread(stand_in.wait, timeout=60))["StatusCode"] == 0, stand_in.logs().decode()
                lines = dict(line.split(" ", 1) for line in stand_in.logs().decode().splitlines() if " " in line)
            assert json.loads(lines["CELL"]) == ["ok", "42\n"]
            assert json.loads(lines["SEEN"]).startswith("written on ")  # the kernel's write, seen on the manager
            assert json.loads(lines["INTERRUPTED"]) == ["error", "KeyboardInterrupt"]
            with open(os.path.join(shared, "note.txt")) as f:
                assert f.read() == json.loads(lines["SEEN"])
        finally:
            if stand_in is not None:
                with contextlib.suppress(docker.errors.APIError):
                    stand_in.remove(force=True)
            shutil.rmtree(shared, ignore_errors=True)


@pytest.mark.swarm
@pytest.mark.docker
async def test_one_shot_tasks_full_nodes_and_missing_images_never_hang(swarm_cluster, tmp_path):
    async with swarm_service(tmp_path, swarm_cluster) as service:
        rt = service.runtime
        labels = make_labels("quirk", "kernel", f"q-{RUN}", site=service.site_id)

        def spec(name, **kw) -> ContainerSpec:
            base = dict(
                name=f"berth-test-{name}-{RUN}",
                image=IMAGE,
                command=["true"],
                resources=Resources(cpu=0.1, mem=64 * MiB),
                labels={**labels, NODE_LABEL: W1},
            )
            base.update(kw)
            return ContainerSpec(**base)

        t0 = time.monotonic()
        started = await asyncio.wait_for(rt.run(spec("oneshot")), 30)  # `docker service create` would wait forever here
        assert started.status in ("running", "exited") and started.node == W1  # caught running, or already done
        done = await rt.wait(started.id, timeout=20)
        assert (done.status, done.exit_code, done.node) == ("exited", 0, W1)
        assert time.monotonic() - t0 < 20
        await rt.remove(done.id)
        t0 = time.monotonic()
        with pytest.raises(CapacityError, match="no room"):  # Swarm's reservations say no: refused after the grace
            await rt.run(spec("huge", command=["sleep", "60"], resources=Resources(cpu=0.1, mem=100 * GiB)))
        assert time.monotonic() - t0 < 15
        with pytest.raises(NotFoundError, match="image"):
            await rt.run(spec("noimage", image="berth/not-in-the-registry:1"))
        assert not await rt.list({"site": service.site_id})  # every failed start removed its service


@pytest.mark.swarm
@pytest.mark.docker
async def test_a_worker_that_stops_mid_run_turns_its_kernels_lost_and_releases_them(swarm_cluster, tmp_path):
    user = f"cy-{RUN}"
    worker = swarm_cluster.workers[0]
    async with swarm_service(tmp_path, swarm_cluster, refresh_interval=1) as service:
        on_worker = await service.start_kernel(user, kernel_id=f"kl-{RUN}", request={"cpu": 1, "mem": "256M"})
        on_manager = await service.start_kernel(user, kernel_id=f"km-{RUN}", request=KERNEL)
        allocs = {a.subject: a for a in await service.list_kernels(user)}
        assert allocs[on_worker.kernel_id].node == W1 and allocs[on_manager.kernel_id].node == MGR
        t0 = time.monotonic()
        swarm_cluster.crash(worker)  # power cut: daemon, containerd and the kernel's processes killed
        down_after = swarm_cluster.wait_node_state(worker, "down", timeout=60)
        deadline = time.monotonic() + 30
        while (await service._db(service.ledger.get_allocation, on_worker.allocation_id)).state != "released":
            assert time.monotonic() < deadline, "the periodic refresh did not release the lost kernel"
            await asyncio.sleep(0.25)
        print(
            f"worker down in Swarm after {down_after:.1f} s; kernel released {time.monotonic() - t0:.1f} s after the crash"
        )
        (record,) = [
            r
            for r in await service._db(service.ledger.usage_records, owner=user)
            if r.allocation_id == on_worker.allocation_id
        ]
        assert record.end_reason == "lost" and W1 in record.message and "left the cluster" in record.message
        with pytest.raises(NotFoundError) as gone:  # what the user's notebook hears next
            await service.kernel_state(user, on_worker.kernel_id)
        assert W1 in gone.value.message and "lost" in gone.value.message
        assert (await service._db(service.ledger.get_node, W1)).state == "down"
        assert await service.runtime.inspect(on_worker.container_id) is None  # its service was removed
        assert [a.subject for a in await service.list_kernels(user)] == [on_manager.kernel_id]
        assert (await service.runtime.inspect(on_manager.container_id)).running  # the manager's kernel is untouched
        # The worker comes back: it takes kernels again, and Swarm removes the dead kernel's container.
        swarm_cluster.start_daemon(worker)
        swarm_cluster.wait_node_state(worker, "ready", timeout=60)
        await service.refresh_capacity()
        assert (await service._db(service.ledger.get_node, W1)).state == "ready"
        with contextlib.closing(worker.client()) as w1:
            deadline = time.monotonic() + 30
            while w1.api.containers(all=True, filters={"label": f"io.jupyter.berth.site={service.site_id}"}):
                assert time.monotonic() < deadline, "Swarm did not remove the lost kernel's container"
                await asyncio.sleep(0.5)
        await service.stop_kernel(user, on_manager.kernel_id, now=True)


@pytest.mark.swarm
@pytest.mark.docker
async def test_one_user_name_on_two_sites_gets_two_overlay_subnets(swarm_cluster):
    """Swarm accepts an overlapping overlay network and never allocates it (the allocator finds the overlap
    later): the same user on two sites (same first candidate subnet) must get two subnets."""
    runtime = SwarmRuntime(manager_url=swarm_cluster.manager.url)
    owner = f"dee-{RUN}"
    names = [f"berth-u-s{i}{RUN}-dee" for i in (1, 2)]
    try:
        ids = [await runtime.ensure_network(n, {"owner": owner, "site": f"s{i}{RUN}"}) for i, n in zip((1, 2), names)]
        with contextlib.closing(swarm_cluster.manager.client()) as mgr:
            subnets = [mgr.api.inspect_network(i)["IPAM"]["Config"][0]["Subnet"] for i in ids]
        assert subnets[0] != subnets[1] and subnets[0] == runtime.overlay_subnets(owner)[0], subnets
    finally:
        for n in names:
            await runtime.remove_network(n)
        runtime.close()


SERVER_PORT = 8888


def _exec(node, container_id: str, code: str) -> tuple[int, str]:
    """Run ``python -c code`` in a container through its node's engine: (exit code, output)."""
    with contextlib.closing(node.client()) as c:
        exec_id = c.api.exec_create(container_id, ["python", "-c", code])
        out = c.api.exec_start(exec_id).decode(errors="replace")
        return c.api.exec_inspect(exec_id)["ExitCode"], out


def _container_of(node, alloc_id: str) -> str:
    with contextlib.closing(node.client()) as c:
        (ctr,) = c.api.containers(filters={"label": f"io.jupyter.berth.allocation={alloc_id}"})
        return ctr["Id"]


FETCH = """
import json, sys, time, urllib.request
deadline = time.time() + 120
while True:
    try:
        with urllib.request.urlopen(sys.argv[1], timeout=5) as r:
            print(r.status, json.load(r).get("started", "")[:4]); break
    except Exception as e:
        if time.time() > deadline: print("unreachable", e); sys.exit(1)
        time.sleep(0.5)
"""


async def _spawn(hub: BerthService, user: str, cpu: float):
    """A user's server as BerthSpawner starts it (reserve → the user's network → start), running `jupyter server`
    from the single-user image (no hub to authenticate against: a token of its own)."""
    subject = f"{user}/"
    alloc = await hub.reserve_server(
        user,
        policy=await hub.policy_for(user),
        subject=subject,
        resources=Resources.parse({"cpu": cpu, "mem": "512M"}),
        image=DEFAULT_SERVER_IMAGE,
    )
    network = await hub.server_network(user)
    token = uuid.uuid4().hex
    container = ServerContainer(
        name=hub.server_container_name(user, subject),
        image=DEFAULT_SERVER_IMAGE,
        command=[
            "jupyter",
            "server",
            "--ip=0.0.0.0",
            f"--port={SERVER_PORT}",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.base_url=/user/{user}/",
        ],
        env={},
        mounts=[Mount(source=f"berth-{hub.site_id}-user-{user}", target="/home/jovyan/work")],
        boot_cpu=1.0,  # not given on Swarm (the task's reservation would exceed the ledger's)
    )
    info = await hub.start_server(user, [], alloc, container, network)
    await hub.end_server_boost(alloc, info.id)  # a no-op on Swarm, as the spawner calls it
    return alloc, info, f"http://{info.ip}:{SERVER_PORT}/user/{user}/api/status?token={token}"


@pytest.mark.swarm
@pytest.mark.docker
@pytest.mark.timeout(600)
async def test_user_servers_are_placed_across_the_swarm_reached_over_the_overlay_and_lost_with_their_node(
    swarm_cluster, tmp_path
):
    """Two users' servers on different nodes with kernels beside them; the hub's proxy (a container on the
    manager, attached by the runtime to each user's overlay network) reaches both; the worker's power cut
    releases its server and kernels with a message naming it, and the manager's server keeps running."""
    if DEFAULT_SERVER_IMAGE not in swarm_cluster.image_ids:
        pytest.skip(f"{DEFAULT_SERVER_IMAGE} is not built on this host (berth images bootstrap --recipe singleuser)")
    ann, bob = f"ann-{RUN}", f"bob-{RUN}"
    worker, mgr_node = swarm_cluster.workers[0], swarm_cluster.manager
    proxy_name = f"berth-test-proxy-{RUN}"
    with contextlib.closing(mgr_node.client()) as mgr:
        proxy = mgr.containers.run(
            f"{REGISTRY}/{IMAGE}", ["sleep", "900"], detach=True, name=proxy_name, user="1000:1000"
        )
    try:
        async with swarm_service(
            tmp_path, swarm_cluster, attach_containers=[proxy_name], refresh_interval=1
        ) as service:
            # The hub process's core (what every BerthSpawner shares): configured like the service, opened for
            # servers, never started.
            core = HubCore(
                swarm_config(service.data_dir, swarm_cluster, attach_containers=[proxy_name]),
                logging.getLogger("hub"),
                max_starting=4,
                retry_interval=1,
            )
            hub = await core.open()
            assert isinstance(hub.runtime, SwarmRuntime) and hub.site_id == service.site_id
            BerthSpawner._core = core
            ann_srv, ann_info, ann_url = await _spawn(hub, ann, 0.25)  # first fit: the manager (0.5 for Berth)
            ann_k1 = await service.start_kernel(ann, kernel_id=f"a1-{RUN}", request={"cpu": 0.25, "mem": "256M"})
            bob_srv, bob_info, bob_url = await _spawn(hub, bob, 0.5)  # the manager is full: the worker
            bob_k = await service.start_kernel(bob, kernel_id=f"b1-{RUN}", request={"cpu": 0.25, "mem": "256M"})
            ann_k2 = await service.start_kernel(ann, kernel_id=f"a2-{RUN}", request={"cpu": 0.25, "mem": "256M"})
            nodes = {a.subject: a.node for a in await service._db(service.ledger.live_allocations)}
            assert nodes == {
                f"{ann}/": MGR,
                ann_k1.kernel_id: MGR,
                f"{bob}/": W1,
                bob_k.kernel_id: W1,
                ann_k2.kernel_id: W1,
            }
            assert (ann_info.node, bob_info.node) == (MGR, W1)  # Swarm ran each server where admission put it
            # The hub's poll sees bob's server running on the worker (DockerSpawner's own poll asks the hub's engine
            # for a container of that name, finds none, and would report the server stopped).
            bob_spawner = BerthSpawner(user=SimpleNamespace(name=bob, groups=[]), config=Config())
            bob_spawner.object_name, bob_spawner.object_id = hub.server_container_name(bob, f"{bob}/"), bob_info.id
            assert await bob_spawner.poll() is None
            with contextlib.closing(mgr_node.client()) as mgr:
                task = mgr.api.tasks(filters={"service": bob_info.id})[0]
                assert task["Spec"]["Resources"]["Limits"]["NanoCPUs"] == 500_000_000  # no boot boost on Swarm
            # The user's home: a named volume made by the node, labelled with the site.
            with contextlib.closing(worker.client()) as w1:
                volume = w1.api.inspect_volume(f"berth-{service.site_id}-user-{bob}")
                assert volume["Labels"]["io.jupyter.berth.site"] == service.site_id
            # The proxy reaches both servers at their overlay addresses (a different node each).
            for url in (ann_url, bob_url):
                code, out = await asyncio.to_thread(
                    _exec, mgr_node, proxy.id, f"import sys; sys.argv = [0, {url!r}]\n{FETCH}"
                )
                assert code == 0 and out.startswith("200 "), (url, out)
            # ... and a server reaches the hub by its container name, and its user's kernel on the other node.
            ann_ctr = _container_of(mgr_node, ann_srv.id)
            code, out = await asyncio.to_thread(
                _exec, mgr_node, ann_ctr, f"import socket; print(socket.gethostbyname({proxy_name!r}))"
            )
            assert code == 0 and out.strip().count(".") == 3, out
            kernel_info = (
                "import json, sys; from jupyter_client import BlockingKernelClient; c = BlockingKernelClient(); "
                f"c.load_connection_info(json.loads({json.dumps(json.dumps(ann_k2.to_json()['connection']))})); "
                "c.start_channels(); c.wait_for_ready(timeout=60); print('ok', c.kernel_info(reply=True)['content']['status'])"
            )
            code, out = await asyncio.to_thread(_exec, mgr_node, ann_ctr, kernel_info)
            assert code == 0 and "ok ok" in out, out
            # Power cut on the worker: its server and both kernels there are lost; the manager's are untouched.
            swarm_cluster.crash(worker)
            swarm_cluster.wait_node_state(worker, "down", timeout=60)
            deadline = time.monotonic() + 30
            while (await service._db(service.ledger.get_allocation, bob_srv.id)).state != "released":
                assert time.monotonic() < deadline, "the periodic refresh did not release the lost server"
                await asyncio.sleep(0.25)
            records = {r.subject: r for r in await service._db(service.ledger.usage_records) if r.owner in (ann, bob)}
            for subject in (f"{bob}/", bob_k.kernel_id, ann_k2.kernel_id):
                assert records[subject].end_reason == "lost" and W1 in records[subject].message, subject
            assert "server is lost" in records[f"{bob}/"].message
            notice = await hub.server_notice(bob, f"{bob}/")  # what bob's next spawn form says
            assert notice and W1 in notice and "lost" in notice, notice
            assert await hub.live_server_allocation(bob_srv.id) is None
            assert await hub.server_alive(bob_info.id) is not True
            assert await bob_spawner.poll() == 0  # the hub learns the server is gone
            live = {a.subject for a in await service._db(service.ledger.live_allocations)}
            assert live == {f"{ann}/", ann_k1.kernel_id}
            assert await hub.server_alive(ann_info.id) is True
            code, out = await asyncio.to_thread(
                _exec, mgr_node, proxy.id, f"import sys; sys.argv = [0, {ann_url!r}]\n{FETCH}"
            )
            assert code == 0 and out.startswith("200 "), out
            await hub.release_server(ann_srv, ann_info.id, "shutdown", "test over", remove=True)
            assert await hub.stop_orphan_kernels(ann) == [ann_k1.kernel_id]  # ann's kernels go with her last server
            assert not await service._db(service.ledger.live_allocations)
            await hub.close()
    finally:
        BerthSpawner._core = None
        with contextlib.closing(mgr_node.client()) as mgr, contextlib.suppress(docker.errors.APIError):
            mgr.api.remove_container(proxy.id, force=True)
        if not swarm_cluster._answers(worker):  # the next tests need the worker back, its lost tasks removed
            swarm_cluster.start_daemon(worker)
        swarm_cluster.wait_node_state(worker, "ready", timeout=60)
        with contextlib.closing(worker.client()) as w1:
            deadline = time.monotonic() + 60
            while w1.api.containers(all=True, filters={"label": "io.jupyter.berth.managed=1"}):
                assert time.monotonic() < deadline, "Swarm did not remove the lost server's and kernels' containers"
                await asyncio.sleep(0.5)


HUB_POLICY = {"max_cpu": 2, "max_mem": "2G", "max_kernels": 4, "default": {"cpu": 0.25, "mem": "256M"}}


def _live(data_dir: str) -> dict:
    """``{(owner, kind): node}`` of the live allocations in the hub's ledger."""
    from jupyter_berth.ledger import Ledger

    ledger = Ledger(None, data_dir=data_dir)
    try:
        return {(a.owner, a.kind): a.node for a in ledger.live_allocations()}
    finally:
        ledger.close()


@pytest.mark.swarm
@pytest.mark.docker
@pytest.mark.timeout(900)
def test_a_real_jupyterhub_runs_two_users_servers_on_different_nodes_and_loses_one_with_its_node(
    swarm_cluster, tmp_path
):
    """JupyterHub, its proxy and the Berth service (this checkout) in a container's network namespace on the
    manager (tests/swarm_hub.py); users' servers and kernels on the swarm, cells run through the proxy."""
    if DEFAULT_SERVER_IMAGE not in swarm_cluster.image_ids:
        pytest.skip(f"{DEFAULT_SERVER_IMAGE} is not built on this host (berth images bootstrap --recipe singleuser)")
    ann, bob = f"ann{RUN}", f"bob{RUN}"
    worker = swarm_cluster.workers[0]
    hub = SwarmHub(tmp_path / "hub", swarm_cluster, run=RUN, users=(ann, bob), policy=HUB_POLICY)
    data_dir = str(tmp_path / "hub" / "berth")
    hub.start()
    try:
        ran = {user: hub.client(SPAWN_AND_RUN.format(user=user, port=hub.port)) for user in (ann, bob)}
        for user, result in ran.items():
            assert result["status"] == 200 and result["cell"].startswith("42 "), (user, result)
        # Each server where admission put it (the manager has 0.5 CPU for Berth: ann's server and kernel), the
        # kernels beside them.
        assert _live(data_dir) == {(ann, "server"): MGR, (ann, "kernel"): MGR, (bob, "server"): W1, (bob, "kernel"): W1}
        swarm_cluster.crash(worker)
        swarm_cluster.wait_node_state(worker, "down", timeout=60)
        gone = hub.client(
            f"""
            deadline = time.monotonic() + 60
            while (httpx.get(API + "/users/{bob}", headers=H, timeout=30).json().get("servers") or {{}}):
                assert time.monotonic() < deadline, "the hub still lists bob's server"
                time.sleep(1)
            ann = httpx.get(URL + "/user/{ann}/api/status", headers=H, timeout=30)
            print(json.dumps({{"ann_status": ann.status_code}}))
            """
        )
        assert gone == {"ann_status": 200}  # bob's server is gone from the hub; ann's still answers
        assert _live(data_dir) == {(ann, "server"): MGR, (ann, "kernel"): MGR}
        from jupyter_berth.ledger import Ledger

        ledger = Ledger(None, data_dir=data_dir)
        try:
            lost = {r.kind: r for r in ledger.usage_records(owner=bob)}
        finally:
            ledger.close()
        for kind in ("server", "kernel"):
            assert lost[kind].end_reason == "lost" and W1 in lost[kind].message, (kind, lost[kind].message)
    finally:
        print(hub.log_tail(60))
        hub.stop()
        if not swarm_cluster._answers(worker):
            swarm_cluster.start_daemon(worker)
        swarm_cluster.wait_node_state(worker, "ready", timeout=60)
        with contextlib.closing(worker.client()) as w1:
            deadline = time.monotonic() + 60
            while w1.api.containers(all=True, filters={"label": "io.jupyter.berth.managed=1"}):
                assert time.monotonic() < deadline, "Swarm did not remove the lost server's and kernel's containers"
                time.sleep(0.5)


@pytest.mark.swarm
@pytest.mark.docker
async def test_leaving_the_swarm_removes_docker_gwbridge(swarm_cluster, tmp_path):
    worker = swarm_cluster.workers[0]
    with contextlib.closing(worker.client()) as w1:
        assert any(n["Name"] == GWBRIDGE for n in w1.api.networks())
        assert leave_swarm(w1.api) == {"left": True, "gwbridge_removed": True}
        assert not any(n["Name"] == GWBRIDGE for n in w1.api.networks())
        assert w1.api.info()["Swarm"]["LocalNodeState"] == "inactive"
    swarm_cluster.wait_node_state(worker, "down", timeout=60)
    async with swarm_service(tmp_path, swarm_cluster) as service:
        nodes = {n.name: n.state for n in await service._db(service.ledger.nodes)}
        assert nodes == {MGR: "ready", W1: "down"}
        with pytest.raises(CapacityError):  # nothing is queued for a host that is gone
            await service.start_kernel(f"dee-{RUN}", kernel_id=f"kd-{RUN}", request={"cpu": 1, "mem": "256M"})

"""DockerRuntime against the real Docker engine: limits, isolation, lifecycle, usage, networks.

Containers run ``berth/python:3.11`` (the bootstrapped kernel image) when it is
present; tests that need nothing but a shell (OOM, cgroup files) prefer the tiny
``berth-test/minbase:latest`` image (``mmdebstrap --variant=minbase bookworm - |
docker import - berth-test/minbase:latest``). Every container and network made
here carries a per-run label and is removed at the end, even on failure.
"""

from __future__ import annotations

import asyncio
import os
import pathlib
import signal
import tempfile
import uuid

import docker
import docker.errors
import pytest

from jupyter_berth.errors import ConflictError, EngineError, NotFoundError, RequestError
from jupyter_berth.resources import Resources
from jupyter_berth.runtime import ContainerSpec, DockerRuntime, Mount, cgroups, make_labels, parse_labels
from jupyter_berth.runtime.hardening import host_config_kwargs

pytestmark = pytest.mark.docker

PY_IMAGE = "berth/python:3.11"
MINBASE_IMAGE = "berth-test/minbase:latest"
RUN = uuid.uuid4().hex[:8]
OWNER = f"test-{RUN}"
MiB = 1024**2

# Prints the container's own limits and identity, cgroup v1 or v2.
REPORT = (
    "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max; "
    "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null || cut -d' ' -f1 /sys/fs/cgroup/cpu.max; "
    "cat /sys/fs/cgroup/pids/pids.max; "
    "id -u; grep -E '^(CapEff|NoNewPrivs):' /proc/self/status"
)


def _images(client) -> set[str]:
    return {tag for image in client.images.list() for tag in image.tags}


@pytest.fixture(scope="module")
def runtime():
    rt = DockerRuntime()
    try:
        rt.client.ping()
    except EngineError as e:
        pytest.skip(f"no Docker engine: {e.message}")
    yield rt
    client = rt.client
    for c in client.containers.list(all=True, filters={"label": f"io.jupyter.berth.test_run={RUN}"}):
        c.remove(force=True)
    for n in client.networks.list(filters={"label": f"io.jupyter.berth.test_run={RUN}"}):
        n.remove()
    rt.close()


@pytest.fixture(scope="module")
def images(runtime):
    """(image for python/kernel work, image for shell-only work)."""
    have = _images(runtime.client)
    main = PY_IMAGE if PY_IMAGE in have else MINBASE_IMAGE if MINBASE_IMAGE in have else None
    if main is None:
        pytest.skip(f"neither {PY_IMAGE} nor {MINBASE_IMAGE} is present; run `berth images bootstrap`")
    shell = MINBASE_IMAGE if MINBASE_IMAGE in have else main
    return main, shell


@pytest.fixture
def shared_dir():
    """A host folder the container user (uid 1000) can read; pytest's tmp_path is root-only."""
    with tempfile.TemporaryDirectory(prefix=f"berth-test-{RUN}-") as path:
        os.chmod(path, 0o755)
        yield pathlib.Path(path)


def spec(name: str, image: str, script: str, owner: str = OWNER, **kw) -> ContainerSpec:
    resources = kw.pop("resources", Resources(cpu=1, mem=256 * MiB, pids=64))
    return ContainerSpec(
        name=f"berth-test-{RUN}-{name}",
        image=image,
        command=["sh", "-c", script],
        resources=resources,
        labels=make_labels(owner, "kernel", name, f"alloc-{name}", test_run=RUN),
        **kw,
    )


async def exec_in(runtime, container_id: str, script: str) -> str:
    """Run a shell command inside a running container (as the container's user)."""
    container = await asyncio.to_thread(runtime.client.containers.get, container_id)
    code, out = await asyncio.to_thread(container.exec_run, ["sh", "-c", script])
    assert code == 0, out
    return out.decode()


async def wait_for_log(runtime, container_id: str, text: str, timeout: float = 10) -> str:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        logs = await runtime.logs(container_id, tail=None)
        if text in logs:
            return logs
        assert loop.time() < deadline, f"{text!r} not in logs after {timeout} s: {logs!r}"
        await asyncio.sleep(0.05)


async def test_limits_and_hardening_seen_inside(runtime, images):
    main, _ = images
    info = await runtime.run(spec("limits", main, REPORT, resources=Resources(cpu=0.5, mem=256 * MiB, pids=64)))
    assert info.name.endswith("-limits") and info.image == main and info.image_id.startswith("sha256:")
    assert parse_labels(info.labels)["owner"] == OWNER and info.berth_labels["managed"] == "1"
    assert info.berth_labels["image_ref"] == main
    done = await runtime.wait(info.id, timeout=20)
    assert done.exit_code == 0 and not done.oom_killed and not done.running
    assert done.started_at and done.finished_at and done.finished_at >= done.started_at
    lines = (await runtime.logs(info.id)).split("\n")
    assert lines[:4] == ["268435456", "50000", "64", "1000"], lines
    assert "CapEff:\t0000000000000000" in lines and "NoNewPrivs:\t1" in lines
    attrs = await asyncio.to_thread(runtime.client.api.inspect_container, info.id)
    host = attrs["HostConfig"]
    assert host["MemorySwap"] == host["Memory"] == 256 * MiB
    assert host["IpcMode"] == "private" and not host["Privileged"] and host["ShmSize"] == 64 * MiB


async def test_oom_kill_is_reported(runtime, images):
    _, shell = images
    info = await runtime.run(
        spec("oom", shell, "head -c 400M /dev/zero | tail", resources=Resources(cpu=1, mem=128 * MiB, pids=64))
    )
    done = await runtime.wait(info.id, timeout=30)
    assert done.exit_code == 137 and done.oom_killed


async def test_usage_limits_and_update(runtime, images):
    _, shell = images
    info = await runtime.run(
        spec("busy", shell, "while :; do :; done", resources=Resources(cpu=0.5, mem=256 * MiB, pids=64))
    )
    first = await runtime.usage(info.id)
    await asyncio.sleep(1.0)
    second = await runtime.usage(info.id)
    assert first and second and second.at > first.at
    # a busy loop capped at half a core never uses much more than 0.5 s of CPU per second (how much
    # less depends on what else the host runs: under load it may get far less, so only "some" is checked)
    rate = (second.cpu_seconds - first.cpu_seconds) / (second.at - first.at).total_seconds()
    assert 0 < rate < 0.6, (rate, first, second)
    assert 0 < second.mem_bytes < 256 * MiB and second.mem_peak_bytes >= second.mem_bytes and second.pids >= 1
    by_name = await runtime.usage(info.name)
    assert by_name and by_name.cpu_seconds >= second.cpu_seconds

    # the host-side cgroup reader sees the same limits docker set
    cg = cgroups.find_container_cgroup(info.id)
    assert cg is not None, cgroups.detect_layout()
    assert cgroups.read_limits(cg) == {"mem": 256 * MiB, "cpu": 0.5, "pids": 64}

    await runtime.update_resources(info.id, Resources(cpu=1.5, mem=512 * MiB, pids=100))
    inside = await exec_in(runtime, info.id, REPORT)
    assert inside.split("\n")[:3] == [str(512 * MiB), "150000", "100"], inside
    await runtime.update_resources(info.id, Resources(cpu=0.25, mem=64 * MiB, pids=32))
    inside = await exec_in(runtime, info.id, REPORT)
    assert inside.split("\n")[:3] == [str(64 * MiB), "25000", "32"], inside

    # without cgroup files the engine's one-shot stats give the same kind of numbers
    engine_only = DockerRuntime(read_cgroups=False)
    try:
        from_stats = await engine_only.usage(info.id)
        assert (
            from_stats.cpu_seconds >= second.cpu_seconds
            and 0 < from_stats.mem_bytes < 256 * MiB
            and from_stats.pids >= 1
        )
        await runtime.remove(info.id)
        assert await runtime.usage(info.id) is None
        assert await engine_only.usage(info.id) is None
    finally:
        engine_only.close()


def test_cgroup_v2_layout_is_read(tmp_path):
    """The v2 reader against a unified-hierarchy tree laid out as the kernel does (systemd driver)."""
    cid = "ab" * 32
    scope = tmp_path / "cg" / "system.slice" / f"docker-{cid}.scope"
    scope.mkdir(parents=True)
    files = {
        "cpu.stat": "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n",
        "memory.current": "104857600\n",
        "memory.stat": "anon 94371840\nfile 10485760\ninactive_file 4194304\n",
        "memory.peak": "209715200\n",
        "pids.current": "7\n",
        "memory.max": "268435456\n",
        "cpu.max": "50000 100000\n",
        "pids.max": "max\n",
    }
    for name, text in files.items():
        (scope / name).write_text(text)
    mounts = tmp_path / "mounts"
    mounts.write_text(f"cgroup2 {tmp_path / 'cg'} cgroup2 rw,nosuid,nodev,noexec,relatime 0 0\n")
    layout = cgroups.detect_layout(str(mounts))
    assert layout.version == 2
    cg = cgroups.find_container_cgroup(cid, layout=layout)
    sample = cgroups.read_usage(cg)
    assert (
        sample["cpu_seconds"] == 2.5 and sample["mem_bytes"] == 96 * MiB
    )  # current − inactive_file and sample["mem_peak_bytes"] == 200 * MiB
    assert sample["pids"] == 7
    assert cgroups.read_limits(cg) == {"mem": 256 * MiB, "cpu": 0.5, "pids": None}
    assert cgroups.find_container_cgroup("cd" * 32, layout=layout) is None


async def test_signals_reach_the_process(runtime, images):
    main, _ = images
    script = "trap 'echo got-USR1' USR1; trap 'echo got-INT; exit 3' INT; echo ready; while :; do sleep 0.05; done"
    info = await runtime.run(spec("signal", main, script))
    await wait_for_log(runtime, info.id, "ready")
    assert await runtime.signal(info.id, signal.SIGUSR1)
    await wait_for_log(runtime, info.id, "got-USR1")
    assert await runtime.signal(info.id, signal.SIGINT)
    done = await runtime.wait(info.id, timeout=10)
    assert done.exit_code == 3 and "got-INT" in await runtime.logs(info.id)
    assert await runtime.signal(info.id, signal.SIGUSR1) is False  # not running any more


async def test_list_filters_by_owner_and_vanished_containers(runtime, images):
    _, shell = images
    other = f"other-{RUN}"
    mine, theirs = await asyncio.gather(
        runtime.run(spec("mine", shell, "sleep 60")), runtime.run(spec("theirs", shell, "sleep 60", owner=other))
    )
    listed = {c.id for c in await runtime.list({"owner": OWNER})}
    assert mine.id in listed and theirs.id not in listed
    assert [c.id for c in await runtime.list({"owner": other, "subject": "theirs"})] == [theirs.id]
    assert await runtime.list({"owner": other, "subject": "nobody"}) == []

    await runtime.remove(theirs.id)
    assert await runtime.inspect(theirs.id) is None
    await runtime.stop(theirs.id)  # gone already: no error
    await runtime.remove(theirs.id)
    assert await runtime.signal(theirs.id, signal.SIGTERM) is False
    assert await runtime.logs(theirs.id) == ""
    assert [c.id for c in await runtime.list({"owner": other})] == []

    await runtime.stop(mine.id, timeout=0)
    stopped = await runtime.inspect(mine.id)
    # SIGTERM then, at once, SIGKILL: whichever reached the process first ended it (143 or 137)
    assert stopped.status == "exited" and stopped.exit_code in (137, 143) and not stopped.oom_killed
    assert await runtime.usage(mine.id) is None
    running_only = {c.id for c in await runtime.list({"owner": OWNER}, all=False)}
    assert mine.id not in running_only


async def test_per_user_network(runtime, images):
    _, shell = images
    net = f"berth-test-{RUN}-net"
    labels = {"owner": OWNER, "test_run": RUN}
    other_process = DockerRuntime()  # its own locks: only the host-wide lock orders the two
    try:
        ids = await asyncio.gather(
            runtime.ensure_network(net, labels),
            runtime.ensure_network(net, labels),
            other_process.ensure_network(net, labels),
        )
    finally:
        other_process.close()
    assert len(set(ids)) == 1
    assert [n.id for n in await asyncio.to_thread(runtime.client.networks.list, names=[net])] == [ids[0]]
    a = await runtime.run(spec("net-a", shell, "sleep 60", network=net))
    b = await runtime.run(spec("net-b", shell, "sleep 60", network=f"berth-test-{RUN}-net2", hostname="kernel-b"))
    attrs = await asyncio.to_thread(runtime.client.api.inspect_network, net)
    assert attrs["Driver"] == "bridge" and attrs["Labels"]["io.jupyter.berth.managed"] == "1"
    assert a.ip and a.id in attrs["Containers"] and attrs["Containers"][a.id]["IPv4Address"].startswith(a.ip + "/")
    net2 = await asyncio.to_thread(runtime.client.api.inspect_network, f"berth-test-{RUN}-net2")
    assert net2["Labels"]["io.jupyter.berth.owner"] == OWNER and b.ip and b.ip != a.ip
    with pytest.raises(ConflictError):
        await runtime.remove_network(net)  # a container is still attached
    await runtime.remove(a.id)
    await runtime.remove(b.id)
    await runtime.remove_network(net)
    await runtime.remove_network(net)  # gone already: no error
    await runtime.remove_network(f"berth-test-{RUN}-net2")


async def test_extra_labels_mark_every_container_network_and_volume(runtime, images, monkeypatch):
    _, shell = images
    monkeypatch.setenv("BERTH_EXTRA_LABELS", f"{os.environ.get('BERTH_EXTRA_LABELS', '')},cost_centre=physics-{RUN}")
    mark = {"io.jupyter.berth.cost_centre": f"physics-{RUN}"}
    net, vol = f"berth-test-{RUN}-marked", f"berth-test-{RUN}-marked"
    await runtime.ensure_network(net, {"test_run": RUN})
    await runtime.ensure_volume(vol, {"test_run": RUN})
    info = await runtime.run(spec("marked", shell, "sleep 60"))
    try:
        net_labels = (await asyncio.to_thread(runtime.client.api.inspect_network, net))["Labels"]
        vol_labels = (await asyncio.to_thread(runtime.client.api.inspect_volume, vol))["Labels"]
        ctr_labels = (await asyncio.to_thread(runtime.client.api.inspect_container, info.id))["Config"]["Labels"]
        for labels in (net_labels, vol_labels, ctr_labels):
            assert mark.items() <= labels.items() and labels["io.jupyter.berth.managed"] == "1"
        assert ctr_labels["io.jupyter.berth.test_run"] == RUN  # the request's own labels win over extra ones
    finally:
        await runtime.remove(info.id)
        await runtime.remove_network(net)
        await asyncio.to_thread(runtime.client.api.remove_volume, vol)
    monkeypatch.setenv("BERTH_EXTRA_LABELS", "team")
    with pytest.raises(RequestError, match="BERTH_EXTRA_LABELS"):
        make_labels("ann", "kernel", "k")


async def test_refusals_create_nothing(runtime, images):
    main, _ = images
    for source in ("/var/run/docker.sock", "/run/docker.sock", "/var/run", "/"):
        with pytest.raises(RequestError, match="Docker socket"):
            await runtime.run(spec("sock", main, "true", mounts=[Mount(source, "/mnt/x")]))
    for user in ("0", "0:0", "root", "1000:0", "jovyan"):
        with pytest.raises(RequestError, match="user"):
            await runtime.run(spec("root", main, "true", user=user))
    with pytest.raises(NotFoundError, match=r"berth/does-not-exist:1.*berth images bootstrap"):
        await runtime.run(spec("noimage", "berth/does-not-exist:1", "true"))
    names = {c.name for c in await runtime.list({"owner": OWNER})}
    assert not names & {f"berth-test-{RUN}-{n}" for n in ("sock", "root", "noimage")}


async def test_name_conflict_keeps_the_first(runtime, images, shared_dir):
    _, shell = images
    (shared_dir / "data.txt").write_text("hello\n")
    first = await runtime.run(spec("dup", shell, "sleep 60", mounts=[Mount(str(shared_dir), "/data", read_only=True)]))
    with pytest.raises(ConflictError, match="already exists"):
        await runtime.run(spec("dup", shell, "sleep 60"))
    assert (await runtime.inspect(first.id)).running
    assert await exec_in(runtime, first.id, "cat /data/data.txt") == "hello\n"
    container = await asyncio.to_thread(runtime.client.containers.get, first.id)
    code, out = await asyncio.to_thread(container.exec_run, ["sh", "-c", "touch /data/new"])
    assert code != 0 and b"Read-only file system" in out
    await runtime.remove(first.id)


async def test_cancelled_run_leaves_nothing(runtime, images):
    _, shell = images
    for i, delay in enumerate((0.0, 0.03, 0.1)):
        task = asyncio.create_task(runtime.run(spec(f"cancel{i}", shell, "sleep 60")))
        await asyncio.sleep(delay)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while any(c.berth_labels["subject"].startswith("cancel") for c in await runtime.list({"owner": OWNER})):
        assert loop.time() < deadline, "a cancelled run() left its container behind"
        await asyncio.sleep(0.1)


async def test_engine_unreachable_is_engine_error():
    rt = DockerRuntime(client_factory=lambda: docker.DockerClient(base_url="tcp://127.0.0.1:9", timeout=2))
    try:
        with pytest.raises(EngineError, match="does not answer.*berth engine up"):
            await rt.ping()
    finally:
        rt.close()


def test_gpu_devices_become_a_device_request():
    s = ContainerSpec(
        name="g", image="x", command=[], resources=Resources(gpu=1), labels={}, gpu_device_ids=["GPU-abc"]
    )
    requests = host_config_kwargs(s)["device_requests"]
    assert requests[0]["DeviceIDs"] == ["GPU-abc"] and requests[0]["Capabilities"] == [["gpu"]]
    assert "device_requests" not in host_config_kwargs(
        ContainerSpec(name="g", image="x", command=[], resources=Resources(), labels={})
    )


async def test_an_engine_given_by_address_is_named_by_it_in_errors():
    """A runtime on another engine (a Swarm manager's or node's) says which one does not answer:
    the address is the runtime's own setting, not a patched method."""

    def unreachable():
        raise docker.errors.DockerException("connection refused")

    runtime = DockerRuntime(unreachable, address="tcp://127.0.0.1:9")
    try:
        with pytest.raises(EngineError, match=r"the Docker engine at tcp://127\.0\.0\.1:9 does not answer"):
            await runtime.ping()
    finally:
        runtime.close()


async def test_runtimes_are_configurables_and_only_docker_ones_run_docker_calls(tmp_path):
    from traitlets.config import Config, LoggingConfigurable

    from jupyter_berth.runtime import ProcessRuntime, Runtime

    config = Config({"ProcessRuntime": {"limits": "rlimit", "state_dir": str(tmp_path)}})
    process = ProcessRuntime(config=config)
    assert isinstance(process, Runtime) and isinstance(process, LoggingConfigurable) and process.limits == "rlimit"
    assert DockerRuntime.has_docker_api and not process.has_docker_api
    with pytest.raises(EngineError, match="the process runtime has none"):
        await process.docker("info")
    process.close()

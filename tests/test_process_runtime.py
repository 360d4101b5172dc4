"""The process runtime: real ipykernel processes, real cgroups (as root here) and rlimits, a real jupyter_server.

No container engine is involved: these tests run where Docker is absent (a Binder), and where it
is present they force the process runtime by configuration.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest
from jupyter_client.asynchronous import AsyncKernelClient
from traitlets.config import Config

from jupyter_berth.errors import EngineError, PolicyError
from jupyter_berth.kernel_launch import FOLDERS_ROOT, KernelConnection, kernel_spec
from jupyter_berth.kernels import backend
from jupyter_berth.kernelspecs import image_kernel_name
from jupyter_berth.resources import Resources
from jupyter_berth.runtime import process_limits
from jupyter_berth.runtime.base import ContainerSpec, Mount
from jupyter_berth.runtime.labels import make_labels
from jupyter_berth.runtime.process import ProcessRuntime
from jupyter_berth.runtime.process_state import proc_stat
from jupyter_berth.service import BerthService, standalone_user

from .berth_fixtures import service_config

MiB = 1024**2
USER = standalone_user()[0]
#: Touches every page, so that the memory is really used (a cgroup charges it, RLIMIT_AS refuses it).
HOG = "x = b'x' * (600 << 20)\nprint('allocated', len(x))"


def cgroups_writable() -> bool:
    return ProcessRuntime(state_dir="/nonexistent").limits_mechanism().startswith("cgroup")


needs_cgroups = pytest.mark.skipif(
    not cgroups_writable() and not os.environ.get("CI"),
    reason="no writable cgroup filesystem here (the rlimit path is tested below)",
)


@pytest.fixture
def runtime(tmp_path):
    rt = ProcessRuntime(state_dir=str(tmp_path / "state"), single_user=False)
    yield rt
    for record in rt.state.all():  # whatever a failed test left running
        rt._remove_sync(record.id, True)
    rt.close()


def kernel(owner=USER, mem=256 * MiB, cpu=0.5, pids=256, **kw) -> tuple[ContainerSpec, KernelConnection]:
    kid = f"k-{uuid.uuid4().hex[:8]}"
    conn = KernelConnection(key=uuid.uuid4().hex)
    spec = kernel_spec(
        owner=owner,
        kernel_id=kid,
        allocation_id=f"a-{kid}",
        image=ProcessRuntime().image_ref,
        resources=Resources(cpu=cpu, mem=mem, pids=pids),
        connection=conn,
        network="unused",
        site="test-process",
        **kw,
    )
    return spec, conn


def command(cmd: list[str], mem=128 * MiB, pids=64) -> ContainerSpec:
    name = f"berth-kernel-cmd-{uuid.uuid4().hex[:8]}"
    return ContainerSpec(
        name=name,
        image=ProcessRuntime().image_ref,
        command=cmd,
        resources=Resources(cpu=0.5, mem=mem, pids=pids),
        labels=make_labels(owner=USER, kind="kernel", subject=name, allocation=name, site="test-process"),
    )


async def ready(kc: AsyncKernelClient) -> None:
    """Wait for the kernel's first kernel_info reply (ZeroMQ queues the request until the kernel binds).

    Not ``wait_for_ready``: without a kernel manager it judges the kernel dead when one heartbeat is
    late, which a kernel starting under a 0.5 CPU quota may well be.
    """
    msg_id = kc.kernel_info()
    while (await kc.get_shell_msg(timeout=30))["parent_header"].get("msg_id") != msg_id:
        pass


async def client_for(info, conn: KernelConnection) -> AsyncKernelClient:
    kc = AsyncKernelClient()
    kc.load_connection_info(conn.for_client(info.ip, info.ports))
    kc.start_channels()
    await ready(kc)
    return kc


async def execute(kc, code, timeout=30) -> tuple[dict, str]:
    out = []

    def hook(msg):
        if msg["msg_type"] == "stream":
            out.append(msg["content"]["text"])
        elif msg["msg_type"] == "error":
            out.append(msg["content"]["ename"] + ": " + msg["content"]["evalue"])

    reply = await kc.execute_interactive(code, output_hook=hook, timeout=timeout)
    return reply["content"], "".join(out)


# -- the runtime itself ------------------------------------------------------------------------------


async def test_a_kernel_runs_reports_usage_is_interrupted_and_stopped(runtime, tmp_path):
    spec, conn = kernel(cwd=str(tmp_path), env={"BERTH_NOTICE": "it used too much memory"})
    info = await runtime.run(spec)
    assert (
        info.running
        and info.ip == "127.0.0.1"
        and set(info.ports) == {"shell_port", "iopub_port", "stdin_port", "control_port", "hb_port"}
    )
    assert info.limits["mechanism"] in ("cgroup v1", "cgroup v2", "rlimit")
    assert info.image == runtime.image_ref and info.berth_labels["subject"] == spec.labels["io.jupyter.berth.subject"]
    kc = await client_for(info, conn)
    try:
        content, out = await execute(
            kc, "import os; print(os.getcwd(), os.environ['BERTH_RUNTIME'], os.getpid(), flush=True)"
        )
        assert "[Berth] The previous kernel ended: it used too much memory" in out  # told in the first cell
        (line,) = [x for x in out.splitlines() if x.startswith(str(tmp_path))]
        cwd, runtime_name, pid = line.split()
        assert content["status"] == "ok" and (cwd, runtime_name, int(pid)) == (str(tmp_path), "process", info.pid)
        usage = await runtime.usage(info.id)
        assert usage.cpu_seconds > 0 and usage.mem_bytes > 10 * MiB and usage.pids >= 1
        # an interrupt is a real SIGINT to the kernel's process group
        msg_id = kc.execute("import time; time.sleep(60)")
        await asyncio.sleep(1)
        assert await runtime.signal(info.id, signal.SIGINT)
        reply = await kc.get_shell_msg(timeout=20)
        assert reply["parent_header"]["msg_id"] == msg_id and reply["content"]["ename"] == "KeyboardInterrupt"
        assert [i.id for i in await runtime.list({"site": "test-process"})] == [info.id]
    finally:
        kc.stop_channels()
    await runtime.stop(info.id, timeout=5)
    stopped = await runtime.inspect(info.id)
    assert not stopped.running and stopped.exit_code is not None and not stopped.oom_killed
    assert await runtime.usage(info.id) is None and not await runtime.signal(info.id, signal.SIGINT)
    assert await runtime.list({"site": "test-process"}, all=False) == []
    record = runtime.state.load(info.id)
    await runtime.remove(info.id)
    assert await runtime.inspect(info.id) is None and runtime.state.all() == []
    assert not os.path.exists(record.workdir) and not any(os.path.exists(d) for d in record.cgroup.values())


@needs_cgroups
async def test_cgroup_memory_limit_kills_the_kernel(runtime):
    info = await runtime.run(command([sys.executable, "-c", HOG], mem=128 * MiB))
    assert info.limits["mechanism"].startswith("cgroup") and "128 MiB" in info.limits["mem"]
    assert "CPU" in info.limits["cpu"] and "64" in info.limits["pids"]
    record = runtime.state.load(info.id)
    assert record.cgroup and all(os.path.isdir(d) for d in record.cgroup.values())
    done = await runtime.wait(info.id, timeout=60)
    assert done.oom_killed and done.exit_code == 137
    assert "allocated" not in await runtime.logs(info.id)
    await runtime.remove(info.id)
    assert not any(os.path.exists(d) for d in record.cgroup.values())


@needs_cgroups
async def test_cgroup_limits_are_the_kernels_and_can_change(runtime):
    spec, conn = kernel(mem=256 * MiB, cpu=0.5, pids=100)
    info = await runtime.run(spec)
    record = runtime.state.load(info.id)
    limits = process_limits.cgroups.read_limits(
        process_limits.cgroups.ContainerCgroup(2 if "unified" in record.cgroup else 1, record.cgroup)
    )
    assert limits == {"mem": 256 * MiB, "cpu": 0.5, "pids": 100}
    assert info.pid in process_limits.cgroup_pids(record.cgroup)
    await runtime.update_resources(info.id, Resources(cpu=1, mem=512 * MiB, pids=200))
    limits = process_limits.cgroups.read_limits(
        process_limits.cgroups.ContainerCgroup(2 if "unified" in record.cgroup else 1, record.cgroup)
    )
    assert limits == {"mem": 512 * MiB, "cpu": 1.0, "pids": 200}
    assert "536870912" in (await runtime.inspect(info.id)).limits["mem"]
    await runtime.remove(info.id)


async def test_rlimit_memory_limit_fails_the_allocation(tmp_path):
    rt = ProcessRuntime(state_dir=str(tmp_path / "state"), limits="rlimit")
    try:
        info = await rt.run(command([sys.executable, "-c", HOG], mem=128 * MiB))
        assert info.limits["mechanism"] == "rlimit" and info.limits["mem"].startswith("RLIMIT_AS=")
        assert info.limits["cpu"].startswith("not enforced")
        assert rt.state.load(info.id).cgroup == {}
        done = await rt.wait(info.id, timeout=60)
        assert done.exit_code == 1 and not done.oom_killed
        assert "MemoryError" in await rt.logs(info.id)
        await rt.remove(info.id)
        # a kernel starts under the same kind of limit and survives a too-large allocation
        spec, conn = kernel(mem=256 * MiB)
        info = await rt.run(spec)
        kc = await client_for(info, conn)
        try:
            content, out = await execute(kc, HOG)
            assert content["status"] == "error" and "MemoryError" in out
            content, out = await execute(kc, "import os; print(os.environ['BERTH_ENFORCEMENT'], flush=True)")
            assert out.strip() == "rlimit"
            usage = await rt.usage(info.id)  # from /proc: no cgroup
            assert usage.mem_bytes > 10 * MiB and usage.pids >= 1
        finally:
            kc.stop_channels()
        await rt.remove(info.id)
    finally:
        rt.close()


async def test_without_a_cgroup_filesystem_auto_falls_back_and_cgroup_mode_refuses(tmp_path, monkeypatch):
    monkeypatch.setattr(process_limits.cgroups, "detect_layout", lambda *a, **k: None)  # a host with no cgroup mount
    auto = ProcessRuntime(state_dir=str(tmp_path / "auto"))
    strict = ProcessRuntime(state_dir=str(tmp_path / "strict"), limits="cgroup")
    try:
        info = await auto.run(command(["true"]))
        assert info.limits["mechanism"] == "rlimit" and info.limits["why"] == "no cgroup filesystem is mounted"
        await auto.remove(info.id)
        with pytest.raises(EngineError, match="no cgroup filesystem is mounted.*limits = 'rlimit'"):
            await strict.run(command(["true"]))
        assert strict.state.all() == []
    finally:
        auto.close()
        strict.close()


async def test_folders_are_symlinks_and_other_users_are_refused(runtime, tmp_path):
    data = tmp_path / "datasets"
    data.mkdir()
    spec = command(["sh", "-c", 'readlink "$BERTH_FOLDERS_DIR/datasets" > "$BERTH_FOLDERS_DIR/../seen"'])
    spec.mounts = [Mount(source=str(data), target=f"{FOLDERS_ROOT}/datasets", read_only=True)]
    info = await runtime.run(spec)
    await runtime.wait(info.id, timeout=30)
    assert (tmp_path / "state" / info.id / "seen").read_text().strip() == str(data)
    await runtime.remove(info.id)
    strict = ProcessRuntime(state_dir=str(tmp_path / "state"))
    other, _ = kernel(owner=f"not-{USER}")
    with pytest.raises(PolicyError, match="serves only that user"):
        await strict.run(other)
    assert strict.state.all() == []
    strict.close()


ADOPT_SCRIPT = """
import asyncio, json, sys
from jupyter_berth.runtime.process import ProcessRuntime
from jupyter_berth.runtime.base import ContainerSpec
from jupyter_berth.runtime.labels import make_labels
from jupyter_berth.runtime.process_state import proc_stat
from jupyter_berth.resources import Resources

async def main():
    rt = ProcessRuntime(state_dir=sys.argv[1], single_user=False)
    spec = ContainerSpec(name="berth-kernel-adopt", image=rt.image_ref, command=["sleep", "300"],
                         resources=Resources(cpu=0.5, mem=64 * 2**20),
                         labels=make_labels(owner="x", kind="kernel", subject="adopt", allocation="a", site="test-process"))
    print((await rt.run(spec)).id)

asyncio.run(main())
"""


async def test_a_restarted_runtime_adopts_a_kernel_another_process_started(runtime, tmp_path):
    out = subprocess.run(
        [sys.executable, "-c", ADOPT_SCRIPT, runtime.state.path], capture_output=True, text=True, check=True
    )
    cid = out.stdout.strip()  # the process that started it has exited: the kernel is no child of ours
    info = await runtime.inspect(cid)
    assert info is not None and info.running and info.name == "berth-kernel-adopt"
    assert [i.id for i in await runtime.list({"site": "test-process"}, all=False)] == [cid]
    assert (await runtime.usage(cid)).pids >= 1
    assert await runtime.signal(cid, 0)
    await runtime.stop(cid, timeout=5)
    stopped = await runtime.inspect(cid)
    assert not stopped.running and stopped.exit_code == 128 + signal.SIGTERM  # sleep dies of the SIGTERM
    await runtime.remove(cid)
    assert await runtime.inspect(cid) is None


# -- through the service ---------------------------------------------------------------------------


async def stop_all(service: BerthService) -> None:
    """Stop the service and whatever kernels of its site a failed test left running."""
    for c in await service.runtime.list({"site": service.site_id}):
        await service.runtime.remove(c.id)
    await service.stop()


def process_config(data_dir, **runtime_traits) -> Config:
    c = service_config(str(data_dir))
    c.BerthService.runtime_kind = "process"
    for k, v in runtime_traits.items():
        setattr(c.ProcessRuntime, k, v)
    return c


async def test_service_restart_adopts_running_kernels_and_releases_gone_ones(tmp_path):
    data = tmp_path / "data"
    first = BerthService(config=process_config(data))
    await first.start()
    assert first.runtime.name == "process" and first.default_image == first.runtime.image_ref
    keep = await first.start_kernel(
        USER, kernel_id=f"keep-{uuid.uuid4().hex[:6]}", request={"cpu": 0.25, "mem": "256M"}
    )
    gone = await first.start_kernel(
        USER, kernel_id=f"gone-{uuid.uuid4().hex[:6]}", request={"cpu": 0.25, "mem": "256M"}
    )
    assert keep.connection["ip"] == "127.0.0.1" and keep.connection["shell_port"] != 50001
    gone_pid = (await first.runtime.inspect(gone.container_id)).pid
    await first.stop()  # the service goes away; its kernels keep running
    os.killpg(gone_pid, signal.SIGKILL)  # one ends while nobody watches
    deadline = time.monotonic() + 30  # ...and has ended (a loaded machine runs a killed process's exit later)
    while (stat := proc_stat(gone_pid)) is not None and stat[0] not in ("Z", "X") and time.monotonic() < deadline:
        await asyncio.sleep(0.05)

    second = BerthService(config=process_config(data))
    await second.start()
    try:
        assert {a.subject for a in await second.list_kernels()} == {keep.kernel_id}
        assert (await second.kernel_state(USER, keep.kernel_id)).running
        released = await asyncio.to_thread(second.ledger.get_allocation, gone.allocation_id)
        assert released.state == "released" and released.release_reason == "exited"
        assert await second.runtime.inspect(gone.container_id) is None
        assert await second.usage.sample_all() == 1
        reason, _ = await second.stop_kernel(USER, keep.kernel_id)
        assert reason == "shutdown" and await second.runtime.list({"site": second.site_id}) == []
    finally:
        await stop_all(second)


@needs_cgroups
async def test_service_reports_an_out_of_memory_kernel(tmp_path):
    service = BerthService(config=process_config(tmp_path / "data"))
    await service.start()
    try:
        kid = f"oom-{uuid.uuid4().hex[:6]}"
        launch = await service.start_kernel(USER, kernel_id=kid, request={"cpu": 0.5, "mem": "256M"})
        kc = AsyncKernelClient()
        kc.load_connection_info(launch.connection)
        kc.start_channels()
        await ready(kc)
        kc.execute(HOG)
        await service.runtime.wait(launch.container_id, timeout=60)
        kc.stop_channels()
        reason, message = await service.kernel_ended(USER, kid)
        assert reason == "oom" and "256 MiB" in message
    finally:
        await stop_all(service)


async def test_auto_picks_process_when_no_engine_answers_and_docker_is_not_forced(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    config = service_config(str(tmp_path / "auto"))
    service = BerthService(config=config)
    assert service.runtime_kind == "auto"
    await service.start()
    try:
        assert service.runtime.name == "process"
        assert "Berth runtime: process, because no Docker engine answers" in caplog.text
        assert [i.ref for i in await service.images.catalog_view()] == [service.runtime.image_ref]
    finally:
        await service.stop()
    config = service_config(str(tmp_path / "docker"))
    config.BerthService.runtime_kind = "docker"
    service = BerthService(config=config)
    with pytest.raises(EngineError, match="does not answer.*berth engine up"):
        await service.start()
    service.runtime.close()


@pytest.mark.docker
async def test_auto_picks_docker_when_the_engine_answers(tmp_path, caplog):
    service = BerthService(config=service_config(str(tmp_path / "data")))
    caplog.set_level(logging.INFO, logger=service.log.name)
    await service.start()
    try:
        assert service.runtime.name == "docker" and service.default_image == "berth/python:3.11"
        assert "Berth runtime: docker" in caplog.text
    finally:
        await service.stop()


# -- through jupyter_server and the Berth provisioner ---------------------------------------------------


@pytest.fixture
def jp_server_config(tmp_path):
    return {
        "ServerApp": {"jpserver_extensions": {"jupyter_berth.server": True}},
        "BerthService": {
            "data_dir": str(tmp_path / "berth-data"),
            "runtime_kind": "process",
            "default_policy": {"max_mem": "1G", "default": {"cpu": 0.5, "mem": "256M"}},
        },
        "UsageTracker": {"sample_interval": 0},
    }


def test_jupyter_server_runs_a_process_kernel_cell(jp_asyncio_loop, jp_serverapp, jp_fetch, jp_root_dir):
    async def flow():
        await jp_serverapp.extension_manager.start_all_extensions()  # syncs the Berth kernelspecs
        info = json.loads((await jp_fetch("berth", "api", "info")).body)
        assert (info["runtime"], info["isolation"]) == ("process", "none") and info["engine"]["state"] == "up"
        assert info["limits"] in ("cgroup v1", "cgroup v2", "rlimit")
        name = image_kernel_name(ProcessRuntime().image_ref)
        r = await jp_fetch("api", "kernels", method="POST", body=json.dumps({"name": name, "path": ""}))
        kernel_id = json.loads(r.body)["id"]
        km = jp_serverapp.kernel_manager
        kc = km.get_kernel(kernel_id).client()
        kc.start_channels()
        try:
            await kc.wait_for_ready(timeout=120)
            content, out = await execute(
                kc, "import os\nopen('from-kernel.txt', 'w').write('hi')\nprint(6 * 7, flush=True)"
            )
            assert content["status"] == "ok" and out.strip() == "42"
            assert (jp_root_dir / "from-kernel.txt").read_text() == "hi"
            mine = json.loads((await jp_fetch("berth", "api", "kernels")).body)["kernels"]
            assert [k["kernel_id"] for k in mine] == [kernel_id] and mine[0]["usage"]["mem_bytes"] > 0
            await km.restart_kernel(kernel_id)  # same ports again: connected clients carry on
            await kc.wait_for_ready(timeout=120)
            content, out = await execute(kc, "print('after restart', flush=True)")
            assert out.strip() == "after restart"
        finally:
            kc.stop_channels()
            await km.shutdown_kernel(kernel_id)
        service = await backend.embedded_service()
        assert await service.list_kernels() == [] and await service.runtime.list({"site": service.site_id}) == []

    try:
        jp_asyncio_loop.run_until_complete(flow())
    finally:
        jp_asyncio_loop.run_until_complete(backend.shutdown_embedded_service())

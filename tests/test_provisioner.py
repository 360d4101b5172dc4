"""BerthProvisioner against the real Docker engine: a container kernel behaves like a local one."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager

from jupyter_berth.errors import NotFoundError, PolicyError, RequestError

pytestmark = [pytest.mark.docker]

KERNEL = "berth-python-3.11"


async def start(workdir, name=KERNEL, request=None, **env):
    km = AsyncKernelManager(kernel_name=name, kernel_spec_manager=KernelSpecManager())
    if request is not None:
        env["BERTH_REQUEST"] = json.dumps(request)
    await km.start_kernel(cwd=str(workdir), env=env)
    kc = km.client()
    kc.start_channels()
    await kc.wait_for_ready(timeout=120)
    return km, kc


async def run(kc, code, timeout=30):
    """Execute code; returns (reply content, stdout, stderr)."""
    out, err = [], []

    def hook(msg):
        if msg["msg_type"] == "stream":
            (out if msg["content"]["name"] == "stdout" else err).append(msg["content"]["text"])
        elif msg["msg_type"] == "error":
            err.append("\n".join(msg["content"]["traceback"]))

    reply = await kc.execute_interactive(code, output_hook=hook, timeout=timeout)
    return reply["content"], "".join(out), "".join(err)


READ_LIMITS = """
import os
def read(*paths):
    for p in paths:
        try:
            return open(p).read().strip()
        except OSError:
            pass
print(json.dumps({
  "mem": read('/sys/fs/cgroup/memory/memory.limit_in_bytes', '/sys/fs/cgroup/memory.max'),
  "cpu": read('/sys/fs/cgroup/cpu/cpu.cfs_quota_us', '/sys/fs/cgroup/cpu.max'),
  "pids": read('/sys/fs/cgroup/pids/pids.max', '/sys/fs/cgroup/pids.max'),
  "uid": os.getuid(), "cwd": os.getcwd(),
  "capeff": [l.split()[1] for l in open('/proc/self/status') if l.startswith('CapEff')][0],
  "nonewprivs": [l.split()[1] for l in open('/proc/self/status') if l.startswith('NoNewPrivs')][0],
}))
"""


async def limits(kc):
    content, out, err = await run(kc, "import json\n" + READ_LIMITS)
    assert content["status"] == "ok", err
    return json.loads(out)


async def stop(km, kc):
    kc.stop_channels()
    await km.shutdown_kernel(now=True)


async def test_limits_in_kernel_equal_the_request(berth_service, berth_kernelspecs, workdir):
    km, kc = await start(workdir, request={"cpu": 0.5, "mem": "256M", "pids": 128})
    try:
        got = await limits(kc)
        assert got["mem"] == str(256 * 1024**2)
        assert got["cpu"].split()[0] == "50000"
        assert got["pids"] == "128"
        assert got["uid"] == 1000
        assert got["capeff"] == "0000000000000000" and got["nonewprivs"] == "1"
        assert got["cwd"] == str(workdir)  # the notebook's directory, at the same path
        # relative paths work and land next to the notebook on the host
        content, _, err = await run(kc, "open('from-kernel.txt','w').write('hi')")
        assert content["status"] == "ok", err
        assert (workdir / "from-kernel.txt").read_text() == "hi"
        (alloc,) = await berth_service.list_kernels()
        assert (alloc.cpu, alloc.mem, alloc.subject) == (0.5, 256 * 1024**2, km.kernel_id)
    finally:
        await stop(km, kc)


async def test_preset_kernelspec_and_default_profile(berth_service, berth_kernelspecs, workdir):
    assert "berth-preset-small" in berth_kernelspecs["written"]
    km, kc = await start(workdir, name="berth-preset-small")
    try:
        assert (await limits(kc))["mem"] == str(256 * 1024**2)
    finally:
        await stop(km, kc)
    # no request, no preset: the user's default profile, else the policy default (512M)
    km, kc = await start(workdir)
    try:
        assert (await limits(kc))["mem"] == str(512 * 1024**2)
    finally:
        await stop(km, kc)


async def test_interrupt_reaches_the_kernel(berth_service, berth_kernelspecs, workdir):
    km, kc = await start(workdir, request={"cpu": 0.5, "mem": "256M"})
    try:
        msg_id = kc.execute("import time; time.sleep(60)")
        await asyncio.sleep(1.5)
        t0 = time.monotonic()
        await km.interrupt_kernel()
        reply = await kc.get_shell_msg(timeout=20)
        while reply["parent_header"].get("msg_id") != msg_id:  # skip wait_for_ready's kernel_info_reply
            reply = await kc.get_shell_msg(timeout=20)
        assert reply["content"]["status"] == "error"
        assert reply["content"]["ename"] == "KeyboardInterrupt"
        assert time.monotonic() - t0 < 15
        content, out, _ = await run(kc, "print(6*7)")  # still alive afterwards
        assert out.strip() == "42"
    finally:
        await stop(km, kc)


async def test_restart_keeps_grant_and_image_shutdown_releases(berth_service, berth_kernelspecs, workdir):
    km, kc = await start(workdir, request={"cpu": 0.25, "mem": "192M"})
    first = km.provisioner.launch
    await run(kc, "x = 1")
    await km.restart_kernel()
    await kc.wait_for_ready(timeout=120)
    second = km.provisioner.launch
    assert second.container_id != first.container_id
    # Same address and ports: clients that stay connected (JupyterLab's websocket) reach the new kernel.
    assert second.connection["ip"] == first.connection["ip"]
    assert (second.resources, second.image) == (first.resources, first.image)
    content, _, err = await run(kc, "x")
    assert content["status"] == "error" and "NameError" in err  # a new process
    assert (await limits(kc))["mem"] == str(192 * 1024**2)
    old = await asyncio.to_thread(berth_service.ledger.get_allocation, first.allocation_id)
    assert old.state == "released" and old.release_reason == "restart"
    kc.stop_channels()
    await km.shutdown_kernel()
    assert await berth_service.runtime.inspect(second.container_id) is None  # container removed
    assert await berth_service.list_kernels() == []  # allocation released
    records = await asyncio.to_thread(berth_service.ledger.usage_records, None, None)
    reasons = sorted(r.end_reason for r in records)
    assert reasons == ["restart", "shutdown"]
    assert all(r.image == "berth/python:3.11" and r.image_digest for r in records)


async def test_oom_is_reported_as_oom_and_releases(berth_service, berth_kernelspecs, workdir):
    km, kc = await start(workdir, request={"cpu": 0.5, "mem": "128M"})
    try:
        alloc_id = km.provisioner.launch.allocation_id
        kc.execute("b = bytearray(400 * 1024 * 1024)")
        for _ in range(100):
            if await km.provisioner.poll() is not None:
                break
            await asyncio.sleep(0.2)
        assert not await km.is_alive()
        reason, message = km.provisioner._ended
        assert reason == "oom"
        assert message == "the kernel was stopped because it used more than its 128 MiB memory limit"
        alloc = await asyncio.to_thread(berth_service.ledger.get_allocation, alloc_id)
        assert alloc.state == "released" and alloc.release_reason == "oom"
        # The next kernel (same grant) tells the user why the previous one went away.
        await km.restart_kernel(now=True)
        await kc.wait_for_ready(timeout=120)
        content, out, err = await run(kc, "print('after')")
        assert "used more than its 128 MiB memory limit" in err
        assert out.strip() == "after"
    finally:
        await stop(km, kc)


async def test_vanished_container_is_dead_and_released(berth_service, berth_kernelspecs, workdir):
    km, kc = await start(workdir, request={"cpu": 0.25, "mem": "128M"})
    try:
        launch = km.provisioner.launch
        await berth_service.runtime.remove(launch.container_id, force=True)
        assert await km.provisioner.poll() is not None
        assert km.provisioner._ended[0] == "lost"
        alloc = await asyncio.to_thread(berth_service.ledger.get_allocation, launch.allocation_id)
        assert alloc.state == "released"
    finally:
        await stop(km, kc)
    assert await berth_service.list_kernels() == []


@pytest.mark.parametrize(
    "env, error, words",
    [
        ({"BERTH_PRESET": "huge"}, NotFoundError, "unknown preset 'huge'"),
        ({"BERTH_IMAGE": "berth/nope:1"}, NotFoundError, "not offered"),
        ({"BERTH_REQUEST": json.dumps({"cpu": 8})}, PolicyError, "at most 2 CPU"),
        ({"BERTH_REQUEST": json.dumps({"mem": "lots"})}, RequestError, "mem"),
        ({"BERTH_REQUEST": "{not json"}, RequestError, "BERTH_REQUEST"),
    ],
)
async def test_bad_start_fails_fast_and_leaves_nothing(berth_service, berth_kernelspecs, workdir, env, error, words):
    km = AsyncKernelManager(kernel_name=KERNEL, kernel_spec_manager=KernelSpecManager())
    t0 = time.monotonic()
    with pytest.raises(error) as e:
        await km.start_kernel(cwd=str(workdir), env=env)
    assert words in e.value.message
    assert time.monotonic() - t0 < 5
    assert await berth_service.list_kernels() == []
    assert await berth_service.runtime.list({"site": berth_service.site_id}) == []


async def test_pip_install_works_in_the_kernels_own_container(berth_service, berth_kernelspecs, workdir):
    """The image's venv belongs to the kernel user: a wheel installs (no index: a wheel made in the
    kernel), imports, and is gone in the next container after a restart."""
    make_and_install = """
import os, subprocess, sys, zipfile
whl = '/tmp/berthprobe-1.0-py3-none-any.whl'
with zipfile.ZipFile(whl, 'w') as z:
    z.writestr('berthprobe.py', 'ANSWER = 42\\n')
    z.writestr('berthprobe-1.0.dist-info/METADATA', 'Metadata-Version: 2.1\\nName: berthprobe\\nVersion: 1.0\\n')
    z.writestr('berthprobe-1.0.dist-info/WHEEL', 'Wheel-Version: 1.0\\nGenerator: test\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n')
    z.writestr('berthprobe-1.0.dist-info/RECORD', '')
done = subprocess.run([sys.executable, '-m', 'pip', 'install', '--no-index', '--no-deps', '-q', whl], capture_output=True, text=True)
print(done.returncode, os.getuid(), done.stderr.strip()[-300:])
import berthprobe
print(berthprobe.ANSWER)
"""
    km, kc = await start(workdir, request={"cpu": 0.5, "mem": "256M"})
    try:
        content, out, err = await run(kc, make_and_install, timeout=60)
        assert content["status"] == "ok", err
        lines = out.split("\n")
        assert lines[0].startswith("0 1000"), out  # pip succeeded, as uid 1000
        assert lines[1] == "42"
        await km.restart_kernel()
        await kc.wait_for_ready(timeout=120)
        content, out, err = await run(kc, "import importlib.util; print(importlib.util.find_spec('berthprobe'))")
        assert content["status"] == "ok" and out.strip() == "None"  # a new container: the image as built
    finally:
        await stop(km, kc)

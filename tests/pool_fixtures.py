"""Fixtures for warm-pool tests: an embedded service with a pool on a fresh ledger, its
kernelspecs, and helpers that start kernels through the provisioner and read what the
kernel sees. Import the fixtures into a test module (``from tests.pool_fixtures import …``).
"""

from __future__ import annotations

import asyncio
import json

import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager

from jupyter_berth.kernels import backend
from jupyter_berth.kernelspecs import plan, sync
from jupyter_berth.runtime.docker import DockerRuntime
from jupyter_berth.service import BerthService
from tests.berth_fixtures import service_config

KERNEL = "berth-python-3.11"
POOL_SIZE = 2


def pool_config(data_dir: str, mounts: list[str] | None, size: int = POOL_SIZE):
    c = service_config(data_dir)
    c.BerthService.pool_size = size
    c.WarmPool.mounts = mounts
    c.WarmPool.idle_cpu = 0.5  # imports finish sooner: the tests wait for refills
    c.WarmPool.refill_delay = 0.1
    return c


async def cleanup(service: BerthService) -> None:
    for alloc in await service.list_kernels():
        try:
            await service.stop_kernel(alloc.owner, alloc.subject, now=True)
        except Exception as e:  # noqa: BLE001 - best-effort cleanup, report and go on
            print(f"cleanup of {alloc.subject} failed: {e}")
    await service.stop()
    runtime = DockerRuntime()
    try:
        for c in await runtime.list({"site": service.site_id}):
            await runtime.remove(c.id)
        await runtime.remove_network(f"berth-pool-{service.site_id}")
    finally:
        runtime.close()


@pytest.fixture
async def pool_service(tmp_path, workdir):
    """An embedded service whose pool serves kernels started in ``workdir`` (mounted at its own path)."""
    data = tmp_path / "berth-data"
    data.mkdir()
    service = BerthService(config=pool_config(str(data), [f"{workdir}:{workdir}"]), runtime=DockerRuntime())
    await service.start()
    backend._service = service
    try:
        yield service
    finally:
        backend._service = None
        await cleanup(service)


async def write_kernelspecs(service: BerthService, tmp_path, monkeypatch) -> dict:
    """The service's kernelspecs in a temporary Jupyter data dir that KernelSpecManager reads."""
    kdir = tmp_path / "jupyter-data" / "kernels"
    images = await service.images.catalog_view()
    result = sync(plan(images, service.preset_list, service.default_image), str(kdir))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter-data"))
    return result


@pytest.fixture
async def pool_kernelspecs(tmp_path, pool_service, monkeypatch):
    return await write_kernelspecs(pool_service, tmp_path, monkeypatch)


async def start(cwd, request=None, **env):
    km = AsyncKernelManager(kernel_name=KERNEL, kernel_spec_manager=KernelSpecManager())
    if request is not None:
        env["BERTH_REQUEST"] = json.dumps(request)
    await km.start_kernel(cwd=str(cwd), env=env)
    kc = km.client()
    kc.start_channels()
    await kc.wait_for_ready(timeout=120)
    return km, kc


async def stop(km, kc):
    kc.stop_channels()
    await km.shutdown_kernel(now=True)


async def run_json(kc, code: str, timeout: float = 30):
    """Run code that prints one JSON document; return it parsed."""
    out, err = [], []

    def hook(msg):
        if msg["msg_type"] == "stream":
            (out if msg["content"]["name"] == "stdout" else err).append(msg["content"]["text"])
        elif msg["msg_type"] == "error":
            err.append("\n".join(msg["content"]["traceback"]))

    reply = await kc.execute_interactive(code, output_hook=hook, timeout=timeout)
    assert reply["content"]["status"] == "ok", "".join(err)
    return json.loads("".join(out))


KERNEL_VIEW = r"""
import json, os, socket, sys
def read(p):
    try:
        return open(p).read().strip()
    except OSError:
        return None
def port_open(port):
    s = socket.socket()
    s.settimeout(1)
    try:
        return s.connect_ex(("127.0.0.1", port)) == 0
    finally:
        s.close()
print(json.dumps({
    "mem": read("/sys/fs/cgroup/memory/memory.limit_in_bytes"),
    "memsw": read("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes"),
    "cpu": read("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"),
    "pids": read("/sys/fs/cgroup/pids/pids.max"),
    "uid": os.getuid(), "cwd": os.getcwd(),
    "env": {k: v for k, v in os.environ.items() if k.startswith(("BERTH_", "KERNEL_"))},
    "activation_port_open": port_open(50000),
    "hist_file": str(get_ipython().history_manager.hist_file),
    "argv": sys.argv[1:2],
}))
"""


async def networks_of(service: BerthService, container_id: str) -> set[str]:
    attrs = await asyncio.to_thread(service.runtime.client.api.inspect_container, container_id)
    return set((attrs.get("NetworkSettings") or {}).get("Networks") or {})


async def eventually(predicate, timeout: float = 10.0, interval: float = 0.2):
    """Await an async predicate until it is true (returns its last value)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await predicate()
        if value or asyncio.get_running_loop().time() > deadline:
            return value
        await asyncio.sleep(interval)

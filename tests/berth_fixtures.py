"""Fixtures for tests that run real Berth kernels: an embedded service on a fresh ledger,
the real Docker engine and the bootstrapped image, and a directory of Berth kernelspecs.

Registered as a plugin in tests/conftest.py.
"""

from __future__ import annotations

import os

import pytest
from traitlets.config import Config

from jupyter_berth.kernels import backend
from jupyter_berth.kernelspecs import plan, sync
from jupyter_berth.runtime.docker import DockerRuntime
from jupyter_berth.service import BerthService

IMAGE = "berth/python:3.11"


def service_config(data_dir: str, **policy) -> Config:
    c = Config()
    c.BerthService.data_dir = data_dir
    c.UsageTracker.sample_interval = 0
    c.BerthService.stop_timeout = 2
    # The warm pool is on by default; tests of other things run without it (fewer containers to count and
    # to wait for on a loaded machine). tests/test_warm_pool.py covers the default.
    c.BerthService.pool_size = 0
    c.BerthService.presets = {
        "small": {"cpu": 0.5, "mem": "256M", "display_name": "Small"},
        "tiny": {"cpu": 0.25, "mem": "128M", "display_name": "Tiny"},
    }
    c.BerthService.default_policy = {"max_cpu": 2, "max_mem": "2G", "default": {"cpu": 1, "mem": "512M"}, **policy}
    return c


def remove_site_networks(site: str) -> None:
    """Remove the networks this test's site made (its egress rules go with them: tests/conftest.py)."""
    import docker

    client = docker.from_env()
    for network in client.networks.list(filters={"label": f"io.jupyter.berth.site={site}"}):
        try:
            network.remove()
        except docker.errors.APIError as e:  # still in use: reported, left
            print(f"network {network.name} of site {site} left: {e}")
    client.close()


@pytest.fixture
def workdir(tmp_path):
    """A notebook directory the kernel's uid (1000) can write to."""
    d = tmp_path / "notebooks"
    d.mkdir()
    os.chmod(tmp_path, 0o755)
    if os.getuid() == 0:
        os.chown(d, 1000, 100)
    return d


@pytest.fixture
async def berth_service(tmp_path):
    """The embedded service the provisioner will use, on a ledger of its own."""
    data = tmp_path / "berth-data"
    data.mkdir()
    service = BerthService(config=service_config(str(data)), runtime=DockerRuntime())
    await service.start()
    backend._service = service
    try:
        yield service
    finally:
        backend._service = None
        await close_test_service(service)


async def close_test_service(service: BerthService) -> None:
    """Stop a test's embedded service and remove what its site made: kernels, containers, networks."""
    for alloc in await service.list_kernels():
        try:
            await service.stop_kernel(alloc.owner, alloc.subject, now=True)
        except Exception as e:  # noqa: BLE001 - best-effort cleanup, report and go on
            print(f"cleanup of {alloc.subject} failed: {e}")
    for c in await service.runtime.list({"site": service.site_id}):
        await service.runtime.remove(c.id)
    remove_site_networks(service.site_id)
    await service.stop()


@pytest.fixture
async def berth_kernelspecs(tmp_path, berth_service, monkeypatch):
    """Berth kernelspecs written to a temporary Jupyter data dir, found by KernelSpecManager."""
    kdir = tmp_path / "jupyter-data" / "kernels"
    images = await berth_service.images.catalog_view()
    result = sync(plan(images, berth_service.preset_list, berth_service.default_image), str(kdir))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter-data"))
    return result

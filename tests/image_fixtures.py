"""What the image tests share: two versions of one environment on the real engine, a service
offering only ``berthtest/*``, and running code in a kernel."""

from __future__ import annotations

import io
import os
import uuid
from pathlib import Path

import docker
import pytest
from traitlets.config import Config

from jupyter_berth.runtime.docker import DockerRuntime
from jupyter_berth.service import BerthService

BASE = "berth/python:3.11"
#: Each test run names its images in a namespace of its own, so that two runs on one engine (or a
#: run beside a live hub) never retag or remove each other's images.
NAMESPACE = f"berthtest-{uuid.uuid4().hex[:8]}"
REPO = f"{NAMESPACE}/python"
OFFERED = f"{NAMESPACE}/*"
CUR, EXTRA, OLD, LATEST = f"{REPO}:3.11", f"{REPO}:3.11-extra", f"{REPO}:3.10", f"{REPO}:latest"
ROOT = Path(__file__).resolve().parent.parent
SMALL = {"cpu": 0.25, "mem": "256M"}


def _build(client, dockerfile: str, tag: str) -> str:
    image, _ = client.images.build(
        fileobj=io.BytesIO(dockerfile.encode()), tag=tag, pull=False, rm=True, network_mode="none"
    )
    return image.id


def _label(version: str, name: str) -> str:
    return f'LABEL io.jupyter.berth.version="{version}" io.jupyter.berth.display_name="{name}"\n'


@pytest.fixture(scope="module")
def versions():
    """Two versions of one environment: ``berthtest/python:3.11`` (the bootstrapped image, another tag)
    and ``berthtest/python:3.11-extra`` (a label and a small file on top). Removed afterwards."""
    client = docker.from_env()
    try:
        base = client.images.get(BASE)
    except docker.errors.ImageNotFound:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"{BASE} is missing: run `berth images bootstrap`")
    base.tag(REPO, "3.11")
    extra = _build(
        client,
        f"FROM {base.id}\nUSER root\nRUN echo 'the extra version' > /etc/berth-extra\nUSER 1000\n"
        + _label("3.11-extra", "Python 3.11 (extra)"),
        EXTRA,
    )
    yield {"base": base.id, "extra": extra}
    for image in client.images.list(name=REPO) + client.images.list(name=f"127.0.0.1:5000/{REPO}"):
        for tag in image.tags:
            if tag.startswith((f"{NAMESPACE}/", f"127.0.0.1:5000/{NAMESPACE}/")):
                try:
                    client.images.remove(tag)
                except docker.errors.NotFound:
                    pass
                except docker.errors.APIError as e:  # another test's container still on it: report, go on
                    print(f"could not remove {tag}: {e}")


def service_config(data_dir, **traits) -> Config:
    c = Config()
    c.BerthService.data_dir = str(data_dir)
    c.UsageTracker.sample_interval = 0
    c.BerthService.stop_timeout = 1
    c.BerthService.offered_images = [OFFERED]
    c.BerthService.default_image = CUR
    c.ImageCatalog.admin_users = {"admin"}
    c.BerthService.default_policy = {"max_cpu": 2, "max_mem": "2G", "default": SMALL}
    for k, v in traits.items():
        setattr(c.BerthService, k, v)
    return c


@pytest.fixture
async def svc(tmp_path, versions):
    service = BerthService(config=service_config(tmp_path / "berth-data"), runtime=DockerRuntime())
    await service.start()
    try:
        yield service
    finally:
        for alloc in await service.list_kernels():
            await service.stop_kernel(alloc.owner, alloc.subject, now=True)
        for c in await service.runtime.list({"site": service.site_id}):
            await service.runtime.remove(c.id)
        await service.stop()


async def run_code(launch, code: str) -> str:
    """Execute ``code`` in a running Berth kernel; return what it printed."""
    from jupyter_client.asynchronous import AsyncKernelClient

    kc = AsyncKernelClient()
    kc.load_connection_info(launch.connection)
    kc.start_channels(hb=False)  # no kernel manager here: readiness is the kernel_info reply
    out: list[str] = []
    try:
        await kc.wait_for_ready(timeout=120)
        reply = await kc.execute_interactive(
            code,
            timeout=60,
            output_hook=lambda m: out.append(m["content"].get("text", "")) if m["msg_type"] == "stream" else None,
        )
        assert reply["content"]["status"] == "ok", reply["content"]
    finally:
        kc.stop_channels()
    return "".join(out)


def kid() -> str:
    return f"img-{uuid.uuid4().hex[:8]}"

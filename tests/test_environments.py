"""Any image with a Jupyter kernel serves Berth kernels: inspected at offer, started through the
mounted launcher, with Berth's isolation and limits (real engine, real kernels)."""

from __future__ import annotations

import asyncio
import json
import time

import docker
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager

from jupyter_berth.errors import BerthError, NotFoundError, RequestError
from jupyter_berth.kernelspecs import plan, sync
from jupyter_berth.runtime.labels import key
from tests.env_fixtures import env_service, foreign_images  # noqa: F401 - fixtures
from tests.test_provisioner import limits, run

pytestmark = [pytest.mark.docker, pytest.mark.timeout(900)]  # a fresh machine builds the images first


async def offer(service, ref):
    return await service.images.offer_image("admin", (), ref)


async def kernelspecs(service, tmp_path, monkeypatch) -> dict:
    kdir = tmp_path / "jupyter-data" / "kernels"
    result = sync(plan(await service.images.catalog_view(), service.preset_list, service.default_image), str(kdir))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter-data"))
    return {name: json.loads((kdir / name / "kernel.json").read_text()) for name in result["written"]}


async def start(workdir, name, request=None):
    km = AsyncKernelManager(kernel_name=name, kernel_spec_manager=KernelSpecManager())
    env = {"BERTH_REQUEST": json.dumps(request)} if request else {}
    await km.start_kernel(cwd=str(workdir), env=env)
    kc = km.client()
    kc.start_channels()
    await kc.wait_for_ready(timeout=120)
    return km, kc


async def stop(km, kc):
    kc.stop_channels()
    await km.shutdown_kernel(now=True)


def leftovers(service) -> list:
    """Every container of this service's site, inspection containers included."""
    return docker.from_env().containers.list(all=True, filters={"label": f"{key('site')}={service.site_id}"})


async def test_a_foreign_image_is_inspected_when_offered(env_service, foreign_images, tmp_path, monkeypatch):
    ref = foreign_images["good"]
    image = docker.from_env().images.get(ref)
    assert not any(k.startswith("io.jupyter.berth.") for k in (image.labels or {}))  # nothing of Berth's
    assert image.attrs["Config"].get("User", "") in ("", "root", "0")  # default user: root
    assert ref not in [i.ref for i in await env_service.images.catalog_view()]
    entry = await offer(env_service, ref)
    assert entry["state"] == "offered" and entry["language"] == "python"
    assert entry["language_version"].startswith("3.")
    (kernel,) = json.loads(entry["labels"]["kernels"])
    assert kernel["name"] == "python3" and kernel["language"] == "python"
    assert leftovers(env_service) == []  # the inspection container is gone
    specs = await kernelspecs(env_service, tmp_path, monkeypatch)
    name = f"berth-berthenv-foreign-ipykernel-{ref.rsplit(':', 1)[1]}-python3"
    assert specs[name]["language"] == "python"
    assert specs[name]["env"] == {"KERNEL_BERTH_KERNELSPEC": "python3"}
    assert specs[name]["metadata"]["kernel_provisioner"]["config"] == {"image": ref}
    assert "berth-preset-small-python3" not in specs  # the preset's image (the default) is not offered here


async def test_a_foreign_image_runs_kernels_with_limits_uid_interrupt_restart_and_oom(
    env_service, foreign_images, workdir, tmp_path, monkeypatch
):
    ref = foreign_images["good"]
    await offer(env_service, ref)
    name = f"berth-berthenv-foreign-ipykernel-{ref.rsplit(':', 1)[1]}-python3"
    await kernelspecs(env_service, tmp_path, monkeypatch)
    km, kc = await start(workdir, name, request={"cpu": 0.5, "mem": "256M", "pids": 128})
    try:
        got = await limits(kc)
        assert got["mem"] == str(256 * 1024**2)
        assert got["cpu"].split()[0] == "50000"
        assert got["pids"] == "128"
        assert got["uid"] == 1000  # the image's default user is root
        assert got["capeff"] == "0000000000000000" and got["nonewprivs"] == "1"
        assert got["cwd"] == str(workdir)
        content, out, err = await run(kc, "import sys, os; print(sys.prefix, os.environ.get('BERTH_CONNECTION'))")
        assert out.split() == ["/opt/env", "None"], err  # the image's own Python; the key is not in the environment
        # interrupt
        msg_id = kc.execute("import time; time.sleep(60)")
        await asyncio.sleep(1.5)
        t0 = time.monotonic()
        await km.interrupt_kernel()
        reply = await kc.get_shell_msg(timeout=20)
        while reply["parent_header"].get("msg_id") != msg_id:
            reply = await kc.get_shell_msg(timeout=20)
        assert reply["content"]["ename"] == "KeyboardInterrupt" and time.monotonic() - t0 < 10
        # restart: same grant, a new kernel (variables gone)
        await run(kc, "x = 41")
        await km.restart_kernel(now=True)
        await kc.wait_for_ready(timeout=120)
        content, out, err = await run(kc, "print('x' in dir())")
        assert out.strip() == "False"
        assert (await limits(kc))["mem"] == str(256 * 1024**2)
        # out of memory: reported as such, and told in the next kernel
        kc.execute("b = bytearray(400 * 1024 * 1024)")
        for _ in range(150):
            if await km.provisioner.poll() is not None:
                break
            await asyncio.sleep(0.2)
        reason, message = km.provisioner._ended
        assert reason == "oom" and "256 MiB memory limit" in message
        await km.restart_kernel(now=True)
        await kc.wait_for_ready(timeout=120)
        content, out, err = await run(kc, "print('after')")
        assert "used more than its 256 MiB memory limit" in err and out.strip() == "after"
    finally:
        await stop(km, kc)
    assert await env_service.list_kernels() == []


@pytest.mark.parametrize(
    "which, error, words",
    [
        ("missing", NotFoundError, "no image berthenv/does-not-exist:1 on this host"),
        ("nokernel", RequestError, "no Jupyter kernel found in berthenv/nokernel"),
        ("crash", RequestError, "this kernel cannot start (missing model file)"),
        ("noshell", RequestError, "has no POSIX shell (/bin/sh)"),
        ("rootonly", RequestError, "default user is root; Berth runs kernels as uid 1000"),
    ],
)
async def test_an_image_that_cannot_serve_is_refused_with_the_reason(env_service, foreign_images, which, error, words):
    ref = foreign_images[which]
    t0 = time.monotonic()
    with pytest.raises(error) as e:
        await offer(env_service, ref)
    assert words in e.value.message and ref.split(":")[0] in e.value.message
    assert time.monotonic() - t0 < 30  # a kernel that dies fails its smoke start at once (no 60 s wait)
    assert ref not in (await env_service.images.catalog_view()).entries  # nothing recorded
    assert leftovers(env_service) == []
    if which == "crash":
        assert "exited with code" in e.value.message


async def test_berth_kernels_still_start_from_berths_own_image(env_service, workdir, tmp_path, monkeypatch):
    """An image built FROM Berth's base keeps running berth-kernel (and its warm pool), not the launcher."""
    await offer(env_service, "berth/python:3.11")
    specs = await kernelspecs(env_service, tmp_path, monkeypatch)
    assert "berth-python-3.11" in specs
    km, kc = await start(workdir, "berth-python-3.11")
    try:
        c = docker.from_env().containers.get(km.provisioner.launch.container_id)
        assert c.attrs["Config"]["Cmd"] == ["berth-kernel"]
    finally:
        await stop(km, kc)


async def test_offering_is_an_admin_decision(env_service, foreign_images):
    with pytest.raises(BerthError) as e:
        await env_service.images.offer_image("mallory", (), foreign_images["good"])
    assert e.value.status == 403
    assert leftovers(env_service) == []  # refused before anything was inspected

"""Images for the environment tests, built by the project's own code on a fresh machine and cached.

* a foreign ipykernel image, as a user would build it (``tests/images/foreign-ipykernel``: Debian
  and ``pip install ipykernel``, no Berth labels, default user root), tagged with its recipe hash;
* the bad inputs, derived from it offline (no network): a kernel that crashes on start, a kernel
  only root can run, an image with no shell, an image with no kernel;
* Berth's own environment recipes (``berth images bootstrap --all`` builds them; a fixture builds
  whichever is missing, so a test run on a fresh clone has them too).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import docker
import pytest
from traitlets.config import Config

from jupyter_berth.imagebuild.baseimage import BaseSpec, build_base, host_apt_sources
from jupyter_berth.imagebuild.environments import bootstrap_environment, build_on_base, folder_hash
from jupyter_berth.runtime.docker import DockerRuntime
from jupyter_berth.service import BerthService

from .berth_fixtures import close_test_service

HERE = Path(__file__).resolve().parent
REPO = "berthenv"  #: every image these tests make is under this name (and offered_images = berthenv/*)


def _quiet(_line: str) -> None:
    pass


def _client():
    try:
        client = docker.from_env()
        client.ping()
    except Exception as e:  # noqa: BLE001
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no Docker engine: {e}")
    return client


def _build_offline(client, dockerfile: str, tag: str) -> str:
    image, _ = client.images.build(
        fileobj=io.BytesIO(dockerfile.encode()), tag=tag, pull=False, rm=True, network_mode="none"
    )
    return image.id


def _present(client, ref: str) -> bool:
    try:
        client.images.get(ref)
        return True
    except docker.errors.ImageNotFound:
        return False


@pytest.fixture(scope="session")
def foreign_images():
    """References of the foreign image and the bad inputs (kept between runs: their tags hold the hash)."""
    client = _client()
    folder = str(HERE / "images" / "foreign-ipykernel")
    digest = folder_hash(folder, certs=None)
    good = f"{REPO}/foreign-ipykernel:{digest}"
    build_on_base(folder, good, progress=_quiet)
    base_ref, _ = build_base(client, BaseSpec(sources=host_apt_sources()), _quiet)
    refs = {
        "good": good,
        "crash": f"{REPO}/foreign-crash:{digest}",
        "rootonly": f"{REPO}/foreign-rootonly:{digest}",
        "noshell": f"{REPO}/noshell:1",
        "nokernel": f"{REPO}/nokernel:{base_ref.rsplit(':', 1)[1]}",
        "missing": f"{REPO}/does-not-exist:1",
    }
    if not _present(client, refs["crash"]):
        _build_offline(
            client,
            f"FROM {good}\nRUN echo 'raise SystemExit(\"berth test: this kernel cannot start (missing model file)\")' "
            "> $(python3 -c 'import ipykernel_launcher as m; print(m.__file__)')\n",
            refs["crash"],
        )
    if not _present(client, refs["rootonly"]):
        _build_offline(client, f"FROM {good}\nRUN chmod 0700 /opt/env\n", refs["rootonly"])
    if not _present(client, refs["noshell"]):
        client.images.build(
            fileobj=io.BytesIO(
                b"FROM " + good.encode() + b" AS src\nFROM scratch\n"
                b"COPY --from=src /opt/env/share/jupyter/kernels/python3/kernel.json /usr/share/jupyter/kernels/python3/kernel.json\n"
            ),
            tag=refs["noshell"],
            pull=False,
            rm=True,
            network_mode="none",
        )
    client.images.get(base_ref).tag(refs["nokernel"])
    return refs


#: the small stack of the side-by-side test, in two versions (numpy 1 and 2)
STACK_VERSIONS = {"1": "1.26.4", "2": "2.2.6"}


def stack_images(foreign: str) -> dict[str, str]:
    """Two versions of a small stack on the foreign image, tagged with their recipe hash (built when missing)."""
    folder = str(HERE / "images" / "numpy-stack")
    out = {}
    for version, numpy in STACK_VERSIONS.items():
        args = {"FOREIGN": foreign, "NUMPY": numpy}
        ref = f"{REPO}/numpy-stack:{version}-{folder_hash(folder, args)}"
        build_on_base(folder, ref, buildargs=args, progress=_quiet)
        out[numpy] = ref
    return out


def environment_image(name: str) -> str:
    """Berth's environment recipe ``name``, built if missing or changed (cached by its recipe hash)."""
    _client()
    return bootstrap_environment(name, progress=_quiet).reference


def env_service_config(data_dir, **traits) -> Config:
    c = Config()
    c.BerthService.data_dir = str(data_dir)
    c.UsageTracker.sample_interval = 0
    c.BerthService.stop_timeout = 2
    c.BerthService.pool_size = 0  # these tests count the site's containers; tests/test_warm_pool.py covers the pool
    c.BerthService.offered_images = [f"{REPO}/*", "berth/*"]
    c.ImageCatalog.offer_new_images = False  # only what a test offers
    c.ImageCatalog.admin_users = {"admin"}
    c.BerthService.presets = {"small": {"cpu": 0.5, "mem": "256M", "display_name": "Small"}}
    c.BerthService.default_policy = {"max_cpu": 2, "max_mem": "2G", "default": {"cpu": 0.5, "mem": "512M"}}
    for k, v in traits.items():
        setattr(c.BerthService, k, v)
    return c


@pytest.fixture
async def env_service(tmp_path):
    """An embedded service (the provisioner's) that offers nothing until a test offers it."""
    from jupyter_berth.kernels import backend

    data = tmp_path / "berth-data"
    data.mkdir()
    service = BerthService(config=env_service_config(data), runtime=DockerRuntime())
    await service.start()
    backend._service = service
    try:
        yield service
    finally:
        backend._service = None
        await close_test_service(service)  # its user networks too, which this fixture used to leave behind

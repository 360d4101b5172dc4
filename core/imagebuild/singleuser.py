"""Build the single-user server image, ``berth/singleuser:3.11``, with no registry.

The image a user's server runs in a Berth hub: JupyterLab, ``jupyterhub-singleuser``
(pinned to the hub's own version) and jupyter-berth itself, on top of the kernel image
(``berth/python:3.11``, built first when missing). jupyter-berth comes from a wheel that
is built here from the source tree this package was installed from
(``pip install -e``), so the server runs exactly the code of the hub. The Berth
kernelspecs of the kernel images present on the host are baked in: the server has no
container engine and asks the hub's Berth service for kernels.

The recipe hash covers the recipe files, the kernel image's id, the source tree, the
hub version, the kernelspecs and the CA certificates / pip.conf, so a change to any of
them rebuilds and an unchanged re-run returns at once (``cached=True``).
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

from ..engine import engine_client
from ..errors import EngineError
from ..images.catalog import image_info_from_docker
from . import build_files
from .baseimage import LABEL_PREFIX
from .bootstrap import (
    DEFAULT_EXTRA_CA_DIR,
    DEFAULT_KERNEL_IMAGE,
    FORCE_HINT,
    HOST_PIP_CONF,
    ImageResult,
    _cached_image,
    _certificate_files,
    _image_id,
    _print,
    _remove_replaced,
    _run_build,
    _stage_context,
    bootstrap_image,
    recipe_dir,
    recipe_hash,
    up_to_date,
)

DEFAULT_SERVER_REPOSITORY = "berth/singleuser"
DEFAULT_SERVER_TAG = "3.11"
#: The image of a user's server when the spawn form names none.
DEFAULT_SERVER_IMAGE = f"{DEFAULT_SERVER_REPOSITORY}:{DEFAULT_SERVER_TAG}"
#: Folders and files of the source tree that go into the wheel (and its hash).
SOURCE_PARTS = (
    "core",
    "kernels",
    "server_ext",
    "hub_ext",
    "jupyter-config",
    "setup.cfg",
    "setup.py",
    "pyproject.toml",
    "MANIFEST.in",
    "README.md",
    "LICENSE",
)
_SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "node_modules", ".pytest_cache")


def source_root(path: str | None = None) -> str:
    """The jupyter-berth source tree (holding ``setup.cfg``) this package runs from, or ``path``."""
    if path is None:
        import jupyter_berth

        path = os.path.dirname(os.path.dirname(os.path.abspath(jupyter_berth.__file__)))
    try:
        with open(os.path.join(path, "setup.cfg")) as f:
            if "name = jupyter-berth" in f.read():
                return path
    except OSError:
        pass
    raise EngineError(
        f"the single-user image installs jupyter-berth from its source tree, and {path} is not one (no setup.cfg "
        "naming jupyter-berth). Install jupyter-berth from a checkout (`pip install -e .`) or pass --source=DIR."
    )


def _source_files(root: str) -> list[str]:
    """Files of the source tree that make the wheel, relative to ``root``, sorted."""
    found = []
    for part in SOURCE_PARTS:
        path = os.path.join(root, part)
        if os.path.isfile(path):
            found.append(part)
        elif os.path.isdir(path):
            for dirpath, dirs, files in os.walk(path):
                ignored = _SKIP(dirpath, dirs + files)
                dirs[:] = sorted(d for d in dirs if d not in ignored)
                found += [os.path.relpath(os.path.join(dirpath, n), root) for n in sorted(files) if n not in ignored]
    return found


def _hub_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("jupyterhub")
    except PackageNotFoundError:
        raise EngineError(
            "jupyterhub is not installed here; the single-user image installs the hub's own version "
            "of it. Install it first: pip install 'jupyter-berth[hub]'"
        ) from None


def kernel_images(client) -> list:
    """Berth kernel images on the host (``io.jupyter.berth.kind=kernel``, ``berth/*``), as catalog entries."""
    found = []
    for image in client.images.list(filters={"label": LABEL_PREFIX + "kind=kernel", "dangling": False}):
        for ref in image.tags:
            if fnmatch.fnmatchcase(ref, "berth/*"):
                found.append(image_info_from_docker(ref, image.attrs))
    return sorted(found, key=lambda i: i.ref)


def _stage_kernelspecs(images: list, default_image: str, dest: str) -> None:
    from jupyter_berth.kernelspecs import plan, sync

    os.makedirs(dest, exist_ok=True)
    sync(plan(images, [], default_image), dest)


def build_wheel(root: str, dest: str, progress: Callable[[str], None]) -> str:
    """Build the jupyter-berth wheel from a clean copy of the source tree; returns its path."""
    with tempfile.TemporaryDirectory(prefix="berth-src-") as src:
        for rel in _source_files(root):
            os.makedirs(os.path.join(src, os.path.dirname(rel)), exist_ok=True)
            shutil.copy2(os.path.join(root, rel), os.path.join(src, rel))
        os.makedirs(dest, exist_ok=True)
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check", "-q", "-w", dest, src],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise EngineError(f"building the jupyter-berth wheel failed:\n{(done.stderr or done.stdout)[-2000:]}")
    wheels = [n for n in os.listdir(dest) if n.endswith(".whl")]
    if len(wheels) != 1:
        raise EngineError(f"expected one wheel in {dest}, found {wheels}")
    progress(f"  built {wheels[0]} in {time.monotonic() - started:.1f} s")
    return os.path.join(dest, wheels[0])


def _versions(client, image_id: str) -> dict:
    script = (
        "import json, platform, importlib.metadata as m;"
        "print(json.dumps({'python': platform.python_version(), 'jupyterlab': m.version('jupyterlab'),"
        " 'jupyterhub': m.version('jupyterhub'), 'jupyter_berth': m.version('jupyter-berth')}))"
    )
    out = client.containers.run(image_id, ["python", "-c", script], remove=True, network_mode="none", entrypoint=[])
    return json.loads(out.decode().strip().splitlines()[-1])


def server_labels(digest: str, tag: str, versions: dict, kernel_image: str) -> dict[str, str]:
    """Labels of the server image: ``kind=server`` (never offered as a kernel image)."""
    python_mm = ".".join(versions["python"].split(".")[:2])
    return {
        LABEL_PREFIX + "kind": "server",
        LABEL_PREFIX + "display_name": f"JupyterLab {versions['jupyterlab']} · Python {python_mm}",
        LABEL_PREFIX + "language": "python",
        LABEL_PREFIX + "version": tag,
        LABEL_PREFIX + "python_version": versions["python"],
        LABEL_PREFIX + "frameworks": (
            f"jupyterlab {versions['jupyterlab']}, jupyterhub {versions['jupyterhub']}, "
            f"jupyter-berth {versions['jupyter_berth']}"
        ),
        LABEL_PREFIX + "kernel_image": kernel_image,
        LABEL_PREFIX + "recipe_hash": digest,
    }


def bootstrap_singleuser(
    name: str = DEFAULT_SERVER_REPOSITORY,
    tag: str = DEFAULT_SERVER_TAG,
    force: bool = False,
    progress: Callable[[str], None] = _print,
    extra_ca_dir: str | None = DEFAULT_EXTRA_CA_DIR,
    *,
    kernel_image: str = DEFAULT_KERNEL_IMAGE,
    source: str | None = None,
    pip_conf: str | None = HOST_PIP_CONF,
    if_missing: bool = False,
    image_pip_conf: str | None = None,
    image_ca_dir: str | None = None,
) -> ImageResult:
    """Build ``name:tag`` (the single-user server image) on ``kernel_image``; see the module doc.
    ``extra_ca_dir`` and ``pip_conf`` serve the build only; ``image_pip_conf`` and ``image_ca_dir``
    go into the image (see :func:`~.bootstrap.bootstrap_image`)."""
    started = time.monotonic()
    reference = f"{name}:{tag}"
    client = engine_client()
    if if_missing and not force:
        image = _cached_image(client, reference, None)
        if image is not None:
            progress(f"{reference} is present; --if-missing: nothing to do")
            return ImageResult(
                reference,
                image.id,
                image.labels.get(LABEL_PREFIX + "recipe_hash", ""),
                True,
                time.monotonic() - started,
                kernel_image,
                dict(image.labels or {}),
                image.attrs.get("Size", 0),
            )
    repo, _, ktag = kernel_image.rpartition(":")
    base = bootstrap_image(
        repo,
        ktag,
        force=False,
        progress=progress,
        extra_ca_dir=extra_ca_dir,
        pip_conf=pip_conf,
        image_pip_conf=image_pip_conf,
        image_ca_dir=image_ca_dir,
    )
    root = source_root(source)
    path = recipe_dir("singleuser")
    certs = _certificate_files(extra_ca_dir)
    pip_conf = pip_conf if pip_conf and os.path.isfile(pip_conf) else None
    hub_version = _hub_version()
    images = kernel_images(client)
    h = hashlib.sha256()
    h.update(
        recipe_hash(
            path,
            certs,
            pip_conf,
            _KernelBase(base.image_id),
            extra_ca_dir,
            image_pip_conf=image_pip_conf,
            image_ca_dir=image_ca_dir,
        ).encode()
    )
    h.update(f"jupyterhub={hub_version}\n".encode())
    h.update(("kernels=" + ",".join(f"{i.ref}@{i.id}" for i in images) + "\n").encode())
    for rel in _source_files(root):
        h.update(f"src={rel}\n".encode())
        with open(os.path.join(root, rel), "rb") as f:
            h.update(f.read())
    digest = h.hexdigest()[:16]
    if not force:
        image = _cached_image(client, reference, digest)
        if image is not None:
            return up_to_date(image, reference, digest, kernel_image, started, progress, FORCE_HINT)

    progress(f"building {reference} (recipe {digest}) on {kernel_image} with no registry")
    replaced = _image_id(client, reference)
    with tempfile.TemporaryDirectory(prefix="berth-build-") as ctx:
        _stage_context(path, ctx, image_pip_conf=image_pip_conf, image_ca_dir=image_ca_dir)
        build_wheel(root, os.path.join(ctx, "context", "wheels"), progress)
        _stage_kernelspecs(images, kernel_image, os.path.join(ctx, "context", "kernels"))
        with build_files.served(certs, extra_ca_dir, pip_conf) as build_args:
            stage_id = _run_build(
                client,
                progress,
                path=ctx,
                network_mode="host",
                nocache=force,
                pull=False,
                buildargs={"BASE_IMAGE": base.image_id, "JUPYTERHUB_VERSION": hub_version, **build_args},
            )
    versions = _versions(client, stage_id)
    labels = server_labels(digest, tag, versions, kernel_image)
    image_id = _run_build(
        client,
        lambda _l: None,
        fileobj=io.BytesIO(f"FROM {stage_id}\n".encode()),
        tag=reference,
        labels=labels,
        pull=False,
    )
    image = client.images.get(image_id)
    if replaced and replaced != image_id:
        _remove_replaced(client, [replaced], progress)
    seconds = time.monotonic() - started
    size = image.attrs.get("Size", 0)
    progress(
        f"built {reference} ({image_id[:19]}, {size / 2**20:.0f} MiB, {labels[LABEL_PREFIX + 'frameworks']}) "
        f"in {seconds:.1f} s"
    )
    return ImageResult(reference, image_id, digest, False, seconds, kernel_image, dict(image.labels or {}), size)


class _KernelBase:
    """Stands in for a :class:`BaseSpec` in :func:`recipe_hash`: the kernel image is the base."""

    def __init__(self, image_id: str):
        self.reference = image_id


__all__ = [
    "DEFAULT_SERVER_IMAGE",
    "DEFAULT_SERVER_REPOSITORY",
    "DEFAULT_SERVER_TAG",
    "bootstrap_singleuser",
    "build_wheel",
    "kernel_images",
    "server_labels",
    "source_root",
]

"""Build the default kernel image, ``berth/python:3.11``, with no registry.

Two stages:

1. the base (:mod:`.baseimage`): ``mmdebstrap`` → ``docker import``, giving
   ``berth/base:bookworm-<hash>`` with python3, python3-venv, ca-certificates
   and tini from the host's Debian mirror;
2. the kernel layer: ``docker build`` (host network, so pip reaches the
   package index through the host's proxy) of ``recipes/python/Dockerfile``
   on that base: ``/opt/venv`` with ipykernel, user ``jovyan`` (uid 1000),
   ``/usr/local/bin/berth-kernel``, then a one-line build that adds the
   catalog labels (``io.jupyter.berth.*``) with the versions actually installed.

The recipe hash covers the Dockerfile, every file of the recipe, the extra CA
certificates, ``/etc/pip.conf`` and the base spec. When the image already
carries that hash, :func:`bootstrap_image` returns at once (``cached=True``).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import docker
import docker.errors

from ..engine import engine_client
from ..errors import EngineError
from . import build_files
from .baseimage import LABEL_PREFIX, BaseSpec, build_base, host_apt_sources

DEFAULT_KERNEL_REPOSITORY = "berth/python"
DEFAULT_KERNEL_TAG = "3.11"
#: The image every kernel runs when nothing else is asked for.
DEFAULT_KERNEL_IMAGE = f"{DEFAULT_KERNEL_REPOSITORY}:{DEFAULT_KERNEL_TAG}"
#: Where Debian keeps locally added CA certificates (a proxy's, a company's).
DEFAULT_EXTRA_CA_DIR = "/usr/local/share/ca-certificates"
HOST_PIP_CONF = "/etc/pip.conf"
RECIPES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "recipes")

#: Smallest allotment the image is usable with (catalog hints).
MIN_CPU = "0.25"
MIN_MEMORY = "256M"


@dataclass
class ImageResult:
    """What :func:`bootstrap_image` produced."""

    reference: str
    image_id: str
    recipe_hash: str
    cached: bool
    seconds: float
    base_reference: str
    labels: dict[str, str] = field(default_factory=dict)
    size: int = 0


def _print(line: str) -> None:
    print(line, flush=True)


def recipe_dir(recipe: str = "python") -> str:
    """The folder holding a recipe's Dockerfile and files."""
    path = os.path.join(RECIPES_DIR, recipe)
    if not os.path.isfile(os.path.join(path, "Dockerfile")):
        raise EngineError(f"image recipe {recipe!r} not found (no Dockerfile in {path})")
    return path


def _certificate_files(extra_ca_dir: str | None) -> list[str]:
    """``*.crt`` files under ``extra_ca_dir`` (recursively), sorted; [] if none."""
    if not extra_ca_dir:
        return []
    if not os.path.isdir(extra_ca_dir):
        raise EngineError(
            f"extra CA certificate folder {extra_ca_dir!r} does not exist; give a folder of "
            "PEM *.crt files, or an empty value for none"
        )
    found = []
    for root, _dirs, files in os.walk(extra_ca_dir):
        found += [os.path.join(root, n) for n in files if n.endswith(".crt")]
    return sorted(found)


def recipe_hash(
    recipe_path: str,
    certs: list[str],
    pip_conf: str | None,
    base: BaseSpec,
    extra_ca_dir: str | None,
    *,
    image_pip_conf: str | None = None,
    image_ca_dir: str | None = None,
) -> str:
    """A digest of everything that decides the image's content (the build-only files too: another
    index can install other packages)."""
    h = hashlib.sha256()
    h.update(f"base={base.reference}\n".encode())
    for root, dirs, files in sorted(os.walk(recipe_path)):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(root, name)
            h.update(f"file={os.path.relpath(path, recipe_path)}:{os.stat(path).st_mode & 0o111}\n".encode())
            with open(path, "rb") as f:
                h.update(f.read())
    for path in certs:
        h.update(f"ca={os.path.relpath(path, extra_ca_dir)}\n".encode())
        with open(path, "rb") as f:
            h.update(f.read())
    if pip_conf:
        h.update(b"pip.conf\n")
        with open(pip_conf, "rb") as f:
            h.update(f.read())
    if image_pip_conf:
        h.update(b"image pip.conf\n")
        with open(image_pip_conf, "rb") as f:
            h.update(f.read())
    for path in _certificate_files(image_ca_dir):
        h.update(f"image ca={os.path.relpath(path, image_ca_dir)}\n".encode())
        with open(path, "rb") as f:
            h.update(f.read())
    return h.hexdigest()[:16]


def _stage_context(
    recipe_path: str,
    dest: str,
    *,
    image_pip_conf: str | None = None,
    image_ca_dir: str | None = None,
) -> None:
    """Copy the recipe into a build context, with the build files' fetch script and the run-time
    settings an admin asked for (never the host's build-only files: :mod:`.build_files`)."""
    shutil.copytree(recipe_path, dest, dirs_exist_ok=True)
    build_files.write_fetch_script(dest)
    build_files.stage_runtime(dest, image_pip_conf, image_ca_dir)


def _cached_image(client: docker.DockerClient, reference: str, digest: str | None):
    """The image at ``reference`` if it carries ``digest`` (any berth image if None)."""
    try:
        image = client.images.get(reference)
    except docker.errors.ImageNotFound:
        return None
    labels = image.labels or {}
    if digest is None and LABEL_PREFIX + "kind" in labels:
        return image
    if digest is not None and labels.get(LABEL_PREFIX + "recipe_hash") == digest:
        return image
    return None


def present_result(image, reference: str, recipe: str, base_reference: str, seconds: float) -> ImageResult:
    """The result for an image already on the engine (nothing built)."""
    return ImageResult(
        reference, image.id, recipe, True, seconds, base_reference, dict(image.labels or {}), image.attrs.get("Size", 0)
    )


def up_to_date(
    image, reference: str, digest: str, base_reference: str, started: float, progress, hint: str = ""
) -> ImageResult:
    """Report that ``reference`` is up to date (recipe ``digest``) and return it as the result."""
    seconds = time.monotonic() - started
    progress(f"{reference} is up to date (recipe {digest}); nothing to do ({seconds:.2f} s){hint}")
    return present_result(image, reference, digest, base_reference, seconds)


#: The hint after "nothing to do" where ``--force`` is the way to rebuild.
FORCE_HINT = ". Use --force to rebuild."


def _image_id(client: docker.DockerClient, reference: str) -> str | None:
    try:
        return client.images.get(reference).id
    except docker.errors.ImageNotFound:
        return None


def _remove_replaced(client: docker.DockerClient, ids: list[str], progress) -> None:
    """Remove images this build replaced, unless a container still uses them."""
    for image_id in ids:
        try:
            client.images.remove(image_id)
            progress(f"  removed the replaced image {image_id[:19]}")
        except docker.errors.APIError as e:
            if e.status_code not in (404, 409):
                raise
            # 409: still used by a container (or a child image): leave it.


def _run_build(client: docker.DockerClient, progress: Callable[[str], None], **kwargs) -> str:
    """Run one ``docker build``; stream its step lines; return the image id."""
    image_id = None
    last: list[str] = []
    for chunk in client.api.build(decode=True, rm=True, forcerm=True, **kwargs):
        if "stream" in chunk:
            for line in chunk["stream"].splitlines():
                if not line.strip():
                    continue
                last.append(line)
                del last[:-30]
                if line.startswith("Step ") or line.startswith("Successfully"):
                    progress(f"  {line}")
        if "aux" in chunk and "ID" in chunk["aux"]:
            image_id = chunk["aux"]["ID"]
        if "error" in chunk:
            raise EngineError(f"docker build failed: {chunk['error'].strip()}\nlast output:\n" + "\n".join(last[-20:]))
    if image_id is None:
        raise EngineError("docker build finished without an image id; last output:\n" + "\n".join(last[-20:]))
    return image_id


def _installed_versions(client: docker.DockerClient, image_id: str) -> dict:
    """Python and framework versions read from the built image."""
    script = (
        "import json, platform, importlib.metadata as m;"
        "print(json.dumps({'python': platform.python_version(),"
        " 'ipykernel': m.version('ipykernel'), 'ipython': m.version('ipython')}))"
    )
    out = client.containers.run(image_id, ["python", "-c", script], remove=True, network_mode="none", entrypoint=[])
    return json.loads(out.decode().strip().splitlines()[-1])


def _image_labels(digest: str, tag: str, versions: dict) -> dict[str, str]:
    python_mm = ".".join(versions["python"].split(".")[:2])
    return {
        LABEL_PREFIX + "kind": "kernel",
        LABEL_PREFIX + "display_name": f"Python {python_mm}",
        LABEL_PREFIX + "language": "python",
        LABEL_PREFIX + "version": tag,
        LABEL_PREFIX + "python_version": versions["python"],
        LABEL_PREFIX + "frameworks": f"ipykernel {versions['ipykernel']}, ipython {versions['ipython']}",
        LABEL_PREFIX + "min_cpu": MIN_CPU,
        LABEL_PREFIX + "min_memory": MIN_MEMORY,
        LABEL_PREFIX + "gpu": "false",
        LABEL_PREFIX + "recipe_hash": digest,
    }


def bootstrap_image(
    name: str = DEFAULT_KERNEL_REPOSITORY,
    tag: str = DEFAULT_KERNEL_TAG,
    force: bool = False,
    progress: Callable[[str], None] = _print,
    extra_ca_dir: str | None = DEFAULT_EXTRA_CA_DIR,
    *,
    recipe: str = "python",
    base: BaseSpec | None = None,
    pip_conf: str | None = HOST_PIP_CONF,
    if_missing: bool = False,
    image_pip_conf: str | None = None,
    image_ca_dir: str | None = None,
) -> ImageResult:
    """Build ``name:tag`` from the ``recipe`` without any registry.

    Returns at once with ``cached=True`` when the image already carries the
    current recipe hash, unless ``force``. ``extra_ca_dir`` (a folder of ``*.crt``
    files, ``None``/``""`` for none) and ``pip_conf`` (skipped if the file does not
    exist) serve the build only and are in no layer of the image (:mod:`.build_files`);
    ``image_pip_conf`` and ``image_ca_dir`` are what the admin wants kernels to use at
    run time: the image's ``/etc/pip.conf`` and extra trusted CA certificates. ``if_missing`` accepts any existing ``name:tag``
    whatever its recipe hash (an image brought in with ``docker load`` on an
    air-gapped host). The user-server image is built on this one by
    :func:`.singleuser.bootstrap_singleuser` (:func:`.by_recipe.bootstrap` picks by recipe
    name). Raises :class:`EngineError` on failure.
    """
    started = time.monotonic()
    reference = f"{name}:{tag}"
    base = base or BaseSpec(sources=host_apt_sources())
    path = recipe_dir(recipe)
    certs = _certificate_files(extra_ca_dir)
    client = engine_client()
    pip_conf = pip_conf if pip_conf and os.path.isfile(pip_conf) else None
    digest = recipe_hash(
        path, certs, pip_conf, base, extra_ca_dir, image_pip_conf=image_pip_conf, image_ca_dir=image_ca_dir
    )

    if if_missing and not force:
        image = _cached_image(client, reference, None)
        if image is not None:
            seconds = time.monotonic() - started
            progress(
                f"{reference} is present (recipe {image.labels.get(LABEL_PREFIX + 'recipe_hash', '?')}); "
                f"--if-missing: nothing to do ({seconds:.2f} s)"
            )
            return present_result(
                image, reference, image.labels.get(LABEL_PREFIX + "recipe_hash", ""), base.reference, seconds
            )
    if not force:
        image = _cached_image(client, reference, digest)
        if image is not None:
            return up_to_date(image, reference, digest, base.reference, started, progress, FORCE_HINT)

    progress(f"building {reference} (recipe {digest}) with no registry")
    replaced = [_image_id(client, reference), _image_id(client, base.reference) if force else None]
    base_ref, _ = build_base(client, base, progress, force=force)

    build_started = time.monotonic()
    progress(f"docker build {recipe} on {base_ref} (host network for pip)")
    with tempfile.TemporaryDirectory(prefix="berth-build-") as ctx:
        _stage_context(path, ctx, image_pip_conf=image_pip_conf, image_ca_dir=image_ca_dir)
        with build_files.served(certs, extra_ca_dir, pip_conf) as build_args:
            stage_id = _run_build(
                client,
                progress,
                path=ctx,
                buildargs={"BASE_IMAGE": base_ref, **build_args},
                network_mode="host",
                nocache=force,
                pull=False,
            )
    versions = _installed_versions(client, stage_id)
    labels = _image_labels(digest, tag, versions)
    if not labels[LABEL_PREFIX + "display_name"].endswith(tag.split("-")[0]) and tag[:1].isdigit():
        progress(f"note: the image holds Python {versions['python']}, tagged {tag}")
    label_dockerfile = f"FROM {stage_id}\n".encode()
    image_id = _run_build(
        client, lambda _l: None, fileobj=io.BytesIO(label_dockerfile), tag=reference, labels=labels, pull=False
    )
    progress(f"  image layer built in {time.monotonic() - build_started:.1f} s")
    image = client.images.get(image_id)
    _remove_replaced(client, [i for i in replaced if i and i != image_id], progress)
    seconds = time.monotonic() - started
    size = image.attrs.get("Size", 0)
    progress(
        f"built {reference} ({image_id[:19]}, {size / 2**20:.0f} MiB, "
        f"{labels[LABEL_PREFIX + 'frameworks']}) in {seconds:.1f} s"
    )
    return ImageResult(reference, image_id, digest, False, seconds, base_ref, dict(image.labels or {}), size)

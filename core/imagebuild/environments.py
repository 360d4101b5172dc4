"""Offline recipes for environments in other languages and ML stacks, built like the kernel image.

Each recipe is a Dockerfile (``recipes/<folder>/``) on the same Debian base that
``berth images bootstrap`` makes without any registry (:mod:`.baseimage`), built with the host's
network for apt and pip. The host's pip.conf and its proxy's CA certificates serve the build only:
served on the host's loopback while it runs and fetched, used and removed in one step, so that no
layer holds them (:mod:`.build_files`; what kernels use at run time is the admin's explicit
``--image-pip-conf``/``--image-ca-dir``). The images are plain: nothing of
Berth's inside, no ``berth-kernel``; they run kernels the way any image does, through the launcher
Berth mounts (:mod:`jupyter_berth.environments`). They carry ``io.jupyter.berth.kind=environment``
(so the catalog does not offer them before an admin does, which inspects them) and the recipe hash,
so an unchanged recipe is never rebuilt.

=============  ==================  ====================================================
recipe         image               what
=============  ==================  ====================================================
``r``          berth/r:4.2         Debian's r-base-core and r-cran-irkernel (IRkernel)
``bash``       berth/bash:5.2      bash_kernel from PyPI (and a Python kernel)
``scipy-2024`` berth/scipy:2024.1  numpy 1.26, pandas, scipy, scikit-learn, matplotlib
``scipy-2025`` berth/scipy:2025.1  numpy 2.2, pandas, scipy, scikit-learn, matplotlib
``jax-0.4``    berth/jax:0.4       CPU JAX 0.4 (jax, jaxlib) with numpy and scipy
=============  ==================  ====================================================
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..engine import engine_client
from ..errors import RequestError
from . import build_files
from .baseimage import LABEL_PREFIX, BaseSpec, build_base, host_apt_sources
from .bootstrap import (
    DEFAULT_EXTRA_CA_DIR,
    HOST_PIP_CONF,
    RECIPES_DIR,
    ImageResult,
    _certificate_files,
    _print,
    _remove_replaced,
    _run_build,
    _stage_context,
    recipe_hash,
    up_to_date,
)


@dataclass(frozen=True)
class EnvironmentRecipe:
    """One recipe: a folder of ``recipes/``, the image it makes, its build arguments."""

    name: str
    folder: str
    repository: str
    tag: str
    display_name: str
    buildargs: dict = field(default_factory=dict)

    @property
    def reference(self) -> str:
        return f"{self.repository}:{self.tag}"


RECIPES = {
    r.name: r
    for r in (
        EnvironmentRecipe("r", "r", "berth/r", "4.2", "R 4.2 (IRkernel)"),
        EnvironmentRecipe("bash", "bash", "berth/bash", "5.2", "Bash"),
        EnvironmentRecipe("scipy-2024", "scipy", "berth/scipy", "2024.1", "SciPy stack 2024.1", {"STACK": "2024.1"}),
        EnvironmentRecipe("scipy-2025", "scipy", "berth/scipy", "2025.1", "SciPy stack 2025.1", {"STACK": "2025.1"}),
        EnvironmentRecipe("jax-0.4", "jax", "berth/jax", "0.4", "JAX 0.4 (CPU)", {"STACK": "0.4"}),
    )
}
#: What ``berth images bootstrap --all`` builds besides the kernel and user-server images: what the
#: tests need (one R and one Bash image; their stack versions are small ones of their own). The
#: SciPy and JAX stacks (about 730 MiB and 3.5 minutes each on two cores) are built on request.
ALL = ("r", "bash")


def recipe(name: str) -> EnvironmentRecipe:
    try:
        return RECIPES[name]
    except KeyError:
        raise RequestError("recipe", f"unknown recipe {name!r}; expected one of {', '.join(RECIPES)}") from None


def build_on_base(
    folder: str,
    reference: str,
    *,
    labels: dict[str, str] | None = None,
    buildargs: dict[str, str] | None = None,
    force: bool = False,
    progress: Callable[[str], None] = _print,
    extra_ca_dir: str | None = DEFAULT_EXTRA_CA_DIR,
    pip_conf: str | None = HOST_PIP_CONF,
    image_pip_conf: str | None = None,
    image_ca_dir: str | None = None,
) -> ImageResult:
    """Build the Dockerfile in ``folder`` on Berth's Debian base as ``reference``, unless it is up to date.

    With ``labels`` (Berth's recipes) the image carries the recipe hash and is rebuilt when it changes;
    without (an image "as a user would build it", for tests and examples) the caller puts the hash,
    :func:`folder_hash`, in the reference's tag, and an existing image is up to date.
    """
    started = time.monotonic()
    client = engine_client()
    base = BaseSpec(sources=host_apt_sources())
    certs = _certificate_files(extra_ca_dir)
    pip_conf = pip_conf if pip_conf and os.path.isfile(pip_conf) else None
    digest = folder_hash(folder, buildargs, certs, pip_conf, base, extra_ca_dir, image_pip_conf, image_ca_dir)
    if not force:
        try:
            image = client.images.get(reference)
        except Exception:  # noqa: BLE001 - ImageNotFound, or an engine error the build will report
            image = None
        if image is not None and (labels is None or (image.labels or {}).get(LABEL_PREFIX + "recipe_hash") == digest):
            return up_to_date(image, reference, digest, base.reference, started, progress)
    replaced = []
    try:
        replaced.append(client.images.get(reference).id)
    except Exception:  # noqa: BLE001 - nothing to replace
        pass
    base_ref, _ = build_base(client, base, progress, force=False)
    progress(f"docker build {os.path.basename(folder)} on {base_ref} as {reference} (host network for apt and pip)")
    with tempfile.TemporaryDirectory(prefix="berth-build-") as ctx:
        _stage_context(folder, ctx, image_pip_conf=image_pip_conf, image_ca_dir=image_ca_dir)
        with build_files.served(certs, extra_ca_dir, pip_conf) as build_args:
            image_id = _run_build(
                client,
                progress,
                path=ctx,
                buildargs={"BASE_IMAGE": base_ref, **build_args, **(buildargs or {})},
                network_mode="host",
                nocache=force,
                pull=False,
                tag=None if labels else reference,
            )
    if labels:
        image_id = _run_build(
            client,
            lambda _l: None,
            fileobj=io.BytesIO(f"FROM {image_id}\n".encode()),
            tag=reference,
            labels={**labels, LABEL_PREFIX + "recipe_hash": digest},
            pull=False,
        )
    image = client.images.get(image_id)
    _remove_replaced(client, [i for i in replaced if i != image_id], progress)
    seconds = time.monotonic() - started
    size = image.attrs.get("Size", 0)
    progress(f"built {reference} ({image_id[:19]}, {size / 2**20:.0f} MiB) in {seconds:.1f} s")
    return ImageResult(reference, image_id, digest, False, seconds, base_ref, dict(image.labels or {}), size)


def folder_hash(
    folder: str,
    buildargs: dict | None = None,
    certs: list[str] | None = None,
    pip_conf: str | None = None,
    base: BaseSpec | None = None,
    extra_ca_dir: str | None = None,
    image_pip_conf: str | None = None,
    image_ca_dir: str | None = None,
) -> str:
    """The recipe hash of ``folder`` with these build arguments (as :func:`.bootstrap.recipe_hash`)."""
    base = base or BaseSpec(sources=host_apt_sources())
    digest = recipe_hash(
        folder,
        list(certs or []),
        pip_conf,
        base,
        extra_ca_dir,
        image_pip_conf=image_pip_conf,
        image_ca_dir=image_ca_dir,
    )
    h = hashlib.sha256(digest.encode())
    for k, v in sorted((buildargs or {}).items()):
        h.update(f"arg={k}={v}\n".encode())
    return h.hexdigest()[:16]


def bootstrap_environment(
    name: str,
    *,
    force: bool = False,
    progress: Callable[[str], None] = _print,
    extra_ca_dir: str | None = DEFAULT_EXTRA_CA_DIR,
    pip_conf: str | None = HOST_PIP_CONF,
    image_pip_conf: str | None = None,
    image_ca_dir: str | None = None,
) -> ImageResult:
    """Build the environment recipe ``name`` (see the table above) without any registry."""
    r = recipe(name)
    labels = {
        LABEL_PREFIX + "kind": "environment",
        LABEL_PREFIX + "display_name": r.display_name,
        LABEL_PREFIX + "version": r.tag,
        LABEL_PREFIX + "recipe": r.name,
    }
    return build_on_base(
        os.path.join(RECIPES_DIR, r.folder),
        r.reference,
        labels=labels,
        buildargs=r.buildargs,
        force=force,
        progress=progress,
        extra_ca_dir=extra_ca_dir,
        pip_conf=pip_conf,
        image_pip_conf=image_pip_conf,
        image_ca_dir=image_ca_dir,
    )

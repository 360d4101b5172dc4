"""``berth images bootstrap --recipe=NAME``: the builder each recipe needs.

The kernel recipes (``python``) are built by :func:`.bootstrap.bootstrap_image`; the
user-server image (``singleuser``) by :func:`.singleuser.bootstrap_singleuser`, on top of the
kernel image. Choosing here keeps :mod:`.bootstrap` free of any import of :mod:`.singleuser`
(which builds on it).
"""

from __future__ import annotations

from collections.abc import Callable

from .bootstrap import (
    DEFAULT_EXTRA_CA_DIR,
    DEFAULT_KERNEL_REPOSITORY,
    DEFAULT_KERNEL_TAG,
    HOST_PIP_CONF,
    ImageResult,
    _print,
    bootstrap_image,
)
from .singleuser import DEFAULT_SERVER_REPOSITORY, DEFAULT_SERVER_TAG, bootstrap_singleuser


def bootstrap(
    recipe: str = "python",
    name: str = DEFAULT_KERNEL_REPOSITORY,
    tag: str = DEFAULT_KERNEL_TAG,
    *,
    force: bool = False,
    progress: Callable[[str], None] = _print,
    extra_ca_dir: str | None = DEFAULT_EXTRA_CA_DIR,
    pip_conf: str | None = HOST_PIP_CONF,
    if_missing: bool = False,
    image_pip_conf: str | None = None,
    image_ca_dir: str | None = None,
) -> ImageResult:
    """Build ``name:tag`` from ``recipe`` (see :func:`.bootstrap.bootstrap_image` for the options).

    For ``singleuser`` the default kernel name stands for the default server image
    (``berth/singleuser:3.11``), so ``--recipe=singleuser`` alone builds that.
    """
    if recipe == "singleuser":
        if name == DEFAULT_KERNEL_REPOSITORY and tag == DEFAULT_KERNEL_TAG:
            name, tag = DEFAULT_SERVER_REPOSITORY, DEFAULT_SERVER_TAG
        return bootstrap_singleuser(
            name,
            tag,
            force=force,
            progress=progress,
            extra_ca_dir=extra_ca_dir,
            pip_conf=pip_conf,
            if_missing=if_missing,
            image_pip_conf=image_pip_conf,
            image_ca_dir=image_ca_dir,
        )
    return bootstrap_image(
        name,
        tag,
        force=force,
        progress=progress,
        extra_ca_dir=extra_ca_dir,
        recipe=recipe,
        pip_conf=pip_conf,
        if_missing=if_missing,
        image_pip_conf=image_pip_conf,
        image_ca_dir=image_ca_dir,
    )


__all__ = ["bootstrap"]

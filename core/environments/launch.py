"""Make a kernel container run an image's own kernel through Berth's mounted launcher.

Images built FROM Berth's base carry ``berth-kernel``; any other image gets Berth's launcher
folder mounted read-only at :data:`~.model.LAUNCHER_TARGET` and runs ``/bin/sh berth-launch
<the kernelspec's argv>``: the launcher writes the connection file, fixes HOME for uid 1000 and
execs the kernel. The engine's init process is PID 1 (it reaps and forwards signals, so an
interrupt reaches the kernel). Python kernels also get Berth's notice of why the previous kernel
ended (``berth_notices.py`` as ``PYTHONSTARTUP``). Pure: edits a :class:`ContainerSpec`.
"""

from __future__ import annotations

from ..errors import NotFoundError
from ..runtime.base import ContainerSpec, Mount
from ..runtime.labels import key
from .inspection import LAUNCHER_DIR
from .model import KERNEL_ENV, LAUNCHER_TARGET, KernelEnvironment


def launcher_mount() -> Mount:
    return Mount(source=LAUNCHER_DIR, target=LAUNCHER_TARGET, read_only=True)


def apply(spec: ContainerSpec, kernel: KernelEnvironment) -> ContainerSpec:
    """Point ``spec`` at ``kernel`` (the kernelspec's environment first, Berth's on top)."""
    env = {**kernel.env, **spec.env}
    env.pop(KERNEL_ENV, None)
    if kernel.resource_dir:
        env["BERTH_RESOURCE_DIR"] = kernel.resource_dir
    if kernel.is_python:
        env.setdefault("PYTHONSTARTUP", f"{LAUNCHER_TARGET}/berth_notices.py")
    spec.env = env
    spec.entrypoint = ["/bin/sh", f"{LAUNCHER_TARGET}/berth-launch"]
    spec.command = list(kernel.argv)
    spec.init = True
    spec.mounts = [*spec.mounts, launcher_mount()]
    spec.labels[key("kernelspec")] = kernel.name
    spec.labels[key("language")] = kernel.language
    return spec


def identity(container_labels: dict, image_ref: str, catalog_labels: dict | None) -> dict:
    """A running kernel's language, the kernel inside its image and its Berth kernelspec, from the labels
    :func:`apply` gave its container (an image built FROM Berth's base: its catalog language, no kernel)."""
    from ..kernelspecs import image_kernel_name, kernelspec_for

    labels = catalog_labels or {}
    kernel = container_labels.get(key("kernelspec")) or None
    language = container_labels.get(key("language")) or labels.get("language") or None
    try:
        spec = kernelspec_for(image_kernel_name(image_ref), labels, kernel)
    except NotFoundError:
        spec = None
    return {"language": language, "kernel": kernel, "kernelspec": spec}

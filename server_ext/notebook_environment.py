"""Notebooks remember the environment they ran in: a pre-save hook of the contents manager.

When a notebook is saved while a Berth kernel runs for it (a session on its path), the hook
writes the kernel's environment into the notebook's metadata::

    "metadata": {"berth": {"environment": {"image": "berth/python:3.11-extra",
                                            "digest": "sha256:…", "display_name": "…",
                                            "resources": {"cpu": 1.0, "mem": …, …},
                                            "language": "R", "kernelspec": "berth-r-4.2-ir",
                                            "kernel": "ir"}}}

(``kernel`` names the kernel inside the image, for images inspected when offered; ``null``
for Berth's own images.)

Opening the notebook again, a front end sends ``{image, digest, kernel, language}`` to ``POST
berth/api/images/resolve`` and learns whether exactly that image is still offered, was
retired (and which version is nearest), or is unknown here. Saving from a kernel that is
not a Berth kernel leaves the metadata as it was.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

#: Where in the notebook's metadata the environment goes.
METADATA_KEY = "berth"


def kernel_environment(serverapp, path: str) -> dict | None:
    """The environment of the Berth kernel whose session is on ``path``, or ``None``."""
    sessions = getattr(serverapp, "session_manager", None)
    kernels = getattr(serverapp, "kernel_manager", None)
    if sessions is None or kernels is None:
        return None
    row = sessions.cursor.execute("SELECT kernel_id FROM session WHERE path = ?", (path,)).fetchone()
    if not row or row[0] not in kernels:
        return None
    launch = getattr(getattr(kernels.get_kernel(row[0]), "provisioner", None), "launch", None)
    if launch is None or not getattr(launch, "image", None):
        return None  # not a Berth kernel
    env = {"image": launch.image, "digest": launch.image_digest, "resources": launch.resources.to_dict()}
    env.update(kernel_identity(kernels.get_kernel(row[0])))
    return env


def kernel_identity(km) -> dict:
    """The kernel's language, its kernelspec here and, for an image holding several, the kernel inside it."""
    spec = getattr(km, "kernel_spec", None)
    if spec is None:
        return {}
    inside = ((spec.metadata or {}).get("jupyter_berth") or {}).get("kernel")
    return {"language": spec.language or None, "kernelspec": km.kernel_name, "kernel": inside}


def make_pre_save_hook(serverapp):
    """A ``ContentsManager`` pre-save hook that records the Berth environment in notebooks."""

    def berth_environment_hook(model: dict, path: str, contents_manager: Any = None, **kwargs: Any) -> None:
        if model.get("type") != "notebook" or not isinstance(model.get("content"), dict):
            return
        env = kernel_environment(serverapp, path.strip("/"))
        if env is None:
            return
        metadata = model["content"].setdefault("metadata", {})
        metadata.setdefault(METADATA_KEY, {})["environment"] = env
        log.debug("Berth: %s records its environment %s (%s)", path, env["image"], env["digest"])

    return berth_environment_hook


def register(serverapp) -> None:
    """Install the hook on the server's contents manager (once)."""
    cm = serverapp.contents_manager
    if any(getattr(h, "__name__", "") == "berth_environment_hook" for h in getattr(cm, "_pre_save_hooks", [])):
        return
    cm.register_pre_save_hook(make_pre_save_hook(serverapp))

"""Look inside an image once, at offer time, in a short-lived container with no network.

:func:`inspect_image` (docker-py's low-level client, run off the loop by the service) creates one
container from the image with the same isolation as a kernel (uid 1000, no capabilities,
``no-new-privileges``, no network, a memory and pids limit) and Berth's launcher folder mounted
read-only, keeps it waiting on its standard input, and runs in it:

1. ``berth-discover``: the kernelspecs in Jupyter's data paths, the Pythons and what they have
   installed, R's and bash's versions;
2. ``berth-smoke`` for each kernel found: the kernel is started through ``berth-launch`` exactly
   as a Berth kernel would be, and must listen on its shell port within ``smoke_seconds``.

The container is removed whatever happens. An image that cannot serve raises a
:class:`~jupyter_berth.errors.BerthError` that names the image and says what to do.
"""

from __future__ import annotations

import json
import os
import secrets
import time

import docker.errors
import docker.types

from ..errors import BerthError, EngineError, NotFoundError, RequestError
from ..runtime.labels import key
from .model import LAUNCHER_TARGET, ImageEnvironment, build_environment, last_lines, parse_discovery

#: Berth's launcher folder, shipped in the package.
LAUNCHER_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "launcher")
INSPECT_USER = "1000:100"
#: Connection info for the smoke start (the kernel only needs to bind; nobody connects).
_SMOKE_PORTS = {"shell_port": 50001, "iopub_port": 50002, "stdin_port": 50003, "control_port": 50004, "hb_port": 50005}


class ImageCannotServe(RequestError):
    """The image holds no kernel Berth can start (HTTP 400); the message says why and what to do."""

    def __init__(self, message: str, **kw):
        super().__init__("image", message, **kw)


def _exec(api, container_id: str, cmd: list[str], env: dict | None = None) -> str:
    exec_id = api.exec_create(container_id, cmd, user=INSPECT_USER, environment=env or {}, workdir="/tmp")["Id"]
    out = api.exec_start(exec_id)
    return (out or b"").decode("utf-8", "replace")


def _create(api, ref: str, site: str, mem: int) -> str:
    host_config = api.create_host_config(
        network_mode="none",
        cap_drop=["ALL"],
        security_opt=["no-new-privileges"],
        privileged=False,
        mem_limit=mem,
        memswap_limit=mem,
        cpu_period=100_000,
        cpu_quota=100_000,
        pids_limit=256,
        mounts=[docker.types.Mount(target=LAUNCHER_TARGET, source=LAUNCHER_DIR, type="bind", read_only=True)],
    )
    return api.create_container(
        image=ref,
        entrypoint=["/bin/sh", "-c", "read _ || :"],  # waits on its open standard input until removed
        command=[],
        user=INSPECT_USER,
        stdin_open=True,
        environment={"HOME": "/home/jovyan"},
        labels={key("kind"): "inspect", key("site"): site, key("image_ref"): ref[:200]},
        name=f"berth-inspect-{secrets.token_hex(6)}",
        host_config=host_config,
        network_disabled=True,
    )["Id"]


def _smoke(api, container_id: str, kernel, seconds: int) -> str | None:
    """``None`` when the kernel listens; else why it did not, with its last output."""
    conn = {"ip": "0.0.0.0", "transport": "tcp", "key": secrets.token_hex(16), "signature_scheme": "hmac-sha256"}
    env = {
        **kernel.env,
        "BERTH_CONNECTION": json.dumps({**conn, **_SMOKE_PORTS}),
        "BERTH_RESOURCE_DIR": kernel.resource_dir,
        "HOME": "/home/jovyan",
    }
    out = _exec(api, container_id, ["/bin/sh", f"{LAUNCHER_TARGET}/berth-smoke", str(seconds), *kernel.argv], env)
    head, _, log = out.partition("@@log")
    status = head.strip().splitlines()[-1] if head.strip() else ""
    if status == "@@listening":
        return None
    tail = last_lines(log) or "(no output)"
    if status.startswith("@@exited"):
        return f"it exited with code {status.split()[-1]} before listening; its last lines:\n{tail}"
    return f"it did not listen within {seconds} s; its last lines:\n{tail}"


def inspect_image(api, ref: str, *, site: str = "", smoke_seconds: int = 60, mem: int = 1 << 30) -> ImageEnvironment:
    """What ``ref`` offers Jupyter, or a :class:`BerthError` naming the image and the fix."""
    t0 = time.monotonic()
    try:
        attrs = api.inspect_image(ref)
    except docker.errors.NotFound:
        raise NotFoundError(
            f"no image {ref} on this host; pull it (`berth images pull`), load it (`docker load`) or build it first"
        ) from None
    image_user = str((attrs.get("Config") or {}).get("User") or "")
    try:
        container_id = _create(api, ref, site, mem)
    except docker.errors.APIError as e:
        raise EngineError(f"could not create a container to inspect {ref}: {e.explanation or e}") from e
    try:
        try:
            api.start(container_id)
        except docker.errors.APIError as e:
            text = str(e.explanation or e)
            if "/bin/sh" in text and ("no such file" in text or "not found" in text):
                raise ImageCannotServe(
                    f"{ref} has no POSIX shell (/bin/sh); Berth's kernel launcher needs one. Build the image on a "
                    "base with a shell (Debian, Ubuntu, Alpine or busybox all have one)",
                    log_message=text,
                ) from None
            raise EngineError(f"could not start a container to inspect {ref}: {text}") from e
        found = parse_discovery(_exec(api, container_id, ["/bin/sh", f"{LAUNCHER_TARGET}/berth-discover"]))
        env = build_environment(attrs["Id"], found, image_user)
        root = (
            " The image's default user is root; Berth runs kernels as uid 1000, so the kernel and everything "
            "it reads must be readable by that user (not under /root, not in a folder only root may enter)."
            if image_user in ("", "0", "root", "0:0")
            else ""
        )
        if not env.kernels:
            raise ImageCannotServe(
                f"no Jupyter kernel found in {ref}: install ipykernel (pip install ipykernel) or IRkernel "
                "(r-cran-irkernel, then IRkernel::installspec(user = FALSE)), or bash_kernel "
                "(pip install bash_kernel && python -m bash_kernel.install --sys-prefix); Berth looks for "
                "kernelspecs in Jupyter's data paths (share/jupyter/kernels under /usr, /usr/local, /opt/*, "
                f"a Python's prefix, JUPYTER_PATH), as uid 1000.{root}"
            )
        skipped = {}
        for k in env.kernels:
            why = _smoke(api, container_id, k, smoke_seconds)
            if why:
                skipped[k.name] = why
        kernels = tuple(k for k in env.kernels if k.name not in skipped)
        if not kernels:
            name, why = next(iter(skipped.items()))
            raise ImageCannotServe(f"the kernel {name!r} of {ref} does not start as uid 1000: {why}{root}")
        return ImageEnvironment(
            image_id=attrs["Id"],
            kernels=kernels,
            skipped=skipped,
            image_user=image_user,
            seconds=round(time.monotonic() - t0, 3),
        )
    except BerthError:
        raise
    except docker.errors.APIError as e:
        raise EngineError(f"inspecting {ref} failed: {e.explanation or e}") from e
    finally:
        try:
            api.remove_container(container_id, force=True, v=True)
        except docker.errors.APIError:
            pass

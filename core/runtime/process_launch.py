"""What a process kernel is made of: its command, ports, environment, folders, and the pseudo image.

A mixin of :class:`~jupyter_berth.runtime.process.ProcessRuntime`. A Berth kernel spec
(command ``berth-kernel``, connection info in ``BERTH_CONNECTION``) becomes
``python -m ipykernel_launcher -f <connection file>`` listening on ``ip`` on ports
picked free here; any other command runs as given. The kernel inherits the
server's environment (less its tokens) plus the spec's, without what only means
something in a container (``HOME=/home/jovyan``). Folders a container would mount
under ``/home/jovyan/folders`` become symlinks in ``$BERTH_FOLDERS_DIR``: nothing
makes a read-only folder read-only there.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import socket
import subprocess
import sys
import time

from traitlets import HasTraits, List, Unicode, default

from ..errors import RequestError
from . import process_limits
from .base import ContainerSpec
from .labels import PREFIX

EXEC_SHIM = os.path.join(os.path.dirname(os.path.abspath(__file__)), "process_exec.py")
NOTICES = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    "imagebuild",
    "recipes",
    "python",
    "00-berth-notices.py",
)
#: The command of a Berth kernel image; the process runtime runs ``kernel_command`` instead.
IMAGE_KERNEL_COMMAND = "berth-kernel"
#: Server variables a kernel never inherits. JPY_PARENT_PID would make ipykernel exit when its parent
#: changes, and a process kernel outlives the server that started it (a restarted server adopts it).
_SERVER_ONLY = {
    "JUPYTERHUB_API_TOKEN",
    "JPY_API_TOKEN",
    "JUPYTER_TOKEN",
    "BERTH_SERVICE_URL",
    "BERTH_REQUEST",
    "BERTH_PRESET",
    "BERTH_IMAGE",
    "BERTH_FOLDERS",
    "JPY_PARENT_PID",
}
#: Kernel variables that only mean something inside a container.
_CONTAINER_ONLY = {"HOME", "BERTH_CONNECTION"}


def wait_for_exec(proc: subprocess.Popen, timeout: float = 60) -> None:
    """Wait until the :data:`EXEC_SHIM` has applied the limits and exec'd the kernel (or ended). Blocking."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            with open(f"/proc/{proc.pid}/cmdline", "rb") as f:
                if EXEC_SHIM.encode() not in f.read():
                    return
        except OSError:
            return
        time.sleep(0.005)


class ProcessLaunchMixin(HasTraits):
    """Commands, ports, environment, folders and the pseudo image of process kernels."""

    ip = Unicode(
        "127.0.0.1", config=True, help="Address process kernels listen on (loopback: only this host reaches them)."
    )
    python = Unicode(
        sys.executable,
        config=True,
        help="The Python that runs process kernels (its environment is the one pseudo image offered).",
    )
    kernel_command = List(
        Unicode(),
        ["{python}", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        config=True,
        help="The kernel command; {python} and {connection_file} are filled in.",
    )
    image_ref = Unicode(config=True, help="The name the local Python environment is offered under as a kernel image.")

    @default("image_ref")
    def _image_ref_default(self):
        return "local/python:{}.{}".format(*sys.version_info[:2])

    def _image_attrs(self) -> dict:
        digest = hashlib.sha256(f"{self.python}\n{sys.version}".encode()).hexdigest()
        major_minor = "{}.{}".format(*sys.version_info[:2])
        frameworks = []
        for package in ("ipykernel", "ipython"):
            try:
                from importlib.metadata import version

                frameworks.append(f"{package} {version(package)}")
            except Exception:  # noqa: BLE001 - not installed here: say nothing about it
                continue
        labels = {
            "kind": "kernel",
            "display_name": f"Python {major_minor} (local process)",
            "language": "python",
            "python_version": platform.python_version(),
            "version": major_minor,
            "gpu": "false",
            "frameworks": ", ".join(frameworks),
            "runtime": self.name,
        }
        return {
            "Id": f"sha256:{digest}",
            "RepoTags": [self.image_ref],
            "RepoDigests": [],
            "Size": 0,
            "Created": "",
            "Config": {"Labels": {PREFIX + k: v for k, v in labels.items()}},
        }

    def _pick_ports(self, names: list[str], prefer: dict | None) -> dict:
        if prefer and set(prefer) == set(names) and all(self._port_free(p) for p in prefer.values()):
            return dict(prefer)
        sockets = []
        try:
            for _ in names:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.bind((self.ip, 0))
                sockets.append(s)
            return {n: s.getsockname()[1] for n, s in zip(names, sockets)}
        finally:
            for s in sockets:
                s.close()

    def _port_free(self, port: int) -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as ZeroMQ binds: TIME_WAIT is no obstacle
            try:
                s.bind((self.ip, int(port)))
            except OSError:
                return False
        return True

    def _command(self, spec: ContainerSpec, workdir: str) -> tuple[list[str], dict]:
        """The argv to run and the ports the kernel listens on (none for a command that is no kernel)."""
        if spec.command[0] != IMAGE_KERNEL_COMMAND:
            return list(spec.command), {}
        try:
            conn = json.loads(spec.env["BERTH_CONNECTION"])
        except (KeyError, ValueError) as e:
            raise RequestError("env", "a kernel needs its connection info as JSON in BERTH_CONNECTION") from e
        names = sorted(k for k in conn if k.endswith("_port"))
        ports = self._pick_ports(names, self._last_ports.get(spec.name) if spec.ip else None)
        conn.update(ip=self.ip, **ports)
        path = os.path.join(workdir, "connection.json")
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="utf-8") as f:
            json.dump(conn, f)
        argv = [a.format(python=self.python, connection_file=path) for a in self.kernel_command] + spec.command[1:]
        if spec.env.get("BERTH_NOTICE") and os.path.exists(NOTICES):
            argv.append(f"--IPKernelApp.exec_files={NOTICES}")
        return argv, ports

    def _link_folders(self, spec: ContainerSpec, workdir: str) -> str:
        """The kernel's folders as symlinks in ``<workdir>/folders`` (mounts of its own path need nothing)."""
        from ..kernel_launch import FOLDERS_ROOT

        folders = os.path.join(workdir, "folders")
        os.makedirs(folders, exist_ok=True)
        for m in spec.mounts:
            if m.target.startswith(FOLDERS_ROOT + "/"):
                link = os.path.join(folders, m.target[len(FOLDERS_ROOT) + 1 :])
                os.makedirs(os.path.dirname(link), exist_ok=True)
                os.symlink(m.source, link)
            elif os.path.abspath(m.target) != os.path.abspath(m.source):
                self.log.warning(
                    "Process kernel %s: %s cannot appear at %s (no mounts without a container)",
                    spec.name,
                    m.source,
                    m.target,
                )
        return folders

    def _env(self, spec: ContainerSpec, folders: str, plan: process_limits.LimitPlan) -> dict:
        env = {k: v for k, v in os.environ.items() if k not in _SERVER_ONLY}
        env.update({k: v for k, v in spec.env.items() if k not in _CONTAINER_ONLY})
        env.update(
            BERTH_RUNTIME=self.name,
            BERTH_ISOLATION=self.isolation,
            BERTH_ENFORCEMENT=plan.mechanism,
            BERTH_FOLDERS_DIR=folders,
        )
        if plan.mechanism == "rlimit":
            env.setdefault("MALLOC_ARENA_MAX", "2")  # fewer reserved arenas: more of RLIMIT_AS left for data
        if spec.gpu_device_ids:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(spec.gpu_device_ids)  # a hint, not enforced
        return env


__all__ = ["EXEC_SHIM", "IMAGE_KERNEL_COMMAND", "ProcessLaunchMixin"]

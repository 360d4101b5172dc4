"""A Docker engine of the test's own whose data root is a file system with quotas, for disk limits.

The shared engine (``/var/run/docker.sock``) is never touched beyond reading an image: the test
engine is a further ``dockerd`` (as tests/swarm_cluster.py runs its nodes) with its own data root,
exec root, pid file and socket (``unix:///run/berth-disk-<fs>-<pid>/docker.sock``), started in a
network namespace and a mount namespace of its own (``unshare --net --mount``): its bridge and
firewall rules live in that namespace, and the loop file system it mounts (``mount -o loop``,
freed with the namespace) is seen by nobody else. The image comes from the shared engine
(``docker save | docker load``).

File systems (:data:`FILESYSTEMS`): ``xfs`` mounted with ``pquota`` for the ``overlay2`` driver
(Docker's documented way), ``btrfs`` for the ``btrfs`` driver. A kernel built without XFS quota
support (``CONFIG_XFS_QUOTA``) cannot mount the former: :func:`unsupported` says why.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time

import docker

IMAGE = "berth/python:3.11"
#: file system → (mkfs command, mount options, storage driver, command after mounting)
FILESYSTEMS = {
    "xfs": (["mkfs.xfs", "-q", "-f"], "loop,pquota", "overlay2", "true"),
    # quotas on before the engine writes anything: enabled later, btrfs rescans and does not hold limits meanwhile
    "btrfs": (["mkfs.btrfs", "-q", "-f"], "loop", "btrfs", "btrfs quota enable"),
}


def _dmesg_tail() -> str:
    proc = subprocess.run(["dmesg"], capture_output=True, text=True)
    return " ".join(proc.stdout.strip().splitlines()[-3:])


def unsupported(fs: str) -> str | None:
    """Why this host cannot run an engine on ``fs`` with quotas (``None``: it can)."""
    if os.getuid() != 0:
        return "needs root (a loop mount and a second dockerd)"
    mkfs = FILESYSTEMS[fs][0][0]
    for tool in ("dockerd", "unshare", mkfs, "mount"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install -y {'xfsprogs' if fs == 'xfs' else 'btrfs-progs'})"
    with open("/proc/filesystems") as f:
        if fs not in f.read():
            return f"the kernel has no {fs}"
    return None


class QuotaEngine:
    """A started ``dockerd`` on a ``fs`` loop file system; :meth:`close` removes everything."""

    def __init__(self, fs: str, size: str = "3G"):
        self.fs = fs
        self.dir = f"/run/berth-disk-{fs}-{os.getpid()}"
        self.url = f"unix://{self.dir}/docker.sock"
        self.proc: subprocess.Popen | None = None

    @property
    def log(self) -> str:
        with contextlib.suppress(OSError), open(f"{self.dir}/dockerd.log") as f:
            return f.read()[-3000:]
        return ""

    def start(self, size: str = "3G", timeout: float = 30) -> None:
        mkfs, options, driver, after = FILESYSTEMS[self.fs]
        os.makedirs(f"{self.dir}/root", exist_ok=True)
        image = f"{self.dir}/fs.img"
        subprocess.run(["truncate", "-s", size, image], check=True)
        subprocess.run([*mkfs, image], check=True, capture_output=True)
        with open(f"{self.dir}/daemon.json", "w") as f:
            f.write("{}")  # never the host's /etc/docker/daemon.json
        script = (
            f'mount -o {options} "{image}" "{self.dir}/root" || {{ echo "MOUNT FAILED: $(dmesg | grep -iE "xfs|btrfs" | tail -n 1)"; exit 3; }}\n'
            f'{after} "{self.dir}/root"\n'
            f'exec dockerd --config-file "{self.dir}/daemon.json" --data-root "{self.dir}/root/docker" '
            f'--exec-root "{self.dir}/exec" --pidfile "{self.dir}/docker.pid" -H "{self.url}" '
            f"--storage-driver {driver} --log-level warn\n"
        )
        with open(f"{self.dir}/run.sh", "w") as f:
            f.write(script)
        log = open(f"{self.dir}/dockerd.log", "ab")
        self.proc = subprocess.Popen(
            ["unshare", "--net", "--mount", "--propagation", "slave", "sh", f"{self.dir}/run.sh"],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise EngineDidNotStart(self.log)
            with contextlib.suppress(Exception):
                client = docker.DockerClient(base_url=self.url, timeout=5)
                client.ping()
                client.close()
                return
            if time.monotonic() > deadline:
                raise EngineDidNotStart(self.log)
            time.sleep(0.2)

    def client(self) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.url, timeout=120)

    def load_image(self, image: str = IMAGE) -> None:
        """``docker save`` on the shared engine, ``docker load`` here."""
        save = subprocess.Popen(["docker", "-H", "unix:///var/run/docker.sock", "save", image], stdout=subprocess.PIPE)
        subprocess.run(["docker", "-H", self.url, "load", "-q"], stdin=save.stdout, check=True, capture_output=True)
        save.stdout.close()
        if save.wait() != 0:
            raise RuntimeError(f"docker save {image} failed")

    def close(self) -> None:
        """Stop the engine (its containers go with it) and remove its files; the loop device is freed when
        the mount namespace ends."""
        if self.proc is not None:
            if self.proc.poll() is None:
                os.kill(self.proc.pid, signal.SIGTERM)  # dockerd (exec'd by unshare and sh): stops its containers
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(timeout=30)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)  # whatever of its session is left (containerd)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=10)
        time.sleep(0.5)
        shutil.rmtree(self.dir, ignore_errors=True)


class EngineDidNotStart(RuntimeError):
    """The test engine did not answer; the message is its log (a failed mount says why)."""

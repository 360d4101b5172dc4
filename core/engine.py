"""The container engine: find it, or install and start it.

``ensure_engine()`` is what ``berth engine up`` runs. It never pulls an image
and never talks to a registry; it only makes sure a Docker daemon answers on
``DOCKER_HOST`` (or the default socket):

1. a daemon already answers → use it;
2. root on Debian/Ubuntu → ``apt-get install -y docker.io`` if ``dockerd`` is
   missing, start ``dockerd`` detached (its own session, so it outlives the
   caller) logging to :data:`DOCKERD_LOG`, wait until it answers;
3. anything else → :class:`EngineError` saying what to install or start.

``engine_client()`` is the one place other modules get a docker-py client from.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass

import docker
import docker.errors
import requests.exceptions

from .errors import EngineError

#: Where a dockerd started by berth writes its log.
DOCKERD_LOG = "/var/log/berth-dockerd.log"
#: Seconds a docker-py call may take before the engine counts as not answering.
CLIENT_TIMEOUT = 120

ALREADY_RUNNING = "already running"
STARTED = "started dockerd"
INSTALLED_AND_STARTED = "installed docker.io and started dockerd"


@dataclass(frozen=True)
class EngineStatus:
    """What ``ensure_engine`` found or did."""

    #: the daemon's version string, e.g. ``"20.10.24+dfsg1"``
    version: str
    #: one of ``"already running"``, ``"started dockerd"``,
    #: ``"installed docker.io and started dockerd"``
    how: str
    #: the dockerd log file when berth started the daemon, else ``None``
    log_path: str | None
    #: where the daemon answers (``DOCKER_HOST`` or the default socket)
    address: str


def engine_address() -> str:
    """The address docker-py will use: ``DOCKER_HOST`` or the default socket."""
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def _try_client(timeout: float) -> docker.DockerClient | None:
    """A client whose ping answered, or ``None`` when nothing answers."""
    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
        return client
    except (docker.errors.DockerException, requests.exceptions.RequestException, OSError):
        return None


def engine_client(timeout: float = CLIENT_TIMEOUT) -> docker.DockerClient:
    """A docker-py client for the engine, checked with a ping.

    Raises :class:`EngineError` when the engine does not answer.
    """
    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
        return client
    except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as e:
        raise EngineError(
            f"the Docker engine at {engine_address()} does not answer: {_short(e)}; run `berth engine up`"
        ) from e


def probe_engine(timeout: float = 2.0) -> tuple[bool, str]:
    """Whether a Docker engine answers a ping within ``timeout`` seconds, and one line saying what was found.

    Never raises; used to choose a runtime (``BerthService.runtime_kind = "auto"``). Blocking.
    """
    try:
        client = docker.from_env(timeout=timeout)
        try:
            client.ping()
        finally:
            client.close()
    except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as e:
        return False, f"no Docker engine answers at {engine_address()} ({_short(e)})"
    return True, f"the Docker engine at {engine_address()} answers"


def _short(exc: BaseException) -> str:
    """The first line of an exception's text, without urllib3's noise."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:300]


def _os_release() -> dict[str, str]:
    """``/etc/os-release`` as a dict (empty when absent)."""
    fields: dict[str, str] = {}
    try:
        with open("/etc/os-release", encoding="utf-8") as f:
            for line in f:
                key, sep, value = line.strip().partition("=")
                if sep:
                    fields[key] = value.strip().strip('"')
    except OSError:
        pass
    return fields


def is_debian_like() -> bool:
    """True on Debian, Ubuntu and their derivatives (they have ``docker.io``)."""
    info = _os_release()
    ids = {info.get("ID", "")} | set(info.get("ID_LIKE", "").split())
    return bool(ids & {"debian", "ubuntu"})


def _run_apt(args: list[str], log: Callable[[str], None]) -> None:
    """Run one apt-get command non-interactively; raise EngineError on failure."""
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    log(f"$ apt-get {' '.join(args)}")
    proc = subprocess.run(["apt-get", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.strip().splitlines()[-15:])
        raise EngineError(
            f"`apt-get {' '.join(args)}` failed (exit {proc.returncode}); "
            f"install Docker by hand (`apt-get install docker.io`) and run `berth engine up` again.\n{tail}"
        )


def _apt_lists_present() -> bool:
    """True when ``apt-get update`` has run at least once (package lists exist)."""
    lists = "/var/lib/apt/lists"
    try:
        return any(name.endswith("_Packages") for name in os.listdir(lists))
    except OSError:
        return False


def install_docker_io(log: Callable[[str], None] = print) -> None:
    """``apt-get install -y docker.io`` (after ``apt-get update`` only if needed)."""
    if not _apt_lists_present():
        _run_apt(["update"], log)
    try:
        _run_apt(["install", "-y", "docker.io"], log)
    except EngineError:
        # The lists may be stale (a package version gone from the mirror): refresh once.
        _run_apt(["update"], log)
        _run_apt(["install", "-y", "docker.io"], log)


def start_dockerd(log_path: str = DOCKERD_LOG) -> int:
    """Start ``dockerd`` detached in its own session; return its pid.

    The daemon outlives the calling process: its standard streams go to
    ``log_path`` and it does not share the caller's session or process group.
    """
    dockerd = shutil.which("dockerd") or "/usr/sbin/dockerd"
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    with open(log_path, "ab") as logf:
        proc = subprocess.Popen(
            [dockerd],
            stdin=subprocess.DEVNULL,
            stdout=logf,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    return proc.pid


def _log_tail(path: str, lines: int = 10) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


def _wait_for_engine(wait: float, log_path: str, pid: int) -> docker.DockerClient:
    """Ping until the engine answers or ``wait`` seconds pass."""
    deadline = time.monotonic() + wait
    while True:
        client = _try_client(timeout=5)
        if client is not None:
            return client
        try:
            finished = os.waitpid(pid, os.WNOHANG)[0] == pid
        except ChildProcessError:
            finished = False
        if finished:
            raise EngineError(f"dockerd exited right after starting; see {log_path}:\n{_log_tail(log_path)}")
        if time.monotonic() > deadline:
            raise EngineError(
                f"dockerd was started but did not answer at {engine_address()} within "
                f"{wait:.0f} s; see {log_path}:\n{_log_tail(log_path)}"
            )
        time.sleep(0.25)


def ensure_engine(log: Callable[[str], None] = print, wait: float = 60) -> EngineStatus:
    """Make sure a Docker engine answers; install and start one if allowed.

    ``log`` receives one line per step taken. ``wait`` bounds the seconds to wait
    for a freshly started ``dockerd`` to answer. Never pulls an image.
    """
    client = _try_client(timeout=10)
    if client is not None:
        version = client.version().get("Version", "unknown")
        log(f"Docker engine {version} answers at {engine_address()}")
        return EngineStatus(version, ALREADY_RUNNING, None, engine_address())

    if os.environ.get("DOCKER_HOST", "unix://").split("://")[0] not in ("unix", ""):
        raise EngineError(
            f"the Docker engine at {engine_address()} does not answer; "
            "start it there (berth only starts a local dockerd), or unset DOCKER_HOST"
        )
    if os.geteuid() != 0 or not is_debian_like():
        raise EngineError(
            f"no Docker engine answers at {engine_address()}; berth can install and start "
            "one only as root on Debian or Ubuntu. Install Docker (the `docker.io` package, "
            "or Docker Engine for your distribution), start it (`systemctl start docker` or "
            "`dockerd &`), make its socket reachable for this user, then run `berth engine up`."
        )

    how = STARTED
    if shutil.which("dockerd") is None:
        log("dockerd not found: installing Debian's docker.io")
        install_docker_io(log)
        how = INSTALLED_AND_STARTED
    started = time.monotonic()
    pid = start_dockerd(DOCKERD_LOG)
    log(f"started dockerd (pid {pid}), log in {DOCKERD_LOG}; waiting for it to answer")
    client = _wait_for_engine(wait, DOCKERD_LOG, pid)
    version = client.version().get("Version", "unknown")
    log(f"Docker engine {version} answers at {engine_address()} after {time.monotonic() - started:.1f} s")
    return EngineStatus(version, how, DOCKERD_LOG, engine_address())

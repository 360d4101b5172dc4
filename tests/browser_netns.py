"""Run a browser test (a node script) in a network namespace of its own, reaching a TCP server of the host.

Chromium aborts requests in flight with ERR_NETWORK_CHANGED ("Failed to fetch") whenever the host's
interfaces change, and on a shared engine they change all the time (containers and pools starting,
other tests' networks). In its own namespace (``unshare --net``: loopback only) the browser sees none of
that. It reaches the server through a UNIX socket (a file: visible across namespaces): this module
forwards that socket to the host's ``host:port``, and the script's ``socketBridge`` (ui-tests/browser.mjs)
listens on the namespace's loopback and forwards to the socket.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import threading
from pathlib import Path
from urllib.parse import urlsplit

import pytest

REPO = Path(__file__).resolve().parent.parent


def require_browser() -> None:
    """Skip (fail in CI) when playwright-core or Debian's Chromium is missing: scripts/test.sh installs both."""
    if not (REPO / "labextension" / "node_modules" / "playwright-core").is_dir() or not shutil.which("chromium"):
        if os.environ.get("CI"):
            pytest.fail("playwright-core or chromium is missing: scripts/test.sh installs both")
        pytest.skip(
            "playwright-core (bash scripts/build-labextension.sh) or chromium (apt-get install chromium) missing"
        )


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := src.recv(65536):
            dst.sendall(data)
    for s in (src, dst):
        with contextlib.suppress(OSError):
            s.shutdown(socket.SHUT_RDWR)


@contextlib.contextmanager
def unix_to_tcp(host: str, port: int):
    """A UNIX socket path whose connections are forwarded to ``host:port`` (threads; closed on exit)."""
    folder = tempfile.mkdtemp(prefix="berth-browser-")
    path = os.path.join(folder, "server.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)

    def serve():
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection((host, port), timeout=30)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pipe, args=(a, b), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield path
    finally:
        listener.close()
        shutil.rmtree(folder, ignore_errors=True)


def isolated(command: list[str]) -> list[str]:
    """``command`` run in a network namespace of its own with loopback up (root: this test machine)."""
    return ["unshare", "--net", "sh", "-c", 'ip link set lo up && exec "$0" "$@"', *command]


def can_isolate() -> bool:
    return bool(shutil.which("unshare") and shutil.which("ip")) and os.geteuid() == 0


def run_browser(script: list[str], url: str, env: dict, **kw) -> subprocess.CompletedProcess:
    """Run a browser test script against the server at ``url`` (an origin, ``http://127.0.0.1:PORT``):
    isolated where the host allows (``BERTH_UI_SOCKET`` set: the script reads it with ``serverUrl()`` of
    ui-tests/browser.mjs), else as it is (``BERTH_UI_URL``)."""
    parts = urlsplit(url)
    env = {**env, "BERTH_UI_URL": url}
    with contextlib.ExitStack() as stack:
        if can_isolate() and parts.hostname in ("127.0.0.1", "localhost") and parts.port and parts.path in ("", "/"):
            env["BERTH_UI_SOCKET"] = stack.enter_context(unix_to_tcp("127.0.0.1", parts.port))
            script = isolated(script)
        return subprocess.run(script, env=env, capture_output=True, text=True, **kw)


__all__ = ["can_isolate", "isolated", "require_browser", "run_browser", "unix_to_tcp"]

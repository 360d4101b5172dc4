"""A JupyterLab of a test's own, for the browser tests that run one (the Berth extensions and what the
test's config adds): started on a free loopback port, ready once its status, its page and its theme
answer, stopped at the end. Its log is ``lab.log`` in the test's folder."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx

from tests.hub_process import free_port

#: What the page needs before a browser may open it: the first requests are slow under load, and a theme
#: that does not load in time breaks the page's layout.
PAGE = ("lab", "lab/api/themes/@jupyterlab/theme-light-extension/index.css")


@contextlib.contextmanager
def running_lab(folder: Path, root: Path, config: str, ready=(), env: dict | None = None):
    """``python -m jupyterlab`` with ``config`` (a config file's text) serving ``root``: yields
    ``(url, token)`` once ``api/status``, the page and the ``ready`` paths answer 200."""
    config_file = folder / "lab_config.py"
    config_file.write_text(config)
    port, token = free_port(), uuid.uuid4().hex
    env = {
        **os.environ,
        "JUPYTER_RUNTIME_DIR": str(folder / "runtime"),
        "JUPYTERLAB_WORKSPACES_DIR": str(folder / "lab-workspaces"),
        **(env or {}),
    }
    log = open(folder / "lab.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", f"--port={port}", "--ip=127.0.0.1",
         f"--ServerApp.token={token}", f"--ServerApp.root_dir={root}", f"--config={config_file}"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/api/status", params={"token": token}, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, (folder / "lab.log").read_text()[-3000:]
            time.sleep(0.3)
        for path in (*PAGE, *ready):
            assert httpx.get(f"{url}/{path}", params={"token": token}, timeout=60).status_code == 200, path
        yield url, token
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def lab_log(folder: Path, tail: int = 3000) -> str:
    return (folder / "lab.log").read_text()[-tail:]

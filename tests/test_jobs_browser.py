"""The Create-job dialog in a browser: a real JupyterLab with jupyter-scheduler and Berth as its backend,
Debian's Chromium driven by playwright-core (labextension/ui-tests/create-job.e2e.mjs), real Docker.

The browser picks the "small" preset and a parameter and creates the job; this test then checks the
Berth job behind the scheduler's record: its parameters, its container's limits, its usage record.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.browser_netns import run_browser

pytest.importorskip("jupyter_scheduler")
pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(400)]

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "labextension" / "ui-tests" / "create-job.e2e.mjs"
LIMITS = (
    "import pathlib\n"
    "def read(*names):\n"
    "    for n in names:\n"
    "        p = pathlib.Path('/sys/fs/cgroup') / n\n"
    "        if p.exists(): return p.read_text().split()[0]\n"
    "print('MEM', read('memory/memory.limit_in_bytes', 'memory.max'), 'CPU', read('cpu/cpu.cfs_quota_us', 'cpu.max'))\n"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def lab(tmp_path):
    """JupyterLab with the Berth server extension and jupyter-scheduler configured for Berth: (url, token, root)."""
    if not (REPO / "labextension" / "node_modules" / "playwright-core").is_dir() or not shutil.which("chromium"):
        if os.environ.get("CI"):
            pytest.fail("playwright-core or chromium is missing: scripts/test.sh installs both")
        pytest.skip(
            "playwright-core (bash scripts/build-labextension.sh) or chromium (apt-get install chromium) missing"
        )
    root = tmp_path / "root"
    root.mkdir()
    os.chmod(tmp_path, 0o755)
    if os.getuid() == 0:
        os.chown(root, 1000, 1000)
    cells = [
        {"cell_type": "code", "metadata": {"tags": ["parameters"]}, "source": "alpha = 1", "outputs": [], "execution_count": None},
        {"cell_type": "code", "metadata": {}, "source": LIMITS, "outputs": [], "execution_count": None},
        {"cell_type": "code", "metadata": {}, "source": "print('RESULT', alpha * 10)", "outputs": [], "execution_count": None},
    ]  # fmt: skip
    meta = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    (root / "train.ipynb").write_text(
        json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": meta, "cells": cells})
    )
    config = tmp_path / "lab_config.py"
    config.write_text(
        "c.ServerApp.jpserver_extensions = {'jupyter_berth.server': True, 'jupyter_scheduler': True}\n"
        f"c.BerthService.data_dir = {str(tmp_path / 'berth-data')!r}\n"
        "c.UsageTracker.sample_interval = 0\n"
        "c.BerthService.presets = {'small': {'cpu': 0.5, 'mem': '256M', 'display_name': 'Small'},\n"
        "                          'huge': {'cpu': 8, 'mem': '1G', 'display_name': 'Huge'}}\n"
        "c.BerthService.default_policy = {'max_cpu': 2, 'max_mem': '2G', 'default': {'cpu': 1, 'mem': '512M'}}\n"
        "c.BerthExtensionApp.sync_kernelspecs = False\n"
        f"c.SchedulerApp.db_url = 'sqlite:///{tmp_path / 'scheduler.sqlite'}'\n"
        "c.SchedulerApp.environment_manager_class = 'jupyter_berth.server.scheduler.BerthEnvironmentManager'\n"
        "c.SchedulerApp.scheduler_class = 'jupyter_berth.server.scheduler.BerthScheduler'\n"
        f"c.BaseScheduler.staging_path = {str(tmp_path / 'staging')!r}\n"
    )
    port, token = free_port(), uuid.uuid4().hex
    env = {
        **os.environ,
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "lab-workspaces"),
        # nbconvert's HTML templates live under the base Python's share/ (this venv sees its site-packages)
        "JUPYTER_PATH": os.path.join(sys.base_prefix, "share", "jupyter"),
    }
    log = open(tmp_path / "lab.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", f"--port={port}", "--ip=127.0.0.1",
         f"--ServerApp.token={token}", f"--ServerApp.root_dir={root}", f"--config={config}"],
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
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "lab.log").read_text()[-3000:]
            time.sleep(0.3)
        for path in (
            "lab",
            "lab/api/themes/@jupyterlab/theme-light-extension/index.css",
            "scheduler/runtime_environments",
        ):
            # first requests are slow under load; a theme that does not load in time breaks the page's layout
            assert httpx.get(f"{url}/{path}", params={"token": token}, timeout=60).status_code == 200, path
        yield url, token, root
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_create_job_dialog_runs_the_notebook_as_a_berth_job(lab, tmp_path):
    url, token, root = lab
    env = {**os.environ, "BERTH_UI_TOKEN": token, "BERTH_UI_NOTEBOOK": "train.ipynb"}
    done = run_browser(["node", str(SCRIPT)], url, env, cwd=REPO, timeout=300)
    server_log = (tmp_path / "lab.log").read_text()[-2000:]
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:] + "\nserver log:\n" + server_log
    assert "create-job:" in done.stdout and "passed" in done.stdout

    (job,) = httpx.get(f"{url}/scheduler/jobs", params={"token": token}, timeout=10).json()["jobs"]
    assert (job["status"], job["compute_type"], job["parameters"]) == ("COMPLETED", "small", {"alpha": "0.5"})
    notebook = [f for f in job["job_files"] if f["file_format"] == "ipynb"][0]["file_path"]
    out = json.loads((root / notebook).read_text())
    text = "".join(o.get("text", "") for c in out["cells"] for o in c.get("outputs", []))
    assert f"MEM {256 * 1024 * 1024} CPU 50000" in text and "RESULT 5.0" in text  # the small preset's limits

    from jupyter_berth.ledger import Ledger

    ledger = Ledger(data_dir=str(tmp_path / "berth-data"))
    try:
        records = [r for r in ledger.usage_records() if r.subject == job["job_id"]]
    finally:
        ledger.close()
    assert [(r.kind, r.end_reason, r.cpu, r.mem) for r in records] == [("job", "completed", 0.5, 256 * 1024 * 1024)]

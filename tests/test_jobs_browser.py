"""The Create-job dialog in a browser: a real JupyterLab with jupyter-scheduler and Berth as its backend,
Debian's Chromium driven by playwright-core (labextension/ui-tests/create-job.e2e.mjs), real Docker.

The browser picks the "small" preset and a parameter and creates the job; this test then checks the
Berth job behind the scheduler's record: its parameters, its container's limits, its usage record.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import httpx
import pytest

from tests.browser_netns import require_browser, run_browser
from tests.lab_process import lab_log, running_lab

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


@pytest.fixture
def lab(tmp_path):
    """JupyterLab with the Berth server extension and jupyter-scheduler configured for Berth: (url, token, root)."""
    require_browser()
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
    config = (
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
    # nbconvert's HTML templates live under the base Python's share/ (this venv sees its site-packages)
    env = {"JUPYTER_PATH": os.path.join(sys.base_prefix, "share", "jupyter")}
    with running_lab(tmp_path, root, config, ready=("scheduler/runtime_environments",), env=env) as (url, token):
        yield url, token, root


def test_create_job_dialog_runs_the_notebook_as_a_berth_job(lab, tmp_path):
    url, token, root = lab
    env = {**os.environ, "BERTH_UI_TOKEN": token, "BERTH_UI_NOTEBOOK": "train.ipynb"}
    done = run_browser(["node", str(SCRIPT)], url, env, cwd=REPO, timeout=300)
    server_log = lab_log(tmp_path, 2000)
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

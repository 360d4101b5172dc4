"""The sidebar's queue, budget and Jobs view in a browser: a real JupyterLab with the Berth extensions,
Debian's Chromium driven by playwright-core (labextension/ui-tests/fair-share.e2e.mjs), real Docker kernels.
The browser runs in a network namespace of its own (``tests.browser_netns``: ``unshare --net``, loopback
only, bridged to JupyterLab through a UNIX socket): the shared engine adds and removes interfaces on the
host all the time (this test's containers, other runs' networks), and Chromium aborts requests in flight
when it sees that (ERR_NETWORK_CHANGED), which made the page fail at random.

The host is sized to hold one 0.75-CPU kernel (``cpu_overcommit``), the policy queues starts that find
no room and gives 20 CPU-hours for the term. The browser sees the remaining budget, two waiting starts
and a queued job each with its place, cancels a waiting start and the job from the sidebar, and sees
the last start get its turn when room frees.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.browser_netns import require_browser, run_browser
from tests.lab_process import lab_log, running_lab

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(400)]

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "labextension" / "ui-tests" / "fair-share.e2e.mjs"


@pytest.fixture
def lab(tmp_path):
    """JupyterLab with the Berth server extension on a one-CPU host whose policy queues: (url, token)."""
    require_browser()
    root = tmp_path / "root"
    root.mkdir()
    os.chmod(tmp_path, 0o755)
    if os.getuid() == 0:
        os.chown(root, 1000, 1000)
    import docker

    engine_cpus = docker.from_env().info()["NCPU"]
    config = (
        "c.ServerApp.jpserver_extensions = {'jupyter_berth.server': True}\n"
        f"c.BerthService.data_dir = {str(tmp_path / 'berth-data')!r}\n"
        f"c.BerthService.cpu_overcommit = {1.0 / engine_cpus!r}  # a host of 1 CPU: one 0.75-CPU kernel at a time\n"
        "c.BerthService.stop_timeout = 2\n"
        "c.UsageTracker.sample_interval = 0\n"
        "c.BerthService.default_policy = {'max_cpu': 1, 'max_mem': '1G', 'on_full': 'queue', 'queue_timeout': 240,\n"
        "    'default': {'cpu': 0.25, 'mem': '256M'},\n"
        "    'budget': {'cpu_hours': 20, 'period': {'name': 'autumn', 'start': '2026-09-01', 'end': '2100-01-01'}}}\n"
        "c.BerthExtensionApp.sync_kernelspecs = False\n"
    )
    with running_lab(tmp_path, root, config, ready=("berth/api/info",)) as (url, token):
        yield url, token


def test_the_sidebar_shows_the_queue_with_places_cancels_and_shows_the_budget(lab, tmp_path):
    url, token = lab
    done = run_browser(["node", str(SCRIPT)], url, {**os.environ, "BERTH_UI_TOKEN": token}, cwd=REPO, timeout=300)
    server_log = lab_log(tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:] + "\nserver log:\n" + server_log
    assert "fair-share:" in done.stdout and "passed" in done.stdout

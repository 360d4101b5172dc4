"""The sidebar's queue, budget and Jobs view in a browser: a real JupyterLab with the Berth extensions,
Debian's Chromium driven by playwright-core (labextension/ui-tests/fair-share.e2e.mjs), real Docker kernels.
JupyterLab listens on a UNIX socket and the browser runs in a network namespace of its own (``unshare
--net``, loopback only, bridged to the socket): the shared engine adds and removes interfaces on the host
all the time (this test's containers, other runs' networks), and Chromium aborts requests in flight when it
sees that (ERR_NETWORK_CHANGED), which made the page fail at random.

The host is sized to hold one 0.75-CPU kernel (``cpu_overcommit``), the policy queues starts that find
no room and gives 20 CPU-hours for the term. The browser sees the remaining budget, two waiting starts
and a queued job each with its place, cancels a waiting start and the job from the sidebar, and sees
the last start get its turn when room frees.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(400)]

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "labextension" / "ui-tests" / "fair-share.e2e.mjs"


@pytest.fixture
def lab(tmp_path):
    """JupyterLab with the Berth server extension on a one-CPU host whose policy queues: (socket, token)."""
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
    import docker

    engine_cpus = docker.from_env().info()["NCPU"]
    config = tmp_path / "lab_config.py"
    config.write_text(
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
    if not shutil.which("unshare") or not shutil.which("ip"):
        pytest.skip("unshare and ip (util-linux, iproute2) are needed to give the browser a network of its own")
    sock, token = str(tmp_path / "lab.sock"), uuid.uuid4().hex
    env = {
        **os.environ,
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "lab-workspaces"),
    }
    log = open(tmp_path / "lab.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", f"--ServerApp.sock={sock}",
         f"--ServerApp.token={token}", f"--ServerApp.root_dir={root}", f"--config={config}"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = "http://127.0.0.1"
    client = httpx.Client(transport=httpx.HTTPTransport(uds=sock), timeout=60)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if client.get(f"{url}/api/status", params={"token": token}, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "lab.log").read_text()[-3000:]
            time.sleep(0.3)
        for path in ("lab", "lab/api/themes/@jupyterlab/theme-light-extension/index.css", "berth/api/info"):
            assert client.get(f"{url}/{path}", params={"token": token}).status_code == 200, path
        yield sock, token
    finally:
        client.close()
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_the_sidebar_shows_the_queue_with_places_cancels_and_shows_the_budget(lab, tmp_path):
    sock, token = lab
    env = {**os.environ, "BERTH_UI_SOCKET": sock, "BERTH_UI_TOKEN": token}
    isolated = ["unshare", "--net", "sh", "-c", 'ip link set lo up && exec node "$0"', str(SCRIPT)]
    done = subprocess.run(isolated, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    server_log = (tmp_path / "lab.log").read_text()[-3000:]
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:] + "\nserver log:\n" + server_log
    assert "fair-share:" in done.stdout and "passed" in done.stdout

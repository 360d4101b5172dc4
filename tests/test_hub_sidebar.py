"""The sidebar in hub mode, in a real browser: a hub user logs in, starts a server from the
spawn form (BerthSpawner, the single-user image with the built sidebar), and in that
server's JupyterLab starts a notebook from the sidebar whose kernel container has the
limits chosen. Every call of the sidebar goes to the hub's Berth service with the user's
token (labextension/ui-tests/hub-mode.e2e.mjs, Debian's Chromium through playwright-core)."""

from __future__ import annotations

import os

import pytest

from tests.browser_netns import require_browser, run_browser
from tests.hub_process import HubProcess, running, server_image_or_skip

pytestmark = [pytest.mark.docker, pytest.mark.slow]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    server_image_or_skip()
    with running(HubProcess(tmp_path_factory.mktemp("hubsidebar"), users=("alice",))) as h:
        yield h


def test_a_hub_user_starts_a_limited_kernel_from_the_sidebar(hub):
    require_browser()
    shots = os.environ.get("BERTH_UI_SCREENSHOTS", "")
    env = {
        **os.environ,
        "BERTH_UI_URL": hub.url,
        "BERTH_UI_USER": "alice",
        "BERTH_UI_PASSWORD": "berth-demo",
        "BERTH_UI_SCREENSHOTS": os.path.join(ROOT, "docs", "images") if shots not in ("", "0") else "",
    }
    # the browser in a network of its own where possible: the engine's interface changes abort its fetches
    script = ["node", os.path.join(ROOT, "labextension", "ui-tests", "hub-mode.e2e.mjs")]
    done = run_browser(script, hub.url, env, cwd=ROOT, timeout=400)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:] + "\n" + hub.log_tail(40)
    assert "hub-mode:" in done.stdout and "passed" in done.stdout

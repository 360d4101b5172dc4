"""The admin usage page, its CSV/JSON exports and /metrics, served by a small tornado app.

The app gives the handlers what the hub's Berth service gives them (``settings["berth_service"]``
and ``berth_identity()``), with identities picked by a test header, so the page, the admin check,
the exports and the CLI are tested against a real ledger without a hub. The page is rendered in
headless Chromium; with BERTH_REFRESH_SCREENSHOTS=1 the screenshot goes to docs/images/usage-page.png.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import shutil
import struct
import subprocess
import sys
from datetime import datetime, timezone

import pytest
from prometheus_client.parser import text_string_to_metric_families
from tornado import httpclient, httpserver, netutil, web
from traitlets.config import Config

from jupyter_berth.errors import BerthError
from jupyter_berth.hub.usage_page import usage_routes
from jupyter_berth.ledger import Ledger
from jupyter_berth.service import BerthService

from .usage_fixtures import SINCE, UNTIL, fill_busy_month, fill_known_history

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PREFIX = "/services/berth/"
USERS = {
    "admin": {"name": "root", "groups": [], "admin": True},
    "ada": {"name": "ada", "groups": ["physics"], "admin": False},
}
EVIL = {"=cmd|' /C calc'!A0": ["+evil"], "<script>alert(1)</script>": ["physics"], "@SUM(A1)": []}


class FakeHubIdentityHandler(web.RequestHandler):
    """Stands in for the hub service's base: identity from the X-Test-User header (default: admin)."""

    def get_current_user(self):
        return USERS.get(self.request.headers.get("X-Test-User", "admin"))

    def berth_identity(self) -> dict:
        who = self.current_user
        if not who:
            raise BerthError("authentication required: log in through the hub", status=401)
        return who


class Served:
    def __init__(self, service, url, server):
        self.service, self.url, self.server = service, url, server
        self.client = httpclient.AsyncHTTPClient()

    async def get(self, path: str, user: str = "admin", **params):
        from urllib.parse import urlencode

        url = f"{self.url}{path}" + (f"?{urlencode(params)}" if params else "")
        return await self.client.fetch(url, headers={"X-Test-User": user}, raise_error=False)


async def serve(ledger, config: Config | None = None, **settings) -> Served:
    service = BerthService(config=config or Config(), ledger=ledger)
    app = web.Application(
        [(PREFIX + p, h) for p, h in usage_routes(FakeHubIdentityHandler)], berth_service=service, **settings
    )
    sockets = netutil.bind_sockets(0, "127.0.0.1")
    server = httpserver.HTTPServer(app)
    server.add_sockets(sockets)
    return Served(service, f"http://127.0.0.1:{sockets[0].getsockname()[1]}{PREFIX}", server)


@pytest.fixture
async def served(tmp_path):
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger' / 'berth.sqlite'}")
    fill_known_history(ledger, extra_users=EVIL)
    s = await serve(ledger)
    try:
        yield s
    finally:
        s.server.stop()
        s.service._db_executor.shutdown(wait=False)
        ledger.close()


async def test_the_page_shows_the_table_and_three_plots(served):
    r = await served.get("usage", since=SINCE, until=UNTIL, by="group")
    assert r.code == 200 and r.headers["Content-Type"].startswith("text/html")
    page = r.body.decode()
    assert page.count("<svg") == 3
    assert "CPU core-hours used per day, per group" in page and "Top users by CPU core-hours allotted" in page
    assert "allotted vs used per day" in page and "<table" in page and ">physics<" in page and ">ml<" in page
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # names are escaped
    assert f'href="{PREFIX}usage.csv?since={SINCE}&amp;until={UNTIL}&amp;by=group"' in page
    filtered = (await served.get("usage", since=SINCE, until=UNTIL, group="ml")).body.decode()
    assert "— group ml" in filtered and ">ada<" in filtered and ">bob<" not in filtered


async def test_the_page_shows_group_totals_and_budgets_against_use(tmp_path):
    from jupyter_berth.admission import Admission
    from jupyter_berth.policies import PolicySpec, resolve
    from jupyter_berth.resources import Resources

    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger' / 'berth.sqlite'}")
    ledger.set_node_capacity("n1", 8, 64 * 1024**3)
    policy = {"group_totals": {"cpu": 16, "mem": "32G"}, "group_budget": {"cpu_hours": 800}}
    config = Config()
    config.BerthService.group_policies = {"class-a": policy}
    pol = resolve("ada", ("class-a",), None, {"class-a": PolicySpec.parse(policy, "group class-a")})
    Admission(ledger).reserve("ada", ["class-a"], pol, Resources(cpu=2, mem=4 * 1024**3), "kernel", "k", "img")
    s = await serve(ledger, config)
    try:
        page = (await s.get("usage")).body.decode()
        assert "<h2>Group totals now</h2>" in page and "<h2>Budgets this period</h2>" in page
        assert (
            '<tr><td>class-a</td><td>cpu</td><td class="num">2.00</td><td class="num">16.00</td>'
            '<td class="num">14.00</td></tr>' in page
        )
        assert '<td class="num">4 GiB</td><td class="num">32 GiB</td><td class="num">28 GiB</td>' in page
        assert "<tr><td>group class-a</td>" in page and '<td>cpu_hours</td><td class="num">800.00</td>' in page
    finally:
        s.server.stop()
        s.service._db_executor.shutdown(wait=False)
        ledger.close()


@pytest.mark.parametrize("path", ["usage", "usage.csv", "usage.json", "metrics"])
async def test_non_admins_are_refused_and_anonymous_callers_asked_to_log_in(served, path):
    r = await served.get(path, user="ada", since=SINCE, until=UNTIL)
    assert r.code == 403, r.body
    assert b"not an admin" in r.body
    assert (await served.get(path, user="nobody")).code == 401


async def test_bad_parameters_are_400_with_the_accepted_forms(served):
    r = await served.get("usage", since="soon")
    assert r.code == 400 and b"is not a time" in r.body and b"this-month" in r.body and b"30d" in r.body
    r = await served.get("usage.json", by="team")
    assert r.code == 400 and json.loads(r.body)["field"] == "by"
    assert "user, group, image, day" in json.loads(r.body)["message"]
    r = await served.get("usage.csv", color="blue")
    assert r.code == 400 and json.loads(r.body)["field"] == "color"
    assert "since, until, by, group, user, image" in json.loads(r.body)["message"]


def cli(*args) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "jupyter_berth.cli.app", "usage", *args], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_csv_json_and_the_cli_agree_row_for_row(served):
    params = {"since": SINCE, "until": UNTIL, "by": "user,group"}
    r_csv = await served.get("usage.csv", **params)
    assert r_csv.headers["Content-Type"].startswith("text/csv")
    assert 'filename="berth-usage-2026-03-11-2026-03-13-by-user-group.csv"' in r_csv.headers["Content-Disposition"]
    page_csv = list(csv.reader(io.StringIO(r_csv.body.decode())))
    page_json = json.loads((await served.get("usage.json", **params)).body)
    columns = page_json["columns"]
    assert page_csv[0] == columns and len(page_csv) - 1 == len(page_json["rows"]) >= 8
    # spreadsheet formulas cannot ride in on a user or group name
    for cells in page_csv[1:]:
        assert not any(c.startswith(("=", "+", "-", "@")) for c in cells[:2]), cells
    assert ["'=cmd|' /C calc'!A0", "'+evil"] in [cells[:2] for cells in page_csv]

    db = f"--db-url={served.service.ledger.engine.url.render_as_string(hide_password=False)}"
    args = [db, f"--since={SINCE}", f"--until={UNTIL}", "--by=user,group"]
    assert list(csv.reader(io.StringIO(cli(*args, "--format=csv")))) == page_csv
    cli_json = json.loads(cli(*args, "--format=json"))
    assert cli_json["rows"] == page_json["rows"] and cli_json["totals"] == page_json["totals"]
    table = cli(*args).splitlines()
    assert table[0].split() == columns and len(table) - 1 == len(page_json["rows"])
    for line, row in zip(table[1:], page_json["rows"]):  # the table's figures are the JSON's, in order
        figures = line.split()[-len(columns) + 2 :]
        assert figures == ["-" if row[c] is None else str(row[c]) for c in columns[2:]], line


async def test_metrics_for_prometheus(served, tmp_path):
    r = await served.get("metrics")
    assert r.code == 200 and r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    names = {f.name for f in text_string_to_metric_families(r.body.decode())}
    assert {
        "berth_capacity_cpu_cores",
        "berth_allocated_cpu_cores",
        "berth_live_allocations",
        "berth_queue_length",
        "berth_running_kernels",
        "berth_usage_cpu_seconds",
        "berth_usage_ended",
    } <= names
    public = await serve(served.service.ledger, berth_metrics_public=True)
    try:
        assert (await public.get("metrics", user="nobody")).code == 200
    finally:
        public.server.stop()
        public.service._db_executor.shutdown(wait=False)


def png_size(path: str) -> tuple[int, int]:
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR", "not a PNG"
    return struct.unpack(">II", head[16:24])


@pytest.mark.skipif(not shutil.which("chromium"), reason="Chromium is not installed (apt-get install -y chromium)")
async def test_the_page_renders_in_headless_chromium(tmp_path):
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger' / 'berth.sqlite'}")
    start = datetime(2026, 10, 1, tzinfo=timezone.utc)
    assert fill_busy_month(ledger, start) > 500
    s = await serve(ledger)
    shot = tmp_path / "usage-page.png"
    try:
        url = f"{s.url}usage?since=2026-10-01&until=2026-10-31&by=group"
        assert (await s.get("usage", since="2026-10-01", until="2026-10-31", by="group")).code == 200
        proc = await asyncio.create_subprocess_exec(
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
            f"--user-data-dir={tmp_path / 'chromium'}",
            "--window-size=1280,1400",
            f"--screenshot={shot}",
            url,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            _, err = await asyncio.wait_for(proc.communicate(), timeout=90)
        except asyncio.TimeoutError:
            proc.kill()
            raise
        assert shot.exists(), err.decode()[-2000:]
    finally:
        s.server.stop()
        s.service._db_executor.shutdown(wait=False)
        ledger.close()
    assert png_size(str(shot)) == (1280, 1400)
    assert shot.stat().st_size > 60_000  # text, three plots and a table, not a blank page
    if os.environ.get("BERTH_REFRESH_SCREENSHOTS"):  # a test run leaves the checkout as it found it
        os.makedirs(os.path.join(ROOT, "docs", "images"), exist_ok=True)
        shutil.copyfile(shot, os.path.join(ROOT, "docs", "images", "usage-page.png"))

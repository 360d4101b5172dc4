"""Usage reports: windows, groupings, the figures on a known history (SQLite and PostgreSQL),
CSV safety, Prometheus metrics, a real kernel under known load, and the sidebar's own-usage route."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from prometheus_client.parser import text_string_to_metric_families

from jupyter_berth.errors import RequestError
from jupyter_berth.ledger.models import UsageRecordRow
from jupyter_berth.usage.metrics import UsageTotals, exposition, snapshot
from jupyter_berth.usage.reports import FIGURES, build_report, csv_cell
from jupyter_berth.usage.window import parse_window

from .usage_fixtures import DAY1, DAY2, EXPECTED_BY_USER, NOW, SINCE, UNTIL, fill_known_history, h

GiB = 1024**3


def by_key(report, key="user"):
    return {row[key]: row for row in report.rows}


# -- windows and groupings ------------------------------------------------------------------------------


def test_windows_accept_dates_times_and_relative_forms():
    now = datetime(2026, 3, 18, 15, 30, tzinfo=timezone.utc)  # a Wednesday
    utc = timezone.utc
    assert parse_window("2026-03-01", "2026-03-31", now=now).until == datetime(2026, 4, 1, tzinfo=utc)  # whole last day
    assert parse_window("2026-02", "2026-02", now=now).until == datetime(2026, 3, 1, tzinfo=utc)
    w = parse_window("this-month", "this-month", now=now)
    assert (w.since, w.until) == (datetime(2026, 3, 1, tzinfo=utc), datetime(2026, 4, 1, tzinfo=utc))
    w = parse_window("last-month", "last-month", now=now)
    assert (w.since, w.until) == (datetime(2026, 2, 1, tzinfo=utc), datetime(2026, 3, 1, tzinfo=utc))
    assert parse_window("this-week", now=now).since == datetime(2026, 3, 16, tzinfo=utc)
    assert parse_window("30d", now=now).since == now - timedelta(days=30)
    assert parse_window("90min", "now", now=now).since == now - timedelta(minutes=90)
    assert parse_window(None, None, now=now) == parse_window("30d", "now", now=now)  # the defaults
    w = parse_window("2026-03-18T10:00:00+02:00", "2026-03-18T10:00Z", now=now)
    assert (w.since, w.until) == (datetime(2026, 3, 18, 8, tzinfo=utc), datetime(2026, 3, 18, 10, tzinfo=utc))


@pytest.mark.parametrize(
    "since, until, field, words",
    [
        ("yesterdayish", None, "since", "is not a time"),
        ("2026-13", None, "since", "month must be in 1..12"),
        ("2026-02-30", None, "since", "day is out of range"),
        ("", "soon", "until", "is not a time"),
        ("2026-03-02", "2026-03-01T00:00", "until", "must end after it starts"),
        ("9999999d", None, "since", "is not a time"),
    ],
)
def test_malformed_windows_name_the_field_and_the_accepted_forms(since, until, field, words):
    with pytest.raises(RequestError) as info:
        parse_window(since, until, now=NOW)
    assert info.value.status == 400 and info.value.field == field
    assert words in info.value.message
    if words == "is not a time":
        assert "2026-11-01" in info.value.message and "30d" in info.value.message and "this-month" in info.value.message


def test_unknown_groupings_are_refused_with_the_accepted_ones(ledger):
    for by in ("team", "user,user", "user;day"):
        with pytest.raises(RequestError) as info:
            build_report(ledger, SINCE, UNTIL, by)
        assert info.value.field == "by" and info.value.status == 400
    assert "user, group, image, day" in info.value.message


# -- the figures on a known history ------------------------------------------------------------------


def test_report_by_user_matches_the_known_history(ledger):
    fill_known_history(ledger)
    report = build_report(ledger, SINCE, UNTIL, "user", now=NOW)
    rows = by_key(report)
    assert set(rows) == set(EXPECTED_BY_USER)  # F ended before the window: not there
    for user, expected in EXPECTED_BY_USER.items():
        for figure, value in expected.items():
            assert rows[user][figure] == pytest.approx(value, abs=1e-3), (user, figure)
    assert rows["ada"]["cpu_used_ratio"] == pytest.approx(4.5 / 12, abs=1e-3)
    assert report.columns == ["user", *FIGURES]
    totals = report.totals
    assert (totals["kernels"], totals["servers"], totals["culled"]) == (4, 1, 1)
    assert totals["cpu_core_hours_allotted"] == pytest.approx(12 + 2 + 3 + 2)
    assert totals["mem_peak_gib"] == pytest.approx(3.0)


def test_kernels_spanning_midnight_split_by_their_samples(ledger):
    fill_known_history(ledger)
    days = {(r["user"], r["day"]): r for r in build_report(ledger, SINCE, UNTIL, "user,day", now=NOW).rows}
    d1, d2 = DAY1.date().isoformat(), DAY2.date().isoformat()
    # B ran 22:00–02:00: 1800 s before midnight and 3600 s after, by its samples (not 50/50 by time)
    assert days[("ada", d1)]["cpu_core_hours_used"] == pytest.approx(3 + 0.5)
    assert days[("ada", d2)]["cpu_core_hours_used"] == pytest.approx(1.0)
    assert days[("ada", d1)]["kernel_hours"] == pytest.approx(4 + 2) and days[("ada", d2)][
        "kernel_hours"
    ] == pytest.approx(2)
    assert days[("ada", d1)]["kernels"] == 2 and days[("ada", d2)]["kernels"] == 1
    # a window edge inside a sampled kernel: 00:30–01:30 of B is interpolated between its samples
    edge = build_report(ledger, h(DAY2, 0.5), h(DAY2, 1.5), "user", now=NOW)
    assert by_key(edge)["ada"]["cpu_core_hours_used"] == pytest.approx(0.5)  # 2700 → 4500 s (1800 then 1800/h)
    assert by_key(edge)["ada"]["kernel_hours"] == pytest.approx(1.0)


def test_groups_are_those_at_the_time_of_use(ledger):
    fill_known_history(ledger)
    groups = by_key(build_report(ledger, SINCE, UNTIL, "group", now=NOW), "group")
    assert set(groups) == {"physics", "ml", None}
    assert groups["physics"]["kernel_hours"] == pytest.approx(8.0)  # A and B
    # ml: B (ada had joined by then), D and the running E — not A, from before ada joined
    assert groups["ml"]["kernel_hours"] == pytest.approx(4 + 3 + 2)
    assert groups[None]["server_hours"] == pytest.approx(4.0)
    ml_users = by_key(build_report(ledger, SINCE, UNTIL, "user", group="ml", now=NOW))
    assert set(ml_users) == {"ada", "carol", "dave"} and ml_users["ada"]["kernel_hours"] == pytest.approx(4.0)
    # totals count each kernel once, whatever its groups
    assert build_report(ledger, SINCE, UNTIL, "group", now=NOW).totals["kernels"] == 4


def test_images_and_filters(ledger):
    fill_known_history(ledger)
    images = by_key(build_report(ledger, SINCE, UNTIL, "image", now=NOW), "image")
    assert images["berth/pytorch:2.4"]["kernels"] == 2 and images["berth/python:3.11"]["servers"] == 1
    only = build_report(ledger, SINCE, UNTIL, "day", user="carol", now=NOW)
    assert [r["culled"] for r in only.rows] == [1] and only.filters == {"user": "carol"}
    assert build_report(ledger, SINCE, UNTIL, "user", image="berth/pytorch:2.4", now=NOW).totals["kernels"] == 2
    empty = build_report(ledger, "2020-01-01", "2020-01-02", "user", now=NOW)
    assert empty.rows == [] and empty.totals["kernels"] == 0 and empty.totals["cpu_used_ratio"] is None


# -- formats ------------------------------------------------------------------------------------------


def test_csv_neutralises_formulas_and_agrees_with_json_and_table(ledger):
    evil = {'=HYPERLINK("http://x")': ["+grp"], "@SUM(A1)": ["ok"], "-2+3": [], "\tTAB": [], "plain": ["-x"]}
    fill_known_history(ledger, extra_users=evil)
    report = build_report(ledger, SINCE, UNTIL, "user,group", now=NOW)
    parsed = list(csv.reader(io.StringIO(report.to_csv())))
    assert parsed[0] == report.columns
    for cells in parsed[1:]:
        for cell in cells[:2]:
            assert not cell.startswith(("=", "+", "-", "@", "\t")), cell
    assert ['\'=HYPERLINK("http://x")', "'+grp"] == parsed[
        1 + [r["user"] for r in report.rows].index('=HYPERLINK("http://x")')
    ][:2]
    assert csv_cell("-x") == "'-x" and csv_cell(-2.5) == "-2.5" and csv_cell(None) == ""
    # row for row, the JSON has the same values (the CSV's text cells carry the neutralising quote)
    rows = json.loads(report.json_text())["rows"]
    assert len(rows) == len(parsed) - 1
    for row, cells in zip(rows, parsed[1:]):
        assert [csv_cell(row[c]) for c in report.columns] == cells
    table = report.to_table().splitlines()
    assert table[0].split() == report.columns and len(table) == len(rows) + 1


# -- metrics -----------------------------------------------------------------------------------------


def scrape(text: str) -> dict:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_prometheus_metrics_report_capacity_allocations_and_usage_totals(ledger):
    fill_known_history(ledger)
    totals = UsageTotals()
    m = scrape(exposition(snapshot(ledger, totals, now=NOW), queue_length=3))
    node = (("node", "test-node"),)
    assert m[("berth_capacity_cpu_cores", node)] == 8 and m[("berth_capacity_memory_bytes", node)] == 64 * GiB
    assert m[("berth_allocated_cpu_cores", node)] == 1.0  # dave's running kernel
    assert m[("berth_live_allocations", (("kind", "kernel"), ("node", "test-node")))] == 1
    assert m[("berth_running_kernels", (("image", "berth/pytorch:2.4"),))] == 1
    assert m[("berth_queue_length", ())] == 3
    assert m[("berth_usage_ended_total", (("kind", "kernel"), ("reason", "culled")))] == 1
    # CPU used: every finished record (A, B, D, F) plus the running kernel's last sample
    cpu = ("berth_usage_cpu_seconds_total", (("kind", "kernel"),))
    assert m[cpu] == pytest.approx(3 * 3600 + 5400 + 501 + 3600 + 1800)
    # new records are added incrementally; the counter only grows
    with ledger.transaction() as s:
        s.add(
            UsageRecordRow(
                allocation_id="late",
                owner="ada",
                groups=[],
                kind="kernel",
                subject="k",
                image="i",
                node="test-node",
                cpu=1,
                mem=GiB,
                gpu=0,
                started_at=h(DAY2, 3),
                ended_at=h(DAY2, 4),
                cpu_seconds=100.0,
                mem_peak_bytes=1,
                end_reason="shutdown",
            )
        )
    again = scrape(exposition(snapshot(ledger, totals, now=NOW)))
    assert again[cpu] == pytest.approx(m[cpu] + 100.0) and again[("berth_queue_length", ())] == 0


# -- a real kernel under known load --------------------------------------------------------------------


@pytest.mark.docker
async def test_a_kernel_under_known_load_is_reported_within_ten_percent(tmp_path):
    from jupyter_berth.runtime.docker import DockerRuntime
    from jupyter_berth.service import BerthService

    from .berth_fixtures import service_config

    service = BerthService(config=service_config(str(tmp_path / "data")), runtime=DockerRuntime())
    await service.start()
    kernel_id = f"load-{uuid.uuid4().hex[:8]}"
    try:
        launch = await service.start_kernel(
            "loadtest", ["lab"], kernel_id=kernel_id, request={"cpu": 0.5, "mem": "256M"}
        )
        ledger = service.ledger

        async def last_sample():
            await service.usage.sample_all()
            return (await asyncio.to_thread(ledger.samples, launch.allocation_id))[-1]

        previous = await last_sample()  # wait for ipykernel to finish starting: its CPU counter settles
        for _ in range(30):
            await asyncio.sleep(0.5)
            baseline = await last_sample()
            if baseline.cpu_seconds - previous.cpu_seconds < 0.01:
                break
            previous = baseline
        # a busy loop under the 0.5 CPU quota until it has used 2 CPU-seconds (about 4 s; longer when the
        # machine is busy), holding 150 MiB; the process reports the CPU it used
        code = (
            "import time\nb = bytearray(150 * 2**20)\nfor i in range(0, len(b), 4096): b[i] = 1\n"
            "t = time.time()\nwhile time.process_time() < 2.0 and time.time() - t < 40: pass\n"
            "print(time.process_time())"
        )

        def burn(api):
            exec_id = api.exec_create(launch.container_id, ["python3", "-c", code], user="1000")
            return api.exec_start(exec_id)

        busy = asyncio.ensure_future(service.runtime.docker(burn))
        while not busy.done():
            await asyncio.sleep(1.0)
            await service.usage.sample_all()
        spent = float((await busy).decode().strip().splitlines()[-1])
        assert 1.95 < spent < 2.2, spent
        await service.stop_kernel("loadtest", kernel_id, now=True)
        (record,) = await asyncio.to_thread(ledger.usage_records)
        until = datetime.now(timezone.utc)

        # the window that starts at the baseline sample: the load, and nothing of the kernel's start-up
        report = await service.usage.usage_report(baseline.at, until, "user")
        row = by_key(report)["loadtest"]
        print(
            f"busy loop spent {spent:.3f} CPU-s; report: {row['cpu_core_hours_used'] * 3600:.3f} CPU-s used, "
            f"peak {row['mem_peak_gib'] * 1024:.1f} MiB (baseline {baseline.mem_bytes / 2**20:.1f} MiB + 150)"
        )
        assert row["cpu_core_hours_used"] * 3600 == pytest.approx(spent, rel=0.10)
        held_h = (record.ended_at - baseline.at).total_seconds() / 3600
        assert row["cpu_core_hours_allotted"] == pytest.approx(0.5 * held_h, rel=0.01)
        assert row["mem_gib_hours_allotted"] == pytest.approx(0.25 * held_h, rel=0.01)
        assert row["mem_peak_gib"] * GiB == pytest.approx(baseline.mem_bytes + 150 * 2**20, rel=0.10)

        # the kernel's whole life: allotted memory × lifetime, and its groups at the time of use
        whole = by_key(await service.usage.usage_report("1h", "now", "group"), "group")["lab"]
        assert whole["kernel_hours"] == pytest.approx(record.seconds / 3600, rel=0.01)
        assert whole["mem_gib_hours_allotted"] == pytest.approx(0.25 * record.seconds / 3600, rel=0.01)
        assert whole["cpu_core_hours_used"] == pytest.approx(record.cpu_seconds / 3600, abs=1e-4)

        mine = await service.my_usage("loadtest", "1h", "now", groups=["lab"], by="day")
        assert mine["totals"]["kernels"] == 1 and mine["quota"]["in_use"]["kernels"] == 0
        assert mine["quota"]["limits"]["cpu"] is None and mine["quota"]["remaining"]["cpu"] is None  # no total limit
        assert (await service.my_usage("somebody-else", "1h", "now"))["rows"] == []
    finally:
        for alloc in await service.list_kernels():
            await service.stop_kernel(alloc.owner, alloc.subject, now=True)
        await service.stop()


# -- the sidebar's own-usage route (server extension) -----------------------------------------------


@pytest.fixture
def jp_server_config(tmp_path, monkeypatch):
    monkeypatch.setenv("BERTH_USER", "ada")  # the server's (standalone) user, read when the extension loads
    return {
        "ServerApp": {"jpserver_extensions": {"jupyter_berth.server": True}},
        "BerthExtensionApp": {"sync_kernelspecs": False},
        "BerthService": {
            "data_dir": str(tmp_path / "berth-data"),
            "default_policy": {"total_cpu": 4, "total_mem": "8G", "max_kernels": 3},
        },
        "UsageTracker": {"sample_interval": 0},
    }


@pytest.mark.docker
def test_sidebar_usage_route_shows_the_users_own_usage_and_quota(
    jp_asyncio_loop, jp_fetch, jp_serverapp, jp_base_url, http_server_client
):
    from jupyter_berth.kernels import backend

    async def fetch(**params):
        r = await jp_fetch("berth", "api", "usage", params=params, raise_error=False)
        return r.code, json.loads(r.body)

    async def check():
        r = await http_server_client.fetch(
            f"{jp_base_url}berth/api/usage", raise_error=False, headers={"Authorization": ""}
        )
        assert r.code in (401, 403)
        service = await backend.embedded_service(config=jp_serverapp.config)
        assert jp_serverapp.web_app.settings["berth"].user == "ada"
        await asyncio.to_thread(fill_known_history, service.ledger)
        code, body = await fetch(since=SINCE, until=UNTIL)
        assert code == 200 and body["user"] == "ada" and body["by"] == ["day"]
        assert [r["day"] for r in body["rows"]] == [DAY1.date().isoformat(), DAY2.date().isoformat()]
        assert body["totals"]["kernel_hours"] == pytest.approx(EXPECTED_BY_USER["ada"]["kernel_hours"])
        assert body["quota"]["limits"] == {
            "cpu": 4.0,
            "mem": 8 * GiB,
            "gpu": 0.0,
            "disk": None,
            "kernels": 3,
        }  # disk: no total_disk
        assert body["quota"]["remaining"]["kernels"] == 3
        for params, field in (({"user": "bob"}, "user"), ({"by": "user"}, "by"), ({"since": "whenever"}, "since")):
            code, err = await fetch(**params)
            assert code == 400 and err["field"] == field, (params, err)

    try:
        jp_asyncio_loop.run_until_complete(check())
    finally:
        jp_asyncio_loop.run_until_complete(backend.shutdown_embedded_service())

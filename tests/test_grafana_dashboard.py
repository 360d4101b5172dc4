"""The Grafana dashboard (docs/grafana/berth-dashboard.json) against real metrics: Debian's Prometheus
scrapes a real hub's ``/hub/metrics`` and its Berth service's ``/services/berth/metrics`` (through the
hub's proxy, with a token, as an admin would configure it) while a user's server and kernels run, and
every PromQL query of the dashboard must return series.

Also: the JSON is what scripts/grafana_dashboard.py writes, and it keeps grafana-dashboards'
conventions (a PROMETHEUS_DS datasource variable that every query names)."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from tests.hub_process import HubProcess, free_port, running

ROOT = Path(__file__).resolve().parent.parent
KERNEL_SPEC = "berth-python-3.11"


def _generator():
    spec = importlib.util.spec_from_file_location("grafana_dashboard", ROOT / "scripts" / "grafana_dashboard.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_shipped_json_is_the_generated_one_and_keeps_the_conventions():
    gen = _generator()
    board = __import__("json").loads((ROOT / "docs" / "grafana" / "berth-dashboard.json").read_text())
    assert board == gen.dashboard(), "run python scripts/grafana_dashboard.py"
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["PROMETHEUS_DS"]["type"] == "datasource" and variables["PROMETHEUS_DS"]["query"] == "prometheus"
    assert variables["node"]["includeAll"] and variables["node"]["allValue"] == ".*"
    assert "jupyterhub" in board["tags"] and board["uid"] == "berth-dashboard"
    targets = [t for p in board["panels"] for t in p.get("targets", [])]
    assert len(targets) >= 15 and all(t["datasource"]["uid"] == "$PROMETHEUS_DS" for t in targets)
    for panel in board["panels"]:
        if panel["type"] == "timeseries":
            assert panel["fieldConfig"]["defaults"]["min"] == 0 and panel["options"]["tooltip"]["mode"] == "multi"


def as_promql(query: str) -> str:
    """A dashboard query as Prometheus takes it: Grafana's variables filled in as the dashboard's "All" does."""
    label_values = re.fullmatch(r"label_values\((\w+),\s*\w+\)", query)
    if label_values:
        return label_values.group(1)
    return query.replace("$__rate_interval", "1m").replace("$node", ".*")


def prometheus(tmp_path: Path, hub: HubProcess) -> tuple[subprocess.Popen, str]:
    """Debian's prometheus on a loopback port, scraping the hub and its Berth service every second."""
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        textwrap.dedent(f"""\
        global: {{scrape_interval: 1s, evaluation_interval: 1s}}
        scrape_configs:
          - job_name: berth
            metrics_path: /services/berth/metrics
            authorization: {{credentials: {hub.admin_token}}}
            static_configs: [{{targets: ["127.0.0.1:{hub.port}"]}}]
          - job_name: jupyterhub
            metrics_path: /hub/metrics
            authorization: {{credentials: {hub.admin_token}}}
            static_configs: [{{targets: ["127.0.0.1:{hub.port}"]}}]
        """)
    )
    log = open(tmp_path / "prometheus.log", "wb")
    proc = subprocess.Popen(
        [
            shutil.which("prometheus") or "/usr/bin/prometheus",
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return proc, f"http://127.0.0.1:{port}"


def query(url: str, promql: str) -> list:
    r = httpx.get(f"{url}/api/v1/query", params={"query": promql}, timeout=10)
    assert r.status_code == 200 and r.json()["status"] == "success", (promql, r.text)
    return r.json()["data"]["result"]


def wait_ready(hub: HubProcess, user: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        server = httpx.get(f"{hub.api}/users/{user}", headers=hub.headers, timeout=30).json()["servers"].get("")
        if server and server.get("ready"):
            return
        assert server and server.get("pending"), f"{user}'s spawn failed:\n{hub.log_tail()}"
        time.sleep(0.3)
    raise AssertionError(f"{user}'s server was not ready in {timeout} s\n{hub.log_tail()}")


def session(hub: HubProcess, user: str, name: str) -> dict:
    r = httpx.post(
        f"{hub.url}/user/{user}/api/sessions",
        headers=hub.headers,
        timeout=90,
        json={"path": name, "type": "notebook", "name": name, "kernel": {"name": KERNEL_SPEC}},
    )
    assert r.status_code == 201, f"{r.status_code} {r.text}\n{hub.log_tail()}"
    return r.json()


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.skipif(not shutil.which("prometheus"), reason="Debian's prometheus is not installed (scripts/test.sh)")
def test_every_dashboard_query_returns_series_from_a_real_hub(tmp_path):
    gen = _generator()
    hub = HubProcess(tmp_path / "hub", users=("alice", "teacher"))
    with running(hub):
        r = httpx.post(
            f"{hub.api}/users/alice/server", headers=hub.headers, json={"cpu": 0.5, "mem": "512M"}, timeout=60
        )
        assert r.status_code in (201, 202), r.text
        wait_ready(hub, "alice")
        first = session(hub, "alice", "a.ipynb")  # a kernel that ends (usage_ended_total)...
        r = httpx.delete(f"{hub.url}/user/alice/api/sessions/{first['id']}", headers=hub.headers, timeout=60)
        assert r.status_code == 204, r.text
        session(hub, "alice", "b.ipynb")  # ...and one that keeps running (running_kernels)

        proc, url = prometheus(tmp_path, hub)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    up = {s["metric"]["job"]: s["value"][1] for s in query(url, "up")}
                except httpx.TransportError:
                    up = {}
                if up == {"berth": "1", "jupyterhub": "1"}:
                    break
                assert time.monotonic() < deadline, (up, (tmp_path / "prometheus.log").read_text()[-3000:])
                time.sleep(0.5)
            time.sleep(5)  # a few scrapes, so rate() and increase() have two samples in their window
            empty = [q for q in gen.queries() if not query(url, as_promql(q))]
            assert not empty, f"dashboard queries without series: {empty}"
            kernels = query(url, "sum by (image) (berth_running_kernels)")
            assert [k["metric"]["image"] for k in kernels] == ["berth/python:3.11"]
            ended = query(url, 'berth_usage_ended_total{kind="kernel"}')
            assert sum(float(s["value"][1]) for s in ended) >= 1
        finally:
            proc.terminate()
            proc.wait(30)

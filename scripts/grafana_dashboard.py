"""Write docs/grafana/berth-dashboard.json, the Grafana dashboard of Berth's metrics.

The dashboard follows jupyterhub/grafana-dashboards' conventions (its ``common.libsonnet``): a
``PROMETHEUS_DS`` datasource variable every query names, multi-value variables with an "All" of
``.*``, time series starting at 0 with a shared tooltip, step lines and light fill, rows of
12 × 10 panels, the ``jupyterhub`` tag. Written by this script rather than by hand so that the
queries live in one list (tests/test_grafana_dashboard.py runs each against Prometheus).

    python scripts/grafana_dashboard.py          # rewrite the JSON
    python scripts/grafana_dashboard.py --check  # exit 1 if the JSON is not what this writes

Sources: the Berth service's ``/services/berth/metrics`` (jupyter_berth.usage.metrics) and the hub's
``/hub/metrics`` (the spawn queue, jupyter_berth.hub.queue_metrics, and JupyterHub's own
``jupyterhub_server_spawn_duration_seconds``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "docs" / "grafana" / "berth-dashboard.json"
DS = {"type": "prometheus", "uid": "$PROMETHEUS_DS"}
NODE = '{node=~"$node"}'

#: (row title, [(panel title, unit, description, [(expr, legend)], kind)])
ROWS = [
    (
        "Capacity and allocation",
        [
            (
                "CPU cores: allotted and capacity",
                "short",
                "Cores held by live kernels and servers (admission's view) against what each host offers "
                "(cores × cpu_overcommit).",
                [
                    (f"sum by (node) (berth_allocated_cpu_cores{NODE})", "{{node}} allotted"),
                    (f"sum by (node) (berth_capacity_cpu_cores{NODE})", "{{node}} capacity"),
                ],
                "timeseries",
            ),
            (
                "Memory: allotted and capacity",
                "bytes",
                "Memory limits held by live kernels and servers against what each host offers (after mem_reserved).",
                [
                    (f"sum by (node) (berth_allocated_memory_bytes{NODE})", "{{node}} allotted"),
                    (f"sum by (node) (berth_capacity_memory_bytes{NODE})", "{{node}} capacity"),
                ],
                "timeseries",
            ),
            (
                "GPU shares: allotted and devices",
                "short",
                "GPU shares held (0.25 is a quarter of a device) against the devices each host has.",
                [
                    (f"sum by (node) (berth_allocated_gpu_shares{NODE})", "{{node}} shares allotted"),
                    (f"sum by (node) (berth_capacity_gpu_devices{NODE})", "{{node}} devices"),
                ],
                "timeseries",
            ),
            (
                "Hosts taking new kernels",
                "short",
                "1 while a host is ready for new kernels, 0 while it is drained or down.",
                [(f"berth_node_ready{NODE}", "{{node}}")],
                "timeseries",
            ),
        ],
    ),
    (
        "Kernels and servers",
        [
            (
                "Live kernels and servers",
                "short",
                "Reserved or running kernels and user servers.",
                [(f"sum by (kind) (berth_live_allocations{NODE})", "{{kind}}")],
                "timeseries",
            ),
            (
                "Running kernels by image version",
                "short",
                "Live kernels per image reference: which environments are in use.",
                [("sum by (image) (berth_running_kernels)", "{{image}}")],
                "stacked",
            ),
            (
                "Waiting for room",
                "short",
                "Servers in the hub's spawn queue (waiting; let through and still booting, bounded by "
                "c.BerthSpawner.max_starting) and kernel starts waiting in the service.",
                [
                    ("sum(berth_spawn_queue_waiting)", "servers waiting"),
                    ("sum(berth_spawn_queue_starting)", "servers starting"),
                    ("sum(berth_queue_length)", "kernel starts waiting"),
                ],
                "timeseries",
            ),
            (
                "Ended, by reason",
                "short",
                "Kernels and servers that ended in each interval: shutdown, culled (idle), oom (over their "
                "memory limit), lost, failed, lifetime.",
                [
                    (
                        "sum by (kind, reason) (increase(berth_usage_ended_total[$__rate_interval]))",
                        "{{kind}} {{reason}}",
                    )
                ],
                "points",
            ),
            (
                "Server start times",
                "s",
                "JupyterHub's spawn duration histogram: with Berth it includes the time a spawn waited in the queue.",
                [
                    (
                        "sum by (le) (increase(jupyterhub_server_spawn_duration_seconds_bucket[$__rate_interval]))",
                        "{{le}}",
                    )
                ],
                "heatmap",
            ),
        ],
    ),
    (
        "Usage",
        [
            (
                "CPU: used and allotted",
                "short",
                "Cores in use (CPU seconds per second) against cores allotted, for kernels and servers.",
                [
                    ("sum by (kind) (rate(berth_usage_cpu_seconds_total[$__rate_interval]))", "{{kind}} used"),
                    (
                        "sum by (kind) (rate(berth_usage_allotted_core_seconds_total[$__rate_interval]))",
                        "{{kind}} allotted",
                    ),
                ],
                "timeseries",
            ),
            (
                "CPU efficiency (used / allotted)",
                "percentunit",
                "How much of the allotted CPU is used: low values mean the policies' defaults are generous.",
                [
                    (
                        "sum by (kind) (rate(berth_usage_cpu_seconds_total[$__rate_interval]))"
                        " / sum by (kind) (rate(berth_usage_allotted_core_seconds_total[$__rate_interval]))",
                        "{{kind}}",
                    )
                ],
                "timeseries",
            ),
            (
                "Memory allotted",
                "bytes",
                "Memory limits held on average over each interval (byte-seconds per second).",
                [
                    (
                        "sum by (kind) (rate(berth_usage_memory_allotted_byte_seconds_total[$__rate_interval]))",
                        "{{kind}}",
                    )
                ],
                "timeseries",
            ),
            (
                "GPU shares held",
                "short",
                "GPU shares held on average over each interval (share-seconds per second).",
                [("sum by (kind) (rate(berth_usage_gpu_share_seconds_total[$__rate_interval]))", "{{kind}}")],
                "timeseries",
            ),
            (
                "Kernels and servers held (average)",
                "short",
                "How many kernels and servers were held on average over each interval.",
                [("sum by (kind) (rate(berth_usage_seconds_total[$__rate_interval]))", "{{kind}}")],
                "timeseries",
            ),
        ],
    ),
]


def _target(expr: str, legend: str, ref: str, fmt: str | None = None) -> dict:
    target = {"datasource": DS, "expr": expr, "legendFormat": legend, "refId": ref, "intervalFactor": 1}
    if fmt:
        target["format"] = fmt
    return target


def _panel(pid: int, title: str, unit: str, description: str, queries: list, kind: str, x: int, y: int) -> dict:
    refs = "ABCDEFGH"
    if kind == "heatmap":
        return {
            "id": pid,
            "type": "heatmap",
            "title": title,
            "description": description,
            "datasource": DS,
            "gridPos": {"h": 10, "w": 12, "x": x, "y": y},
            "options": {"calculate": False, "yAxis": {"unit": unit, "min": 0}},
            "targets": [_target(e, lg, refs[i], "heatmap") for i, (e, lg) in enumerate(queries)],
        }
    custom = {"lineInterpolation": "stepAfter", "fillOpacity": 10}
    if kind == "stacked":
        custom["stacking"] = {"mode": "normal"}
    if kind == "points":
        custom["drawStyle"] = "points"
    return {
        "id": pid,
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": DS,
        "gridPos": {"h": 10, "w": 12, "x": x, "y": y},
        "fieldConfig": {"defaults": {"min": 0, "unit": unit, "custom": custom}, "overrides": []},
        "options": {"tooltip": {"mode": "multi"}, "legend": {"displayMode": "list", "placement": "bottom"}},
        "targets": [_target(e, lg, refs[i]) for i, (e, lg) in enumerate(queries)],
    }


def dashboard() -> dict:
    panels, pid, y = [], 1, 0
    for row_title, row_panels in ROWS:
        panels.append(
            {
                "id": pid,
                "type": "row",
                "title": row_title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
            }
        )
        pid, y = pid + 1, y + 1
        for i, spec in enumerate(row_panels):
            panels.append(_panel(pid, *spec, x=12 * (i % 2), y=y + 10 * (i // 2)))
            pid += 1
        y += 10 * ((len(row_panels) + 1) // 2)
    variables = [
        {
            "name": "PROMETHEUS_DS",
            "label": "Data source",
            "type": "datasource",
            "query": "prometheus",
            "hide": 1,  # value only, as grafana-dashboards' showOnDashboard.withValueOnly()
        },
        {
            "name": "node",
            "label": "Host",
            "type": "query",
            "datasource": DS,
            "query": {
                "qryType": 1,
                "query": "label_values(berth_node_ready, node)",
                "refId": "PrometheusVariableQueryEditor-VariableQuery",
            },
            "definition": "label_values(berth_node_ready, node)",
            "multi": True,
            "includeAll": True,
            "allValue": ".*",
            "refresh": 2,
            "sort": 1,
        },
    ]
    return {
        "title": "Berth",
        "uid": "berth-dashboard",
        "description": "jupyter-berth: capacity, allocations, queues and usage of kernels and servers.",
        "tags": ["jupyterhub", "berth"],
        "editable": True,
        "schemaVersion": 39,
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "1m",
        "timezone": "utc",
        "templating": {"list": variables},
        "panels": panels,
        "annotations": {"list": []},
    }


def queries(board: dict | None = None) -> list[str]:
    """Every PromQL expression of the dashboard: its panels' targets and its variables' queries."""
    board = board or dashboard()
    found = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    return found + [v["definition"] for v in board["templating"]["list"] if v["type"] == "query"]


def render() -> str:
    return json.dumps(dashboard(), indent=2) + "\n"


if __name__ == "__main__":
    if "--check" in sys.argv[1:]:
        if not OUT.exists() or OUT.read_text() != render():
            print(f"{OUT} is not what scripts/grafana_dashboard.py writes: run it", file=sys.stderr)
            sys.exit(1)
        sys.exit(0)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(render())
    print(f"wrote {OUT} ({len(queries())} queries)")

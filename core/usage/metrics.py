"""Prometheus metrics: live allocations, capacity, queue length, kernels by image, usage totals.

:func:`snapshot` reads the ledger (blocking; call it from a thread) and
:func:`exposition` turns a snapshot into Prometheus' text format with a
``CollectorRegistry`` of its own (never the process-global one, so several
services or tests in one process do not collide). Names, all prefixed ``berth_``:

Gauges
    ``capacity_cpu_cores``, ``capacity_memory_bytes``, ``capacity_gpu_devices``
    and ``node_ready`` per ``node``; ``allocated_cpu_cores``,
    ``allocated_memory_bytes``, ``allocated_gpu_shares`` per ``node`` (what live
    allocations hold); ``live_allocations`` per ``node`` and ``kind``;
    ``running_kernels`` per ``image``; ``queue_length`` (start requests waiting
    for room; 0 where there is no queue).
Counters (since the ledger began; records pruned later stay counted)
    ``usage_cpu_seconds_total`` (CPU used), ``usage_allotted_core_seconds_total``,
    ``usage_seconds_total`` (time held), ``usage_memory_allotted_byte_seconds_total``,
    ``usage_gpu_share_seconds_total`` per ``kind``; ``usage_ended_total`` per
    ``kind`` and ``reason`` (``shutdown``, ``culled``, ``oom``...). Finished
    records are summed once and then incrementally (by record id), so a scrape
    stays cheap on a ledger of millions of records; running kernels add their
    last sample and their time so far.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from sqlalchemy import text

from ..ledger.models import LIVE_STATES
from .sql import Dialect

#: The content type a ``/metrics`` endpoint answers with.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: Counter names (without ``berth_`` and ``_total``) → the column of the sums below.
USAGE_COUNTERS = {
    "usage_cpu_seconds": ("cpu_s", "CPU time used by kernels and servers, in seconds."),
    "usage_allotted_core_seconds": ("core_s", "CPU cores allotted × seconds held."),
    "usage_seconds": ("held_s", "Seconds kernels and servers were held (wall clock)."),
    "usage_memory_allotted_byte_seconds": ("mem_s", "Memory limit in bytes × seconds held."),
    "usage_gpu_share_seconds": ("gpu_s", "GPU share × seconds held."),
}
_SUMS = tuple(col for col, _ in USAGE_COUNTERS.values())


@dataclass
class UsageTotals:
    """Sums over finished usage records, kept up to date incrementally by record id."""

    last_id: int = 0
    #: (kind, reason) → {"count", "cpu_s", "core_s", "held_s", "mem_s", "gpu_s"}
    sums: dict = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def refresh(self, ledger) -> dict:
        """Add the records written since the last call; returns a copy of the sums."""
        d = Dialect(ledger.dialect)
        held = f"({d.epoch('ended_at')} - {d.epoch('started_at')})"
        sql = text(f"""
            SELECT kind, end_reason, MAX(id), COUNT(*), SUM(cpu_seconds), SUM(cpu * {held}), SUM({held}),
                   SUM(mem * {held}), SUM(gpu * {held})
            FROM usage_records WHERE id > :last GROUP BY kind, end_reason""")
        with self.lock:
            with ledger.reading() as s:
                rows = s.execute(sql, {"last": self.last_id}).all()
            for kind, reason, max_id, count, *values in rows:
                entry = self.sums.setdefault((kind, reason), {"count": 0, **{c: 0.0 for c in _SUMS}})
                entry["count"] += int(count)
                for col, v in zip(_SUMS, values):
                    entry[col] += float(v or 0.0)
                self.last_id = max(self.last_id, int(max_id))
            return {k: dict(v) for k, v in self.sums.items()}


def _live_sums(ledger, now: datetime) -> dict:
    """Per kind: what running kernels and servers have used and held so far."""
    d = Dialect(ledger.dialect)
    held = f"(:now_ep - {d.epoch('COALESCE(started_at, created_at)')})"
    states = ", ".join(f"'{s}'" for s in LIVE_STATES)
    sql = text(f"""
        SELECT kind, SUM(COALESCE(cpu_seconds, 0.0)), SUM(cpu * {held}), SUM({held}), SUM(mem * {held}),
               SUM(gpu * {held})
        FROM allocations WHERE state IN ({states}) GROUP BY kind""")
    with ledger.reading() as s:
        rows = s.execute(sql, {"now_ep": now.timestamp()}).all()
    return {kind: {col: max(0.0, float(v or 0.0)) for col, v in zip(_SUMS, values)} for kind, *values in rows}


def snapshot(ledger, totals: UsageTotals, now: datetime | None = None) -> dict:
    """Everything a scrape reports, read from the ledger (blocking)."""
    now = now or datetime.now(timezone.utc)
    nodes = ledger.nodes()
    by_node = ledger.node_usage()
    states = ", ".join(f"'{s}'" for s in LIVE_STATES)
    with ledger.reading() as s:
        live = s.execute(
            text(f"SELECT node, kind, COUNT(*) FROM allocations WHERE state IN ({states}) GROUP BY node, kind")
        ).all()
        images = s.execute(
            text(
                f"SELECT image, COUNT(*) FROM allocations WHERE state IN ({states}) AND kind = 'kernel' GROUP BY image"
            )
        ).all()
    return {
        "at": now,
        "nodes": [{"name": n.name, "cpu": n.cpu, "mem": n.mem, "gpus": len(n.gpu), "state": n.state} for n in nodes],
        "allocated": {name: {"cpu": u.cpu, "mem": u.mem, "gpu": u.gpu} for name, u in by_node.items()},
        "live": [(node, kind, int(n)) for node, kind, n in live],
        "images": [(image, int(n)) for image, n in images],
        "finished": totals.refresh(ledger),
        "running": _live_sums(ledger, now),
    }


class _SnapshotCollector:
    """A prometheus_client collector that yields one snapshot's families."""

    def __init__(self, snap: dict, queue_length: int):
        self.snap, self.queue_length = snap, queue_length

    def collect(self):
        snap = self.snap
        node_gauges = [
            ("capacity_cpu_cores", "CPU cores this host offers to kernels (after overcommit).", "cpu"),
            ("capacity_memory_bytes", "Memory this host offers to kernels, in bytes.", "mem"),
            ("capacity_gpu_devices", "GPU devices on this host.", "gpus"),
        ]
        for name, doc, key in node_gauges:
            g = GaugeMetricFamily(f"berth_{name}", doc, labels=["node"])
            for n in snap["nodes"]:
                g.add_metric([n["name"]], float(n[key]))
            yield g
        ready = GaugeMetricFamily("berth_node_ready", "1 when the host takes new kernels, else 0.", labels=["node"])
        for n in snap["nodes"]:
            ready.add_metric([n["name"]], 1.0 if n["state"] == "ready" else 0.0)
        yield ready
        for name, doc, key in (
            ("allocated_cpu_cores", "CPU cores held by live allocations.", "cpu"),
            ("allocated_memory_bytes", "Memory held by live allocations, in bytes.", "mem"),
            ("allocated_gpu_shares", "GPU shares held by live allocations.", "gpu"),
        ):
            g = GaugeMetricFamily(f"berth_{name}", doc, labels=["node"])
            for n in snap["nodes"]:
                g.add_metric([n["name"]], float(snap["allocated"].get(n["name"], {}).get(key, 0)))
            yield g
        live = GaugeMetricFamily(
            "berth_live_allocations", "Reserved or running kernels and servers.", labels=["node", "kind"]
        )
        for node, kind, n in snap["live"]:
            live.add_metric([node, kind], float(n))
        yield live
        images = GaugeMetricFamily("berth_running_kernels", "Live kernels per image (version).", labels=["image"])
        for image, n in snap["images"]:
            images.add_metric([image], float(n))
        yield images
        yield GaugeMetricFamily(
            "berth_queue_length", "Start requests waiting for room.", value=float(self.queue_length)
        )
        kinds = sorted({k for k, _ in snap["finished"]} | set(snap["running"]))
        for name, (col, doc) in USAGE_COUNTERS.items():
            c = CounterMetricFamily(f"berth_{name}", doc, labels=["kind"])
            for kind in kinds:
                done = sum(v[col] for (k, _), v in snap["finished"].items() if k == kind)
                c.add_metric([kind], done + snap["running"].get(kind, {}).get(col, 0.0))
            yield c
        ended = CounterMetricFamily(
            "berth_usage_ended", "Kernels and servers that ended, by why.", labels=["kind", "reason"]
        )
        for (kind, reason), v in sorted(snap["finished"].items()):
            ended.add_metric([kind, reason], float(v["count"]))
        yield ended


def exposition(snap: dict, queue_length: int = 0) -> str:
    """The snapshot in Prometheus' text exposition format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_SnapshotCollector(snap, int(queue_length or 0)))
    return generate_latest(registry).decode()


__all__ = ["CONTENT_TYPE", "UsageTotals", "exposition", "snapshot"]

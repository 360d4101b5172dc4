"""The spawn queue on JupyterHub's own Prometheus endpoint (``/hub/metrics``).

The queue lives in the hub process (``BerthSpawner``'s pre-spawn admission), not in the
Berth service, so its length is exported where the hub exports its own metrics: JupyterHub
serves ``prometheus_client``'s default registry at ``/hub/metrics``. Two gauges:
``berth_spawn_queue_waiting`` (servers waiting for room, in order) and
``berth_spawn_queue_starting`` (servers let through that are still booting; bounded by
``c.BerthSpawner.max_starting``). The Berth service's ``/metrics`` keeps its own
``berth_queue_length`` for kernel starts (no queue there: 0).
"""

from __future__ import annotations

from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily


class SpawnQueueCollector:
    def __init__(self, queue):
        self.queue = queue

    def collect(self):
        yield GaugeMetricFamily(
            "berth_spawn_queue_waiting",
            "Servers waiting in Berth's spawn queue for room.",
            value=float(self.queue.waiting),
        )
        yield GaugeMetricFamily(
            "berth_spawn_queue_starting",
            "Servers Berth let start that are still starting.",
            value=float(self.queue.starting),
        )


_collector: SpawnQueueCollector | None = None


def export(queue, registry=REGISTRY) -> SpawnQueueCollector:
    """Export ``queue`` (once per process; a later queue replaces the earlier one)."""
    global _collector
    if _collector is None:
        _collector = SpawnQueueCollector(queue)
        registry.register(_collector)
    else:
        _collector.queue = queue
    return _collector

"""Usage: the service's usage tracker (``service.usage``, settings ``c.UsageTracker.*``).

It samples the running containers' counters into the ledger, builds the usage reports and the
Prometheus metrics. Identity is an argument here as everywhere in the service: the front ends
decide who may see what (an admin every report, a user their own).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable

from traitlets import Any, Float
from traitlets import Callable as CallableTrait

from ..area import AreaManager
from ..errors import BerthError
from ..runtime.base import ContainerInfo
from .reports import Report, build_report


def quota_json(summary: dict) -> dict:
    """A user's totals from :meth:`BerthService.policy_summary`: the policy's limits, what their live
    kernels and servers hold and what is left. Memory and disk in bytes; ``None`` where there is no limit."""
    policy = summary["policy"]
    limits = {
        key: policy.get(field)
        for key, field in (
            ("cpu", "total_cpu"),
            ("mem", "total_mem"),
            ("gpu", "total_gpu"),
            ("disk", "total_disk"),
            ("kernels", "max_kernels"),
        )
    }
    return {
        "limits": {k: None if v in (None, "unlimited") else v for k, v in limits.items()},
        "in_use": dict(summary["usage"]),
        "remaining": dict(summary["remaining"]),
    }


class UsageTracker(AreaManager):
    """Usage (``service.usage``): samples running containers, builds reports and metrics."""

    sample_interval = Float(15.0, config=True, help="Seconds between usage samples of running containers (0 disables).")
    disk_interval = Float(
        60.0,
        config=True,
        help="Seconds between measurements of running containers' writable layers, when the engine cannot "
        "enforce disk limits itself (measured mode, docs/disk-limits.md): a measurement walks the layer's "
        "files, so it runs less often than sampling (at most once per sampling round).",
    )
    disk_grace = Float(
        60.0,
        config=True,
        help="Seconds a kernel or server over its disk limit (measured mode) has to free space after its "
        "warning before it is stopped.",
    )
    live_allocations = CallableTrait(
        help="async () → the live allocations the service runs (on this host, or on every Swarm host): what is sampled."
    )
    after_round = CallableTrait(
        None,
        allow_none=True,
        help="async () → anything: run after every sampling round (the service's budget and idle rules, "
        ":meth:`~jupyter_berth.fair_share.FairShare.apply_usage_rules`).",
    )
    extra_metrics = CallableTrait(
        None,
        allow_none=True,
        help="async () → Prometheus text appended to :meth:`metrics_text` (the service's budgets).",
    )
    queue_length = Any(
        None,
        allow_none=True,
        help="How many start requests wait for room: a callable (sync or async) or a number; the hub's queue sets it. "
        "None: 0.",
    )

    def __init__(self, **kw):
        super().__init__(**kw)
        self._sampler: asyncio.Task | None = None
        self._usage_totals = None

    # ---- sampling ---------------------------------------------------------------------------
    def start_sampling(self) -> None:
        """Sample every ``sample_interval`` seconds in the background (nothing when 0)."""
        if self.sample_interval > 0 and self._sampler is None:
            self._sampler = asyncio.ensure_future(self._sample_loop())
        if self.runtime is not None:  # how disk limits hold here: detected (and logged) at start, not at first use
            self._disk_probe = asyncio.ensure_future(self._detect_disk_mode())

    async def _detect_disk_mode(self) -> None:
        try:
            await self.runtime.disk_mode()  # logs "Berth disk limits: <mode>, because …" (runtime/disk_quota.py)
        except BerthError as e:
            self.log.warning("Berth disk limits: unknown, the engine did not answer (%s)", e.message)

    def stop_sampling(self) -> None:
        if self._sampler is not None:
            self._sampler.cancel()
            self._sampler = None

    async def sample_one(self, alloc, info: ContainerInfo | None = None):
        """Sample one allocation's container now and record it; its usage (None: no container, or gone)."""
        if not alloc.container_id:
            return None
        usage = await self.runtime.usage(alloc.container_id)
        if usage is not None:
            await self._db(
                self.ledger.record_sample,
                alloc.id,
                usage.cpu_seconds,
                usage.mem_bytes,
                usage.pids,
                at=usage.at,
                mem_peak_bytes=usage.mem_peak_bytes or None,
            )
        return usage

    async def sample_all(self) -> int:
        """Sample every running container once; returns how many were sampled.

        The counters are read concurrently (cgroup files, not the engine's stats stream) and the
        round is written in one ledger transaction (``sampling.record_samples``).
        """
        from .sampling import record_samples

        allocs = [a for a in await self.live_allocations() if a.container_id]
        results = await asyncio.gather(*(self.runtime.usage(a.container_id) for a in allocs), return_exceptions=True)
        batch = []
        for alloc, usage in zip(allocs, results):
            if isinstance(usage, BerthError):
                self.log.debug("Could not sample %s: %s", alloc.id, usage.message)
            elif isinstance(usage, BaseException):
                raise usage
            elif usage is not None:
                batch.append((alloc.id, usage))
        await self._db(record_samples, self.ledger, batch)
        return len(batch)

    async def _sample_loop(self):
        while True:
            await asyncio.sleep(self.sample_interval)
            try:
                await self.sample_all()
                if self.after_round is not None:
                    await self.after_round()  # idle by utilization, budgets
            except Exception:  # keep sampling whatever one round did
                self.log.exception("Usage sampling failed")

    # ---- reports and metrics ------------------------------------------------------------------
    async def usage_report(
        self,
        since=None,
        until=None,
        by="user",
        *,
        user: str | None = None,
        group: str | None = None,
        image: str | None = None,
    ) -> Report:
        """The usage report for ``[since, until)`` grouped ``by`` (``user``, ``group``, ``image``, ``day``
        or a comma-separated combination), optionally for one user, group or image.

        Admin-only at every front end (a user's own: :meth:`BerthService.my_usage`). Raises
        ``RequestError`` (400) for a malformed window or grouping.
        """
        return await self._db(build_report, self.ledger, since, until, by, user=user, group=group, image=image)

    async def metrics_text(self, queue_length: Callable[[], int | Awaitable[int]] | int | None = None) -> str:
        """Prometheus text exposition of capacity, live allocations, queue length and usage totals."""
        source = queue_length if queue_length is not None else self.queue_length
        waiting = source() if callable(source) else source
        if inspect.isawaitable(waiting):
            waiting = await waiting
        from . import metrics  # prometheus_client is needed only here

        if self._usage_totals is None:
            self._usage_totals = metrics.UsageTotals()
        snap = await self._db(metrics.snapshot, self.ledger, self._usage_totals)
        extra = await self.extra_metrics() if self.extra_metrics is not None else ""
        return metrics.exposition(snap, int(waiting or 0)) + extra


__all__ = ["UsageTracker", "quota_json"]

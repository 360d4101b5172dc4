"""Disk limits where the engine cannot enforce them: measure, warn, then stop.

:func:`enforce` runs after every usage-sampling round (``FairShare.apply_usage_rules``), and does
its work at most every ``c.UsageTracker.disk_interval`` seconds (measuring a writable layer walks
its files), on every runtime that can measure a container's layer (``runtime/disk_quota.py``). In
``measured`` mode this is what holds kernels to their limit. In ``enforced`` mode the engine makes a
write over the container's quota fail, and the measurement only catches a container whose quota is
larger than its grant (a warm-pool container made with the default limit, adopted by a kernel granted
less).

For each running kernel and server on this service's hosts:

- at :data:`WARN_AT` of its limit, one ``warned`` notice (rule ``disk_near``);
- over its limit, one ``warned`` notice (rule ``disk``) saying it will be stopped unless it frees
  space within ``c.UsageTracker.disk_grace`` seconds;
- still over when the grace has passed: stopped, its usage record's end reason ``disk`` and its
  message the figures (``disk: 2.1 GiB written, limit 2 GiB; …``), with a ``stopped`` notice.

Notices are the budget notices' rows (``budget_notices``): the sidebar and ``GET berth/api/budget``
show them, once per kernel and rule.
"""

from __future__ import annotations

import asyncio
import math
import time

from .budget_enforcement import record_notice
from .errors import NotFoundError
from .ledger.models import RUNNING
from .resources import format_bytes
from .runtime.disk_quota import NONE

#: End reason of a kernel or server stopped for writing more than its disk limit.
DISK_REASON = "disk"
#: The share of its limit at which a kernel or server is warned that it is close.
WARN_AT = 0.9
_PERIOD = "lifetime"  #: a disk notice is once per kernel, not per budget period


def schedule(usage) -> dict:
    """How often :func:`enforce` measures, from the ``UsageTracker`` settings (for ``GET berth/api/info``):
    ``interval_s`` the seconds between measurements (at sampling rounds, at least ``disk_interval`` apart),
    ``None`` when sampling is off (then nothing measures); ``grace_s`` the time one over its limit has."""
    sample = usage.sample_interval
    rounds = max(1, math.ceil(usage.disk_interval / sample - 1e-9)) if sample > 0 else None
    return {"interval_s": rounds * sample if rounds else None, "grace_s": usage.disk_grace}


def over_message(written: int, limit: int) -> str:
    return f"disk: {format_bytes(written)} written, limit {format_bytes(limit)}"


async def enforce(service, now: float | None = None) -> list[tuple[str, str, str]]:
    """Measure, warn and stop as the module doc says; ``[(action, subject, rule), ...]`` for this round."""
    if (await service.runtime.disk_mode()).mode == NONE:
        return []
    now = time.monotonic() if now is None else now
    state = service.__dict__.setdefault("_disk_rounds", {"last": None, "over_since": {}})
    if state["last"] is not None and now - state["last"] < service.usage.disk_interval:
        return []
    state["last"] = now
    live = [
        a
        for a in await service._live_here()
        if a.kind in ("kernel", "server") and a.state == RUNNING and a.container_id
    ]
    over_since: dict[str, float] = state["over_since"]
    for gone in set(over_since) - {a.id for a in live}:
        del over_since[gone]
    at_once = asyncio.Semaphore(MEASURE_AT_ONCE)
    sizes = await asyncio.gather(*(_measure(service.runtime, a.container_id, at_once) for a in live))
    grace = service.usage.disk_grace
    done: list[tuple[str, str, str]] = []
    for a, written in zip(live, sizes):
        limit = int(a.resources.disk)
        what = "kernel" if a.kind == "kernel" else "server"
        if written is None:
            continue
        if written <= limit:
            over_since.pop(a.id, None)
            if written >= WARN_AT * limit:
                message = (
                    f"disk: {format_bytes(written)} written of the {what}'s limit of {format_bytes(limit)}; "
                    f"over it, the {what} is stopped; delete files it no longer needs (files in your volume "
                    "and folders do not count)"
                )
                if await _notice(service, a, "disk_near", "warned", message):
                    done.append(("warned", a.subject, "disk_near"))
            continue
        since = over_since.setdefault(a.id, now)
        if now - since < grace:
            message = (
                f"{over_message(written, limit)}; the {what} is stopped in {grace:g} s unless it frees "
                f"{format_bytes(written - limit)} (files in your volume and folders do not count)"
            )
            if await _notice(service, a, DISK_REASON, "warned", message):
                service.log.info("Warned %s about %s %s: %s", a.owner, what, a.subject, message)
                done.append(("warned", a.subject, DISK_REASON))
            continue
        message = (
            f"{over_message(written, limit)}, so the {what} was stopped; start a new one, or ask for more disk "
            f"(your policy's max_disk bounds it)"
        )
        await _notice(service, a, DISK_REASON, "stopped", message)
        try:
            if a.kind == "kernel":
                await service.stop_kernel(a.owner, a.subject, DISK_REASON, message=message)
            else:
                await service.release_server(a, a.container_id, DISK_REASON, message, remove=True)
        except NotFoundError:
            continue  # it ended meanwhile
        over_since.pop(a.id, None)
        service.log.warning("Stopped %s %s of %s: %s", what, a.subject, a.owner, message)
        done.append(("stopped", a.subject, DISK_REASON))
    return done


#: Measurements at once: each holds one of the runtime's engine threads while the engine walks a layer
#: (about half a second for 50,000 files, docs/benchmarks.md), and kernel starts need them too.
MEASURE_AT_ONCE = 2


async def _measure(runtime, container_id: str, at_once: asyncio.Semaphore) -> int | None:
    async with at_once:
        return await runtime.disk_written(container_id)


async def _notice(service, alloc, rule: str, action: str, message: str) -> bool:
    return await service._db(record_notice, service.ledger, alloc.id, alloc.owner, rule, _PERIOD, action, message)

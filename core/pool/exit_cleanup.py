"""The warm pool at the end of a process that never stopped its service (nbclient, a plain KernelManager).

At interpreter exit the event loop may be closed and thread pools refuse new work, so
:meth:`WarmPool.drain` cannot run. :func:`remove_now` does its essential part with blocking calls
only: the pool's own unadopted containers (by their ``pool_run`` label) are removed and their
hand-over slots released; adopted kernels, and what was handed to them, are left alone.
"""

from __future__ import annotations

from ..runtime.labels import key


def remove_now(pool) -> int:
    """Remove ``pool``'s unadopted containers and release their slots (blocking); how many were removed."""
    if pool is None:
        return 0
    pool._closed = True
    client = getattr(pool.runtime, "client", None)
    if client is None:
        return 0
    removed = 0
    wanted = {"label": [f"{key('site')}={pool.site}", f"{key('pool_run')}={pool.run_id}"]}
    for c in client.containers.list(all=True, filters=wanted):
        if c.id in pool._adopted:
            continue
        c.remove(force=True)
        removed += 1
        name = c.labels.get(key("subject"))
        if name and not pool.handover.unavailable:
            pool.handover.handover.release(name)
    if not pool.handover.unavailable:
        pool.handover.handover.teardown()
    return removed


__all__ = ["remove_now"]

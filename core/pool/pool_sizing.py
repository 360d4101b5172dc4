"""How many containers the warm pool keeps: by demand, within its memory reserve.

Pure functions of the pool's state (``_KeyState``: ``ready`` and ``starting``) and its
demand (per pool, the monotonic times of recent adoptions), so they are tested without an engine.
"""

from __future__ import annotations

import time
from collections import deque


def target(recent: deque | None, size: int, max_size: int, window: float, now: float | None = None) -> int:
    """Ready containers wanted for one pool: ``size``, or the adoptions of the last ``window`` seconds
    when they are more (a burst of starts), at most ``max_size``. Forgets adoptions older than the window."""
    now = time.monotonic() if now is None else now
    while recent and recent[0] < now - window:
        recent.popleft()
    return max(size, min(max_size, len(recent or ())))


def room(reserve: int, per_container: int, states) -> int:
    """How many more pool containers the memory ``reserve`` holds, each at its idle limit ``per_container``."""
    held = sum(len(s.ready) + s.starting for s in states)
    return max(0, reserve // max(1, per_container) - held)


def least_wanted(keys, demand: dict) -> list:
    """Pools in the order to drop them: never adopted from first, then by their last adoption."""
    return sorted(keys, key=lambda k: demand[k][-1] if demand.get(k) else 0.0)


__all__ = ["least_wanted", "room", "target"]

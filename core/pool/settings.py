"""What both pools share: the limits of a container while it waits, and the timing of fills and activations.

:class:`~.warm_pool.WarmPool` (kernels) and :class:`~.server_pool.ServerPool` (single-user servers)
are configured as ``c.WarmPool.<setting>`` and ``c.ServerPool.<setting>``; ``c.PoolSettings.<setting>``
sets both. Each pool has its own defaults (:attr:`PoolSettings.defaults`): a waiting server needs more
room than a waiting kernel, and a hub spawn has less patience for its activation.
"""

from __future__ import annotations

from traitlets import Float, Integer, Unicode, default
from traitlets.config import LoggingConfigurable

from ..resources import Resources, parse_memory


def _pool_default(name: str):
    """The default of setting ``name`` is the pool's own (``defaults``)."""
    return default(name)(lambda self: self.defaults[name])


class PoolSettings(LoggingConfigurable):
    """The settings both pools declare once; a pool sets its ``defaults``."""

    #: each pool's default for every setting below
    defaults: dict = {}

    shm = Unicode(
        config=True,
        help="Shared memory (/dev/shm) of pool containers. It cannot change on a running container, so a start "
        "asking for more starts cold, and an adopted container keeps this much whatever it asked (tmpfs pages "
        "still count against its memory limit).",
    )
    idle_cpu = Float(config=True, help="CPU limit of a pool container until it is adopted (its imports run under it).")
    idle_mem = Unicode(config=True, help="Memory limit of a pool container until it is adopted (at least its shm).")
    idle_pids = Integer(config=True, help="Process limit of a pool container until it is adopted.")
    refill_delay = Float(
        config=True,
        help="Seconds after an adoption before its replacement starts (so that the replacement's imports do not "
        "compete for CPU with the container just adopted).",
    )
    ready_timeout = Float(config=True, help="Seconds a new pool container gets to finish its imports.")
    activation_timeout = Float(config=True, help="Seconds an adopted container gets to answer its activation.")
    retry_delay = Float(config=True, help="Seconds before a pool whose last container failed to start tries again.")

    _shm_default = _pool_default("shm")
    _idle_cpu_default = _pool_default("idle_cpu")
    _idle_mem_default = _pool_default("idle_mem")
    _idle_pids_default = _pool_default("idle_pids")
    _refill_delay_default = _pool_default("refill_delay")
    _ready_timeout_default = _pool_default("ready_timeout")
    _activation_timeout_default = _pool_default("activation_timeout")
    _retry_delay_default = _pool_default("retry_delay")

    def idle_resources(self) -> Resources:
        """The limits of a waiting container: ``idle_*``, its memory at least its ``shm``."""
        section = type(self).__name__
        shm = parse_memory(self.shm, f"{section}.shm")
        mem = parse_memory(self.idle_mem, f"{section}.idle_mem")
        return Resources(cpu=self.idle_cpu, mem=max(mem, shm), pids=self.idle_pids, shm=shm)


__all__ = ["PoolSettings"]

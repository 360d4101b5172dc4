"""Runtimes: where berth containers run.

:class:`Runtime` is the interface the service uses, an ABC that is also a traitlets configurable
(settings ``c.<RuntimeClass>.*``); :class:`DockerRuntime` runs containers on one Docker engine;
``SwarmRuntime`` (:mod:`.swarm`) on a Docker Swarm; :class:`ProcessRuntime` runs kernels as
local processes (limits, no isolation) where no engine exists; :mod:`.choice` picks one for the
service (``c.BerthService.runtime_kind``). Labels (:mod:`.labels`) tie each container to its
owner, kernel and ledger allocation; :mod:`.cgroups` reads usage counters straight from the
host's cgroup files.
"""

from .base import ContainerInfo, ContainerSpec, ContainerUsage, Mount, Runtime
from .docker import DockerRuntime
from .labels import PREFIX, make_labels, parse_labels
from .process import ProcessRuntime

__all__ = [
    "ContainerInfo",
    "ContainerSpec",
    "ContainerUsage",
    "DockerRuntime",
    "Mount",
    "PREFIX",
    "ProcessRuntime",
    "Runtime",
    "make_labels",
    "parse_labels",
]

"""Runtimes: where berth containers run.

:class:`Runtime` is the interface the service uses; :class:`DockerRuntime`
runs containers on one Docker engine. Labels (:mod:`.labels`) tie each
container to its owner, kernel and ledger allocation; :mod:`.cgroups` reads
usage counters straight from the host's cgroup files.
"""

from .base import ContainerInfo, ContainerSpec, ContainerUsage, Mount, Runtime
from .docker import DockerRuntime
from .labels import PREFIX, make_labels, parse_labels

__all__ = [
    "ContainerInfo",
    "ContainerSpec",
    "ContainerUsage",
    "DockerRuntime",
    "Mount",
    "PREFIX",
    "Runtime",
    "make_labels",
    "parse_labels",
]

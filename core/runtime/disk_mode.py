"""How a runtime holds containers to their ``disk`` limit (the modes of ``disk_quota.py``, which detects
them on the Docker engine). Imports nothing of the runtime, so that ``base.py`` can name the default."""

from __future__ import annotations

from dataclasses import dataclass

ENFORCED, MEASURED, NONE = "enforced", "measured", "none"
#: The engine feature a kind's ``engine_feature`` names for a writable-layer quota.
DISK_QUOTA = "disk_quota"


@dataclass(frozen=True)
class DiskMode:
    """How a runtime holds containers to their ``disk`` limit."""

    mode: str  #: ``enforced``, ``measured`` or ``none``
    why: str  #: in words: what was found, and what an admin can change
    driver: str | None = None
    backing: str | None = None
    image_counted: bool = False  #: the engine counts the image's files in the size (btrfs)

    @property
    def features(self) -> frozenset[str]:
        return frozenset({DISK_QUOTA}) if self.mode == ENFORCED else frozenset()

    def to_json(self) -> dict:
        return {"mode": self.mode, "why": self.why, "driver": self.driver, "backing_filesystem": self.backing}


#: Runtimes that cannot bound or measure a container's disk (process kernels; Swarm tasks).
UNBOUNDED = DiskMode(NONE, "this runtime bounds no disk use (no container layer Berth can measure or limit)")

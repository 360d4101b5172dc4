"""What the ledger hands back: plain frozen dataclasses, never live ORM rows.

The ledger is called from threads (the async service runs it in an executor),
so it returns immutable snapshots that can cross threads and outlive their
session: no lazy loading, no accidental writes. JSON lists come back as
tuples; mappings as dicts (do not mutate them).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from ..resources import BUILTIN_KINDS, Resources, resource_kinds
from .models import LIVE_STATES, AllocationRow, NodeRow, ProfileRow, UsageRecordRow, UsageSampleRow


def snapshot(cls, row, **converted):
    """``cls`` (a dataclass) from an ORM row: every field read by name; ``converted`` overrides some
    (JSON lists as tuples, mappings as dicts), so the snapshot shares nothing mutable with the row."""
    values = {f.name: getattr(row, f.name) for f in fields(cls) if f.name not in converted}
    return cls(**values, **converted)


@dataclass(frozen=True)
class Node:
    """A host and its capacity."""

    name: str
    cpu: float
    mem: int
    gpu: tuple[Mapping[str, Any], ...]
    labels: Mapping[str, Any]
    state: str
    updated_at: datetime

    @classmethod
    def from_row(cls, row: NodeRow) -> Node:
        return snapshot(cls, row, gpu=tuple(row.gpu or ()), labels=dict(row.labels or {}))


@dataclass(frozen=True)
class Allocation:
    """Resources held for one kernel or server (see ``models.AllocationRow``)."""

    id: str
    owner: str
    groups: tuple[str, ...]
    kind: str
    subject: str
    image: str
    image_digest: str | None
    node: str
    cpu: float
    mem: int
    pids: int
    shm: int
    gpu: float
    gpu_devices: tuple[Mapping[str, Any], ...] | None
    state: str
    container_id: str | None
    created_at: datetime
    started_at: datetime | None
    released_at: datetime | None
    release_reason: str | None
    cpu_seconds: float | None
    mem_bytes: int | None
    mem_peak_bytes: int | None
    sampled_at: datetime | None
    server: str | None = None  #: the hub server that started the kernel ("" the default one; None: none)
    extra: tuple[tuple[str, float], ...] = ()  #: registered resource kinds beyond the built-ins with a column

    @property
    def live(self) -> bool:
        """Reserved or running: counts against capacity and the owner's totals."""
        return self.state in LIVE_STATES

    @property
    def resources(self) -> Resources:
        return Resources(cpu=self.cpu, mem=self.mem, pids=self.pids, shm=self.shm, gpu=self.gpu, extra=self.extra)

    @classmethod
    def from_row(cls, row: AllocationRow) -> Allocation:
        extra = tuple(
            (k.name, getattr(row, k.name))
            for k in resource_kinds()
            if k.name not in BUILTIN_KINDS and hasattr(AllocationRow, k.name) and getattr(row, k.name) is not None
        )
        return snapshot(
            cls,
            row,
            groups=tuple(row.groups or ()),
            gpu_devices=None if row.gpu_devices is None else tuple(row.gpu_devices),
            extra=tuple(sorted(extra)),
        )


@dataclass(frozen=True)
class UsageRecord:
    """What one allocation used, from start (or reservation) to release."""

    id: int
    allocation_id: str
    owner: str
    groups: tuple[str, ...]
    kind: str
    subject: str
    image: str
    image_digest: str | None
    node: str
    cpu: float
    mem: int
    gpu: float
    started_at: datetime
    ended_at: datetime
    cpu_seconds: float
    mem_peak_bytes: int
    end_reason: str
    exit_code: int | None
    message: str | None

    @property
    def seconds(self) -> float:
        """Wall-clock seconds the allocation was held."""
        return max(0.0, (self.ended_at - self.started_at).total_seconds())

    @classmethod
    def from_row(cls, row: UsageRecordRow) -> UsageRecord:
        return snapshot(cls, row, groups=tuple(row.groups or ()))


@dataclass(frozen=True)
class UsageSample:
    allocation_id: str
    at: datetime
    cpu_seconds: float
    mem_bytes: int
    pids: int | None

    @classmethod
    def from_row(cls, row: UsageSampleRow) -> UsageSample:
        return snapshot(cls, row)


@dataclass(frozen=True)
class Profile:
    """A user's default profile."""

    user: str
    request: Mapping[str, Any]
    image: str | None
    updated_at: datetime

    @classmethod
    def from_row(cls, row: ProfileRow) -> Profile:
        return snapshot(cls, row, request=dict(row.request or {}))


@dataclass(frozen=True)
class Usage:
    """Sums over live allocations (of a user, or on a node)."""

    cpu: float = 0.0
    mem: int = 0
    gpu: float = 0.0
    kernels: int = 0
    servers: int = 0
    extra: tuple[tuple[str, float], ...] = ()  #: sums of registered resource kinds beyond cpu, mem and gpu

    def get(self, kind: str) -> float:
        """What is in use of a resource kind (0 for a kind the ledger does not total)."""
        if kind in ("cpu", "mem", "gpu"):
            return getattr(self, kind)
        return dict(self.extra).get(kind, 0)

    @property
    def count(self) -> int:
        return self.kernels + self.servers

    def describe(self) -> str:
        """``"2 kernels and 1 server"``, ``"1 kernel"``, ``"nothing"``."""
        parts = []
        for n, word in ((self.kernels, "kernel"), (self.servers, "server")):
            if n:
                parts.append(f"{n} {word}{'s' if n != 1 else ''}")
        return " and ".join(parts) or "nothing"

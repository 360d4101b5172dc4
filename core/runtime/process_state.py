"""What the process runtime remembers about its kernels: one small JSON file each.

A process kernel has no engine that keeps its state, so :class:`ProcessRuntime`
writes one record per "container" under its state directory
(``<state_dir>/<id>.json``, written atomically) and a working directory beside it
(``<state_dir>/<id>/``: the connection file, the output log, the folders
directory). A restarted service reads them back: a record whose process still
runs is adopted, one whose process is gone is reported as exited.

A pid alone does not name a process for long (pids are reused), so a record also
keeps the process's start time in clock ticks since boot (``/proc/<pid>/stat``
field 22) and the boot id: a process counts as the kernel only when both match.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone

BOOT_ID_FILE = "/proc/sys/kernel/random/boot_id"
#: Exit code reported for a kernel whose end was not seen (it was started by an earlier
#: server process, so its exit status went to another parent); Docker uses the same value.
UNKNOWN_EXIT = 255


@dataclass
class ProcessRecord:
    """One process kernel as the runtime remembers it."""

    id: str
    name: str
    labels: dict
    image: str
    image_id: str
    pid: int
    start_ticks: int
    boot_id: str
    created: str  #: ISO time the record was written
    started_at: str
    ip: str
    ports: dict = field(default_factory=dict)
    limits: dict = field(default_factory=dict)  #: what enforces the limits (see process_limits.LimitPlan.report)
    cgroup: dict = field(default_factory=dict)  #: controller (or "unified") → directory, when in a cgroup
    workdir: str = ""
    status: str = "running"
    exit_code: int | None = None
    oom_killed: bool = False
    finished_at: str | None = None

    @classmethod
    def from_json(cls, data: dict) -> ProcessRecord:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat()


def boot_id() -> str:
    try:
        with open(BOOT_ID_FILE, encoding="ascii") as f:
            return f.read().strip()
    except OSError:
        return ""


def proc_stat(pid: int) -> tuple[str, int, int] | None:
    """``(state letter, session id, start time in ticks)`` of a process, or ``None`` when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            text = f.read()
    except (OSError, ValueError):
        return None
    # the command name (field 2) is in parentheses and may hold spaces: split after its last ')'
    rest = text[text.rfind(")") + 2 :].split()
    try:
        return rest[0], int(rest[3]), int(rest[19])
    except (IndexError, ValueError):
        return None


def is_alive(record: ProcessRecord) -> bool:
    """True when the record's process runs (not a zombie) and is the one the record started."""
    if record.boot_id and record.boot_id != boot_id():
        return False
    stat = proc_stat(record.pid)
    return stat is not None and stat[0] not in ("Z", "X") and stat[2] == record.start_ticks


class StateDir:
    """The records of one runtime (one JSON file each) and their working directories."""

    def __init__(self, path: str):
        self.path = os.path.abspath(os.path.expanduser(path))

    def ensure(self) -> None:
        os.makedirs(self.path, mode=0o700, exist_ok=True)

    def workdir(self, container_id: str) -> str:
        return os.path.join(self.path, container_id)

    def _file(self, container_id: str) -> str:
        return os.path.join(self.path, f"{container_id}.json")

    def save(self, record: ProcessRecord) -> None:
        self.ensure()
        path = self._file(record.id)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="utf-8") as f:
            json.dump(asdict(record), f, indent=1, sort_keys=True)
        os.replace(tmp, path)

    def load(self, container_id: str) -> ProcessRecord | None:
        try:
            with open(self._file(container_id), encoding="utf-8") as f:
                return ProcessRecord.from_json(json.load(f))
        except (OSError, ValueError, TypeError):
            return None

    def all(self) -> list[ProcessRecord]:
        try:
            names = sorted(os.listdir(self.path))
        except OSError:
            return []
        found = []
        for name in names:
            if name.endswith(".json"):
                record = self.load(name[: -len(".json")])
                if record is not None:
                    found.append(record)
        return found

    def find(self, id_or_name: str) -> ProcessRecord | None:
        """By id (the whole id, or a unique prefix of at least 12 characters) or by name."""
        if not id_or_name or "/" in id_or_name:
            return None
        record = self.load(id_or_name)
        if record is not None:
            return record
        records = self.all()
        by_name = [r for r in records if r.name == id_or_name]
        if by_name:
            return by_name[0]
        if len(id_or_name) >= 12:
            prefixed = [r for r in records if r.id.startswith(id_or_name)]
            if len(prefixed) == 1:
                return prefixed[0]
        return None

    def delete(self, container_id: str) -> None:
        try:
            os.unlink(self._file(container_id))
        except FileNotFoundError:
            pass

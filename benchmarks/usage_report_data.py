"""The usage report benchmark's data: reproducible usage records, their bulk load into SQLite or
PostgreSQL, and a month's figures recomputed in Python (the check on the report).

Used by ``usage_report.py``.
"""

from __future__ import annotations

import json
import random
import time
from datetime import datetime, timedelta, timezone

YEAR = 2025
MONTHS = ("2025-02", "2025-07", "2025-12")
GiB = 1024**3
COLUMNS = (
    "allocation_id",
    "owner",
    "groups",
    "kind",
    "subject",
    "image",
    "image_digest",
    "node",
    "cpu",
    "mem",
    "gpu",
    "started_at",
    "ended_at",
    "cpu_seconds",
    "mem_peak_bytes",
    "end_reason",
    "exit_code",
    "message",
)
IMAGES = (
    "berth/python:3.11",
    "berth/python:3.12",
    "berth/pytorch:2.4",
    "berth/pytorch:2.5",
    "berth/r:4.4",
    "berth/julia:1.11",
)


# -- data --------------------------------------------------------------------------------------
def generate(n: int, users: int, seed: int = 7) -> list[tuple]:
    """``n`` records as tuples in COLUMNS order (times as aware datetimes), reproducibly.

    In the order the service writes them: when each kernel ended.
    """
    return sorted(_records(n, users, seed), key=lambda r: r[12])


def _records(n: int, users: int, seed: int):
    rng = random.Random(seed)
    groups = [f"group-{i:02d}" for i in range(40)]
    membership = [sorted(set(rng.sample(groups, rng.choice((1, 1, 1, 2, 3))))) for _ in range(users)]
    weights = [1.0 / (i + 1) ** 0.8 for i in range(users)]  # a few heavy users, a long tail
    owners = rng.choices(range(users), weights=weights, k=n)
    year0 = datetime(YEAR, 1, 1, tzinfo=timezone.utc)
    span = 365 * 86400
    for i, u in enumerate(owners):
        start = year0 + timedelta(seconds=rng.uniform(0, span))
        hours = min(72.0, rng.lognormvariate(0.3, 1.0))
        end = start + timedelta(hours=hours)
        kind = "server" if rng.random() < 0.1 else "kernel"
        cpu = rng.choice((0.5, 1.0, 1.0, 2.0, 4.0))
        mem = rng.choice((1, 2, 2, 4, 8, 16)) * GiB
        gpu = rng.choice((0.0,) * 8 + (0.25, 0.5, 1.0))
        cpu_s = cpu * hours * 3600 * rng.uniform(0.02, 0.9)
        reason = rng.choices(("shutdown", "culled", "oom", "exited"), weights=(85, 10, 1, 4))[0]
        yield (
            f"bench-{i:08d}",
            f"user-{u:04d}",
            membership[u],
            kind,
            f"k-{i}",
            rng.choice(IMAGES),
            None,
            "bench-node",
            cpu,
            mem,
            gpu,
            start,
            end,
            cpu_s,
            int(mem * rng.uniform(0.05, 0.95)),
            reason,
            None,
            None,
        )


def _sqlite_time(t: datetime) -> str:
    """How SQLAlchemy stores a naive-UTC DateTime in SQLite."""
    return t.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")


def fill_sqlite(ledger, records: list[tuple]) -> float:
    t0 = time.perf_counter()
    raw = ledger.engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute("BEGIN IMMEDIATE")
        sql = f"INSERT INTO usage_records ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
        cur.executemany(
            sql,
            ((*r[:2], json.dumps(r[2]), *r[3:11], _sqlite_time(r[11]), _sqlite_time(r[12]), *r[13:]) for r in records),
        )
        cur.execute("COMMIT")
    finally:
        raw.close()
    return time.perf_counter() - t0


def fill_postgres(ledger, records: list[tuple]) -> float:
    t0 = time.perf_counter()
    raw = ledger.engine.raw_connection()
    try:
        cur = raw.cursor()
        with cur.copy(f"COPY usage_records ({', '.join(COLUMNS)}) FROM STDIN") as copy:
            for r in records:
                copy.write_row(
                    (
                        *r[:2],
                        json.dumps(r[2]),
                        *r[3:11],
                        r[11].replace(tzinfo=None),
                        r[12].replace(tzinfo=None),
                        *r[13:],
                    )
                )
        raw.commit()
        cur.execute("ANALYZE usage_records")  # what autovacuum does within a minute of such a load
        raw.commit()
    finally:
        raw.close()
    return time.perf_counter() - t0


def expected_month(records: list[tuple], month: str) -> dict:
    """One month's figures per user, computed in Python from the generated records (the check)."""
    from jupyter_berth.usage.window import parse_window

    w = parse_window(month, month)
    out: dict[str, dict] = {}
    for r in records:
        s, e = max(r[11], w.since), min(r[12], w.until)
        if e <= s:
            continue
        h = (e - s).total_seconds() / 3600
        whole = (r[12] - r[11]).total_seconds() / 3600
        row = out.setdefault(r[1], {"kernel_hours": 0.0, "cpu_core_hours_allotted": 0.0, "cpu_core_hours_used": 0.0})
        if r[3] == "kernel":
            row["kernel_hours"] += h
        row["cpu_core_hours_allotted"] += r[8] * h
        row["cpu_core_hours_used"] += r[13] / 3600 * (h / whole)  # no samples: pro-rated by time
    return out

"""Known usage history for the report tests: records, samples and a live allocation at chosen times.

Written straight into a real ledger (SQLite or PostgreSQL) through its ORM, so the figures a
report must show can be worked out by hand (see ``EXPECTED_BY_USER``). Times (UTC):

* ``A`` ada, groups physics, berth/python:3.11, kernel, 2 CPU, 4 GiB, 0.5 GPU: day 1 10:00–14:00,
  3 CPU-hours, no samples.
* ``B`` ada, groups physics+ml (she joined ml later), berth/pytorch:2.4, kernel, 1 CPU, 2 GiB: day 1
  22:00 – day 2 02:00; samples 23:00 → 0 s, 00:00 → 1800 s, 01:00 → 3600 s; 5400 s in all.
* ``C`` bob, no group, berth/python:3.11, server, 0.5 CPU, 1 GiB: day 0 20:00 – day 1 04:00 (half of
  it before the window), 7200 s, no samples (pro-rated by time: 3600 s in the window).
* ``D`` carol, ml, berth/python:3.11, kernel culled, 1 CPU, 1 GiB: day 1 12:00–15:00; samples every
  30 min: busy until 13:00 (500 s) then idle (501 s at the end): 2 idle hours culled.
* ``E`` dave, ml, berth/pytorch:2.4, a kernel still running: started ``NOW`` − 2 h, 1 CPU, 1 GiB,
  last sample 1800 s.
* ``F`` ada, before the window (day 0 10:00–11:00): never counted.

The window is day 1 and day 2 (``since=DAY1``, ``until=DAY2`` as dates, the second inclusive).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from jupyter_berth.ledger.models import AllocationRow, NodeRow, UsageRecordRow, UsageSampleRow

GiB = 1024**3
DAY0 = datetime(2026, 3, 10, tzinfo=timezone.utc)
DAY1, DAY2 = DAY0 + timedelta(days=1), DAY0 + timedelta(days=2)
NOW = DAY2 + timedelta(hours=12)
SINCE, UNTIL = DAY1.date().isoformat(), DAY2.date().isoformat()


def h(day: datetime, hours: float) -> datetime:
    return day + timedelta(hours=hours)


#: Figures of the window, per user, worked out by hand.
EXPECTED_BY_USER = {
    "ada": {
        "kernels": 2,
        "servers": 0,
        "kernel_hours": 8.0,
        "cpu_core_hours_allotted": 12.0,
        "cpu_core_hours_used": 4.5,
        "mem_gib_hours_allotted": 24.0,
        "gpu_share_hours_allotted": 2.0,
        "mem_peak_gib": 3.0,
        "culled": 0,
        "idle_hours_culled": 0.0,
    },
    "bob": {
        "kernels": 0,
        "servers": 1,
        "server_hours": 4.0,
        "cpu_core_hours_allotted": 2.0,
        "cpu_core_hours_used": 1.0,
        "mem_gib_hours_allotted": 4.0,
        "gpu_share_hours_allotted": 0.0,
    },
    "carol": {
        "kernels": 1,
        "kernel_hours": 3.0,
        "cpu_core_hours_allotted": 3.0,
        "cpu_core_hours_used": round(501 / 3600, 6),
        "culled": 1,
        "idle_hours_culled": 2.0,
    },
    "dave": {"kernels": 1, "kernel_hours": 2.0, "cpu_core_hours_allotted": 2.0, "cpu_core_hours_used": 0.5},
}


def _record(s, aid, owner, groups, image, kind, cpu, mem, gpu, start, end, cpu_seconds, peak, reason, samples=()):
    s.add(
        AllocationRow(
            id=aid,
            owner=owner,
            groups=list(groups),
            kind=kind,
            subject=f"k-{aid}",
            image=image,
            node="test-node",
            cpu=cpu,
            mem=mem,
            pids=100,
            shm=0,
            gpu=gpu,
            state="released",
            created_at=start,
            started_at=start,
            released_at=end,
            release_reason=reason,
        )
    )
    s.flush()
    for at, value in samples:
        s.add(UsageSampleRow(allocation_id=aid, at=at, cpu_seconds=value, mem_bytes=GiB // 4, pids=3))
    s.add(
        UsageRecordRow(
            allocation_id=aid,
            owner=owner,
            groups=list(groups),
            kind=kind,
            subject=f"k-{aid}",
            image=image,
            node="test-node",
            cpu=cpu,
            mem=mem,
            gpu=gpu,
            started_at=start,
            ended_at=end,
            cpu_seconds=cpu_seconds,
            mem_peak_bytes=peak,
            end_reason=reason,
        )
    )


def fill_known_history(ledger, extra_users: dict[str, list[str]] | None = None) -> None:
    """Write the records above (plus one small record per ``extra_users`` name → groups) into ``ledger``."""
    with ledger.transaction() as s:
        if s.get(NodeRow, "test-node") is None:
            s.add(NodeRow(name="test-node", cpu=8, mem=64 * GiB, labels={}))
            s.flush()
        _record(
            s,
            "A",
            "ada",
            ["physics"],
            "berth/python:3.11",
            "kernel",
            2.0,
            4 * GiB,
            0.5,
            h(DAY1, 10),
            h(DAY1, 14),
            3 * 3600,
            3 * GiB,
            "shutdown",
        )
        _record(
            s,
            "B",
            "ada",
            ["physics", "ml"],
            "berth/pytorch:2.4",
            "kernel",
            1.0,
            2 * GiB,
            0.0,
            h(DAY1, 22),
            h(DAY2, 2),
            5400,
            GiB,
            "shutdown",
            samples=[(h(DAY1, 23), 0.0), (h(DAY2, 0), 1800.0), (h(DAY2, 1), 3600.0)],
        )
        _record(
            s,
            "C",
            "bob",
            [],
            "berth/python:3.11",
            "server",
            0.5,
            GiB,
            0.0,
            h(DAY0, 20),
            h(DAY1, 4),
            7200,
            GiB // 2,
            "shutdown",
        )
        _record(
            s,
            "D",
            "carol",
            ["ml"],
            "berth/python:3.11",
            "kernel",
            1.0,
            GiB,
            0.0,
            h(DAY1, 12),
            h(DAY1, 15),
            501,
            GiB // 2,
            "culled",
            samples=[
                (h(DAY1, 12.5), 100.0),
                (h(DAY1, 13), 500.0),
                (h(DAY1, 13.5), 500.5),
                (h(DAY1, 14), 500.6),
                (h(DAY1, 14.5), 500.8),
            ],
        )
        _record(
            s,
            "F",
            "ada",
            ["physics"],
            "berth/python:3.11",
            "kernel",
            4.0,
            8 * GiB,
            0.0,
            h(DAY0, 10),
            h(DAY0, 11),
            3600,
            GiB,
            "shutdown",
        )
        s.add(
            AllocationRow(
                id="E",
                owner="dave",
                groups=["ml"],
                kind="kernel",
                subject="k-E",
                image="berth/pytorch:2.4",
                node="test-node",
                cpu=1.0,
                mem=GiB,
                pids=100,
                shm=0,
                gpu=0.0,
                state="running",
                created_at=NOW - timedelta(hours=2),
                started_at=NOW - timedelta(hours=2),
                cpu_seconds=1800.0,
                mem_bytes=GiB // 4,
                mem_peak_bytes=GiB // 4,
                sampled_at=NOW - timedelta(hours=1),
            )
        )
        for i, (name, groups) in enumerate(sorted((extra_users or {}).items())):
            _record(
                s,
                f"X{i}",
                name,
                groups,
                "berth/python:3.11",
                "kernel",
                1.0,
                GiB,
                0.0,
                h(DAY1, 1),
                h(DAY1, 2),
                60.0,
                GiB // 8,
                "shutdown",
            )


def fill_busy_month(ledger, start: datetime, days: int = 30, users: int = 36, seed: int = 3) -> int:
    """A month of plausible usage (a few groups, a long tail of users, workday peaks) for the page's plots.

    Returns how many records were written.
    """
    import random

    rng = random.Random(seed)
    groups = ["astro", "bio", "chem", "course-101", "ml", "physics"]
    member = {f"user{i:02d}": rng.sample(groups, rng.choice((1, 1, 2))) for i in range(users)}
    names = sorted(member)
    weights = [1 / (i + 1) ** 0.7 for i in range(users)]
    n = 0
    with ledger.transaction() as s:
        if s.get(NodeRow, "test-node") is None:
            s.add(NodeRow(name="test-node", cpu=64, mem=512 * GiB, labels={}))
        for day in range(days):
            weekday = (start + timedelta(days=day)).weekday() < 5
            for _ in range(rng.randint(40, 70) if weekday else rng.randint(8, 20)):
                user = rng.choices(names, weights=weights)[0]
                begin = start + timedelta(days=day, hours=rng.uniform(7, 20))
                hours = min(30.0, rng.lognormvariate(0.4, 0.8))
                cpu = rng.choice((0.5, 1.0, 2.0, 4.0))
                kind = "server" if rng.random() < 0.15 else "kernel"
                reason = "culled" if rng.random() < 0.12 else "shutdown"
                s.add(
                    UsageRecordRow(
                        allocation_id=f"m{n:06d}",
                        owner=user,
                        groups=member[user],
                        kind=kind,
                        subject=f"k{n}",
                        image=rng.choice(("berth/python:3.11", "berth/python:3.12", "berth/pytorch:2.4")),
                        node="test-node",
                        cpu=cpu,
                        mem=rng.choice((1, 2, 4, 8)) * GiB,
                        gpu=rng.choice((0.0,) * 6 + (0.25, 0.5)),
                        started_at=begin,
                        ended_at=begin + timedelta(hours=hours),
                        cpu_seconds=cpu * hours * 3600 * rng.uniform(0.05, 0.8),
                        mem_peak_bytes=int(rng.uniform(0.2, 3) * GiB),
                        end_reason=reason,
                    )
                )
                n += 1
    return n

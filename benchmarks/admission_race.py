#!/usr/bin/env python3
"""Admission under a 200-way race: today's admission against admission with group totals and budgets.

Each round starts 200 threads at once (a barrier), each reserving 0.25 CPU / 256 MiB
for one of 80 students of ``class-a`` through :meth:`Admission.reserve` on a fresh
ledger whose host has room for every request. The ledger holds ``--history`` released
usage records of the class in the current month (what budgets sum). Two policies, in
the same run, alternating rounds:

- **baseline**: the per-user totals of today (``total_cpu: 2``);
- **fair**: the same plus ``group_totals`` (cpu 40, kernels 160: some requests are
  refused by it, as in a full class), a per-student ``budget`` (CPU- and memory-hours
  per month) and the class's shared ``group_budget`` (CPU- and GPU-hours).

Reported per database: p50, p95 and max of each reservation's latency (time inside
``reserve``: waiting for the lock included), over ``--rounds`` rounds each, and the
fair/baseline ratio of p50 and p95 (the issue's target: at most 1.5×).

Usage::

    python benchmarks/admission_race.py [--rounds 5] [--history 2000] [--skip-postgres] [--no-write]

Writes ``benchmarks/results/admission_race.json`` and the ``admission_race`` section of
``docs/benchmarks.md``. PostgreSQL: ``$BERTH_BENCH_POSTGRES_URL``, else what
``scripts/postgres-up.sh`` prints (a database of its own per round, dropped after).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

from bench_postgres import postgres_base_url
from doc_sections import replace_section  # benchmarks/doc_sections.py (scripts run from this folder)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RESULTS = os.path.join(HERE, "results", "admission_race.json")
DOC = os.path.join(ROOT, "docs", "benchmarks.md")
BEGIN, END = "<!-- admission_race:begin -->", "<!-- admission_race:end -->"
GiB = 1024**3
RACE = 200
STUDENTS = 80
IMAGE = "berth/python:3.11"

BASELINE = {"class-a": {"total_cpu": 2}}
FAIR = {
    "class-a": {
        "total_cpu": 2,
        "group_totals": {"cpu": 40, "mem": "200G", "kernels": 160},
        "budget": {"cpu_hours": 500, "mem_gib_hours": 5000, "min_run": 600},
        "group_budget": {"cpu_hours": 100000, "gpu_hours": 100, "min_run": 600},
    }
}


def fresh_ledger(kind: str):
    from jupyter_berth.ledger import Ledger

    if kind == "sqlite":
        tmp = tempfile.mkdtemp(prefix="berth-bench-")
        ledger = Ledger(f"sqlite:///{tmp}/berth.sqlite")
        return ledger, lambda: (ledger.close(), shutil.rmtree(tmp, ignore_errors=True))
    import psycopg
    from sqlalchemy.engine import make_url

    base = make_url(postgres_base_url())
    name = f"berth_bench_{uuid.uuid4().hex[:8]}"
    admin = psycopg.connect(base.set(drivername="postgresql").render_as_string(hide_password=False), autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}"')
    ledger = Ledger(base.set(database=name).render_as_string(hide_password=False))

    def cleanup():
        ledger.close()
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        admin.close()

    return ledger, cleanup


def fill_history(ledger, history: int) -> None:
    """``history`` released records of the class this month (0.5 CPU, 1 GiB, 1 h each)."""
    from sqlalchemy import insert

    from jupyter_berth.ledger.models import UsageRecordRow

    now = datetime.now(timezone.utc)
    start = datetime(now.year, now.month, 1, tzinfo=timezone.utc)
    span = max((now - start).total_seconds() - 3600, 1)
    rows = [
        {
            "allocation_id": str(uuid.uuid4()), "owner": f"s{i % STUDENTS}", "groups": ["class-a"], "kind": "kernel",
            "subject": f"h{i}", "image": IMAGE, "node": "n1", "cpu": 0.5, "mem": GiB, "gpu": 0.0,
            "started_at": start + timedelta(seconds=span * i / max(history, 1)),
            "ended_at": start + timedelta(seconds=span * i / max(history, 1) + 3600),
            "cpu_seconds": 60.0, "mem_peak_bytes": GiB // 2, "end_reason": "shutdown",
        }
        for i in range(history)
    ]  # fmt: skip
    if rows:
        with ledger.transaction() as s:
            s.execute(insert(UsageRecordRow), rows)


def one_round(kind: str, groups_cfg: dict, history: int) -> tuple[list[float], int]:
    from jupyter_berth.admission import Admission
    from jupyter_berth.errors import CapacityError, PolicyError
    from jupyter_berth.policies import PolicySpec, resolve
    from jupyter_berth.resources import Resources

    ledger, cleanup = fresh_ledger(kind)
    try:
        ledger.set_node_capacity("n1", 1000, 4096 * GiB)
        fill_history(ledger, history)
        specs = {g: PolicySpec.parse(s, f"group {g}") for g, s in groups_cfg.items()}
        policies = {f"s{i}": resolve(f"s{i}", ("class-a",), None, specs) for i in range(STUDENTS)}
        admission = Admission(ledger)
        request = Resources(cpu=0.25, mem=256 * 1024**2)
        barrier = threading.Barrier(RACE)

        def one(i):
            user = f"s{i % STUDENTS}"
            barrier.wait()
            t0 = time.perf_counter()
            try:
                admission.reserve(user, ["class-a"], policies[user], request, "kernel", f"k{i}", IMAGE)
                ok = 1
            except (CapacityError, PolicyError):
                ok = 0
            return time.perf_counter() - t0, ok

        with ThreadPoolExecutor(max_workers=RACE) as pool:
            results = list(pool.map(one, range(RACE)))
        return [r[0] for r in results], sum(r[1] for r in results)
    finally:
        cleanup()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def bench(kind: str, rounds: int, history: int) -> dict:
    lat = {"baseline": [], "fair": []}
    granted = {"baseline": [], "fair": []}
    for r in range(rounds):
        for name, cfg in (
            (("baseline", BASELINE), ("fair", FAIR)) if r % 2 == 0 else (("fair", FAIR), ("baseline", BASELINE))
        ):
            seconds, ok = one_round(kind, cfg, history)
            lat[name] += seconds
            granted[name].append(ok)
            print(
                f"{kind} round {r + 1} {name}: p50 {statistics.median(seconds) * 1000:.1f} ms, {ok} granted", flush=True
            )
    out = {
        name: {
            "p50_ms": round(statistics.median(v) * 1000, 2),
            "p95_ms": round(pct(v, 0.95) * 1000, 2),
            "max_ms": round(max(v) * 1000, 2),
            "granted_per_round": granted[name],
        }
        for name, v in lat.items()
    }
    out["ratio_p50"] = round(out["fair"]["p50_ms"] / out["baseline"]["p50_ms"], 2)
    out["ratio_p95"] = round(out["fair"]["p95_ms"] / out["baseline"]["p95_ms"], 2)
    return out


def section(result: dict) -> str:
    lines = [
        BEGIN,
        "## Admission with group totals and budgets (`benchmarks/admission_race.py`)",
        "",
        f"{RACE} threads reserve at once for {STUDENTS} students of one class, on a fresh ledger per round holding "
        f"{result['history']} released records of the class this month; {result['rounds']} rounds per policy, "
        "alternating. *baseline*: today's per-user totals. *fair*: the same plus `group_totals` (40 CPU, 160 "
        "kernels: the class is full after 160, so 40 requests are refused by it), a per-student `budget` and the "
        "class's `group_budget`. Latency is the time inside `Admission.reserve`, waiting for the lock included.",
        "",
        f"Measured {result['date']} on {result['machine']}. {result['note']}",
        "",
        "| database | policy | p50 ms | p95 ms | max ms | granted per round |",
        "|---|---|---|---|---|---|",
    ]
    for kind in ("sqlite", "postgresql"):
        if kind not in result:
            continue
        for name in ("baseline", "fair"):
            r = result[kind][name]
            lines.append(
                f"| {kind} | {name} | {r['p50_ms']} | {r['p95_ms']} | {r['max_ms']} | "
                f"{', '.join(map(str, r['granted_per_round']))} |"
            )
    lines.append("")
    for kind in ("sqlite", "postgresql"):
        if kind in result:
            lines.append(
                f"- {kind}: fair/baseline {result[kind]['ratio_p50']}× at p50, {result[kind]['ratio_p95']}× at p95 "
                "(target: at most 1.5×)."
            )
    lines += [
        "",
        "Reproduce: `python benchmarks/admission_race.py` (add `--skip-postgres` without a PostgreSQL server).",
        END,
    ]
    return "\n".join(lines)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--history", type=int, default=2000)
    ap.add_argument("--skip-postgres", action="store_true")
    ap.add_argument("--no-write", action="store_true", help="print the results only")
    ap.add_argument("--note", default="", help="a sentence about the machine's state, written with the figures")
    args = ap.parse_args(argv)
    result: dict = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "machine": f"{os.cpu_count()} cores, {platform.system()} {platform.release()}, Python {platform.python_version()}",
        "rounds": args.rounds,
        "history": args.history,
        "note": args.note,
    }
    result["sqlite"] = bench("sqlite", args.rounds, args.history)
    if not args.skip_postgres:
        result["postgresql"] = bench("postgresql", args.rounds, args.history)
    print(json.dumps(result, indent=1))
    if not args.no_write:
        os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
        with open(RESULTS, "w") as f:
            json.dump(result, f, indent=1)
        replace_section(DOC, BEGIN, END, section(result))
    return result


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Usage reports at scale, and what the usage sampler costs.

**Reports.** Fills a fresh SQLite ledger and a fresh PostgreSQL ledger with
1,000,000 usage records of 2,000 users over the 365 days of 2025 (bulk inserts:
``executemany`` on SQLite, ``COPY`` on PostgreSQL), then times monthly reports
grouped by user (``build_report(since="2025-MM", until="2025-MM", by="user")``,
what ``berth usage`` and the admin page run) for an early, a middle and a late
month: the median of ``--runs`` runs each, after one warm-up run. It also times
a whole-year report by group and day. A check recomputes one month's figures in
Python from the generated records and compares them with the report.

**Sampler.** Starts ``--kernels`` real Berth kernels (0.1 CPU, 128 MiB each)
and runs ``service.usage.sample_all()`` every ``--interval`` seconds for
``--seconds`` seconds; the benchmark process's own CPU time
(``resource.getrusage``: every thread, the engine calls and the ledger writes
included) over that time is the sampler's cost, as a share of one core.

Usage::

    python benchmarks/usage_report.py [--records 1000000] [--users 2000] [--runs 7]
        [--kernels 50] [--interval 15] [--seconds 60] [--skip-sampler] [--skip-postgres]

Writes ``benchmarks/results/usage_report.json`` and the ``usage_report`` section
of ``docs/benchmarks.md`` (between its markers; other sections are left alone).
PostgreSQL: ``$BERTH_BENCH_POSTGRES_URL``, else what ``scripts/postgres-up.sh``
prints (a database of its own is created and dropped).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone

from bench_postgres import postgres_base_url
from doc_sections import replace_section  # benchmarks/doc_sections.py (scripts run from this folder)
from usage_report_data import MONTHS, YEAR, expected_month, fill_postgres, fill_sqlite, generate

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RESULTS = os.path.join(HERE, "results", "usage_report.json")
DOC = os.path.join(ROOT, "docs", "benchmarks.md")
BEGIN, END = "<!-- usage_report:begin -->", "<!-- usage_report:end -->"


def time_reports(ledger, runs: int, records: list[tuple]) -> dict:
    from jupyter_berth.usage.reports import build_report

    out: dict = {"monthly_by_user": {}}
    for month in MONTHS:
        build_report(ledger, month, month, by="user")  # warm-up
        times, cpu = [], []
        load = os.getloadavg()[0]
        for _ in range(runs):
            t0, c0 = time.perf_counter(), time.process_time()
            report = build_report(ledger, month, month, by="user")
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        out["monthly_by_user"][month] = {
            "median_s": statistics.median(times),
            "min_s": min(times),
            "max_s": max(times),
            "runs": runs,
            "rows": len(report.rows),
            "kernels": report.totals["kernels"] + report.totals["servers"],
            "client_cpu_s": statistics.median(cpu),
            "load_average": [load, os.getloadavg()[0]],
        }
    # the check: the report agrees with a computation in Python
    expected = expected_month(records, MONTHS[1])
    report = build_report(ledger, MONTHS[1], MONTHS[1], by="user")
    worst = 0.0
    for row in report.rows:
        exp = expected[row["user"]]
        for f in exp:
            worst = max(worst, abs(row[f] - exp[f]))
    assert len(report.rows) == len(expected) and worst < 0.01, f"the report disagrees with the records by {worst}"
    out["check"] = {"month": MONTHS[1], "users": len(expected), "max_abs_difference": worst}
    t0 = time.perf_counter()
    year = build_report(ledger, str(YEAR), str(YEAR), by="group,day")
    out["year_by_group_day"] = {"seconds": time.perf_counter() - t0, "rows": len(year.rows)}
    return out


def bench_database(kind: str, records: list[tuple], runs: int) -> dict:
    from jupyter_berth.ledger import Ledger

    if kind == "sqlite":
        tmp = tempfile.mkdtemp(prefix="berth-bench-")
        ledger, cleanup = Ledger(f"sqlite:///{tmp}/berth.sqlite"), lambda: subprocess.run(["rm", "-rf", tmp])
        fill = fill_sqlite
    else:
        import psycopg
        from sqlalchemy.engine import make_url

        base = make_url(postgres_base_url())
        name = f"berth_bench_{uuid.uuid4().hex[:8]}"
        libpq = base.set(drivername="postgresql").render_as_string(hide_password=False)
        admin = psycopg.connect(libpq, autocommit=True)
        admin.execute(f'CREATE DATABASE "{name}"')
        ledger = Ledger(base.set(database=name).render_as_string(hide_password=False))

        def cleanup():
            ledger.close()
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            admin.close()

        fill = fill_postgres
    try:
        seconds = fill(ledger, records)
        print(f"{kind}: {len(records)} records inserted in {seconds:.1f} s", flush=True)
        result = {"insert_s": seconds, **time_reports(ledger, runs, records)}
        print(f"{kind}: {json.dumps(result)}", flush=True)
        return result
    finally:
        ledger.close()
        cleanup()


# -- sampler -----------------------------------------------------------------------------------
def cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


async def per_kernel_round(service) -> int:
    """The sampler before batching, for comparison: one engine call and one ledger transaction per kernel."""
    n = 0
    for alloc in await service._db(service.ledger.live_allocations, node=service.node_name):
        if await service.usage.sample_one(alloc):
            n += 1
    return n


async def measure_rounds(interval: float, seconds: float, one_round) -> dict:
    """Run ``one_round()`` every ``interval`` s for ``seconds`` s; the process's CPU time over that time."""
    rounds, cpu0, wall0 = [], cpu_seconds(), time.perf_counter()
    deadline = wall0 + seconds
    while True:
        r0, c0 = time.perf_counter(), cpu_seconds()
        sampled = await one_round()
        rounds.append({"wall_s": time.perf_counter() - r0, "cpu_s": cpu_seconds() - c0, "sampled": sampled})
        if r0 + interval >= deadline:
            break
        await asyncio.sleep(max(0.0, r0 + interval - time.perf_counter()))
    await asyncio.sleep(max(0.0, deadline - time.perf_counter()))
    cpu, wall = cpu_seconds() - cpu0, time.perf_counter() - wall0
    return {
        "interval_s": interval,
        "seconds": wall,
        "rounds": len(rounds),
        "sampled_per_round": min(r["sampled"] for r in rounds),
        "cpu_s": cpu,
        "core_share": cpu / wall,
        "per_round_cpu_ms": statistics.median(r["cpu_s"] for r in rounds) * 1000,
        "per_round_wall_ms": statistics.median(r["wall_s"] for r in rounds) * 1000,
    }


async def bench_sampler(kernels: int, interval: float, seconds: float) -> dict:
    from traitlets.config import Config

    from jupyter_berth.runtime.docker import DockerRuntime
    from jupyter_berth.service import BerthService

    tmp = tempfile.mkdtemp(prefix="berth-bench-sampler-")
    c = Config()
    c.BerthService.data_dir = tmp
    c.UsageTracker.sample_interval = 0  # the benchmark drives sample_all itself, on the same schedule
    c.BerthService.cpu_overcommit = 10.0
    c.BerthService.default_policy = {"max_cpu": 1, "max_mem": "1G"}
    service = BerthService(config=c, runtime=DockerRuntime())
    await service.start()
    started = []
    try:
        t0 = time.perf_counter()
        for batch in range(0, kernels, 5):
            launches = await asyncio.gather(
                *(
                    service.start_kernel(
                        "bench", kernel_id=f"bench-{uuid.uuid4().hex[:8]}", request={"cpu": 0.1, "mem": "128M"}
                    )
                    for _ in range(batch, min(kernels, batch + 5))
                )
            )
            started += launches
        start_s = time.perf_counter() - t0
        print(f"sampler: {len(started)} kernels started in {start_s:.0f} s; settling", flush=True)
        await asyncio.sleep(10)
        await service.usage.sample_all()  # first round finds every container's cgroup (not part of the steady state)
        load0 = os.getloadavg()[0]
        batched = await measure_rounds(interval, seconds, service.usage.sample_all)
        unbatched = await measure_rounds(interval, min(seconds, 4 * interval), lambda: per_kernel_round(service))
        return {
            "kernels": len(started),
            "start_s": start_s,
            **batched,
            "per_kernel_cpu_ms": batched["per_round_cpu_ms"] / max(1, len(started)),
            "load_average": [load0, os.getloadavg()[0]],
            "unbatched": unbatched,
        }
    finally:
        for launch in started:
            try:
                await service.stop_kernel("bench", launch.kernel_id, now=True)
            except Exception as e:  # noqa: BLE001 - best-effort cleanup
                print(f"cleanup of {launch.kernel_id}: {e}", file=sys.stderr)
        await service.stop()
        subprocess.run(["rm", "-rf", tmp])


# -- report ------------------------------------------------------------------------------------
def section(result: dict) -> str:
    lines = [
        BEGIN,
        "## Usage reports and the usage sampler (`benchmarks/usage_report.py`)",
        "",
        f"Measured {result['date']} on {result['machine']}. "
        f"{result['records']:,} usage records of {result['users']:,} users over the 365 days of {YEAR}; "
        "each figure is the median of "
        f"{result['runs']} runs after a warm-up. Target: a monthly report grouped by user in under 1 s.",
        "",
    ]
    dbs = [k for k in ("sqlite", "postgresql") if k in result]
    if dbs:
        lines += [
            "| database | bulk insert | "
            + " | ".join(f"{m} by user" for m in MONTHS)
            + " | all of 2025 by group and day |",
            "|---|---|" + "---|" * len(MONTHS) + "---|",
        ]
        for k in dbs:
            r = result[k]
            cells = []
            for m in MONTHS:
                mm = r["monthly_by_user"][m]
                cpu = f" (CPU {mm['client_cpu_s'] * 1000:.0f} ms)" if k == "sqlite" else ""
                cells.append(f"**{mm['median_s'] * 1000:.0f} ms**{cpu}")
            lines.append(
                f"| {k} | {r['insert_s']:.0f} s | {' | '.join(cells)} | {r['year_by_group_day']['seconds']:.1f} s "
                f"({r['year_by_group_day']['rows']:,} rows) |"
            )
        first = result[dbs[0]]["monthly_by_user"]
        loads = sorted(
            {round(x, 1) for k in dbs for m in MONTHS for x in result[k]["monthly_by_user"][m]["load_average"]}
        )
        check = result[dbs[0]]["check"]
        lines += [
            "",
            f"A month holds about {min(v['kernels'] for v in first.values()):,}–"
            f"{max(v['kernels'] for v in first.values()):,} records of {min(v['rows'] for v in first.values()):,} users. "
            "SQLite's figure in brackets is the process's own CPU time for the report (the query runs "
            "in-process), which is what the report costs on an idle machine; the wall-clock figures were "
            + (
                "taken while other work ran on the machine"
                if loads[-1] >= (os.cpu_count() or 1)
                else "taken on a quiet machine"
            )
            + f" (load average {loads[0]}–{loads[-1]} on {os.cpu_count()} cores).",
            "",
            f"Check: for {check['month']}, every user's kernel-hours and CPU core-hours (allotted and used) "
            f"in the report match a recomputation in Python from the generated records "
            f"(largest difference {check['max_abs_difference']:.6f} h).",
            "The SQLite ledger is measured as the service leaves it (no `ANALYZE`); PostgreSQL after "
            "`ANALYZE`, which autovacuum runs within a minute of such a load. The records are written in the "
            "order kernels end, as the service writes them.",
            "",
        ]
    s = result.get("sampler")
    if s:
        lines += [
            f"**Sampler.** {s['kernels']} running Berth kernels, `sample_all()` every {s['interval_s']:g} s for "
            f"{s['seconds']:.0f} s ({s['rounds']} rounds, {s['sampled_per_round']} containers each): the "
            f"process spent {s['cpu_s']:.2f} s of CPU, **{s['core_share'] * 100:.2f}% of one core** "
            f"(target: under 2%). One round: {s['per_round_cpu_ms']:.0f} ms of CPU "
            f"({s['per_kernel_cpu_ms']:.2f} ms per kernel), {s['per_round_wall_ms']:.0f} ms of wall time. "
            "Counters are read from the cgroup files; the ledger write of a round is one transaction. "
            "For comparison, rounds with one engine call and one ledger transaction per kernel (the sampler "
            f"before): {s['unbatched']['per_round_cpu_ms']:.0f} ms of CPU per round, "
            f"{s['unbatched']['core_share'] * 100:.2f}% of a core. Load average during the run: "
            f"{s['load_average'][0]:.1f} → {s['load_average'][1]:.1f} (the machine was shared with other work).",
            "",
        ]
    lines.append(END)
    return "\n".join(lines)


def write_doc(text_section: str) -> None:
    replace_section(DOC, BEGIN, END, text_section)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--users", type=int, default=2000)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--kernels", type=int, default=50)
    ap.add_argument("--interval", type=float, default=15.0)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--skip-sampler", action="store_true")
    ap.add_argument("--skip-postgres", action="store_true")
    ap.add_argument("--skip-reports", action="store_true")
    ap.add_argument("--no-write", action="store_true", help="print the results only")
    args = ap.parse_args(argv)
    result: dict = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "machine": f"{os.cpu_count()} cores, {platform.system()} {platform.release()}, Python {platform.python_version()}",
        "records": args.records,
        "users": args.users,
        "runs": args.runs,
    }
    if os.path.exists(RESULTS):  # keep the parts not re-measured this time
        previous = json.load(open(RESULTS))
        result = {**{k: v for k, v in previous.items() if k in ("sqlite", "postgresql", "sampler")}, **result}
    if not args.skip_reports:
        t0 = time.perf_counter()
        records = generate(args.records, args.users)
        print(f"generated {len(records)} records in {time.perf_counter() - t0:.1f} s", flush=True)
        result["sqlite"] = bench_database("sqlite", records, args.runs)
        if not args.skip_postgres:
            result["postgresql"] = bench_database("postgresql", records, args.runs)
        del records
    if not args.skip_sampler:
        result["sampler"] = asyncio.run(bench_sampler(args.kernels, args.interval, args.seconds))
        print(f"sampler: {json.dumps(result['sampler'])}", flush=True)
    if not args.no_write:
        os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
        with open(RESULTS, "w") as f:
            json.dump(result, f, indent=1)
        write_doc(section(result))
    return result


if __name__ == "__main__":
    main()

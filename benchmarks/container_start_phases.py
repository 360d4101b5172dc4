#!/usr/bin/env python3
"""A cold kernel start's container path, phase by phase, against ``docker run true``.

One run, interleaved round by round: ``docker run --rm IMAGE true`` (the CLI, the engine's floor
for create + start + wait + remove) and a Berth cold start (``BerthService.start_kernel`` with the
warm pool off) whose phases are timed by wrapping the service's own calls:

* ``catalog`` — the image catalog view (the engine's image list is cached; the ledger's decisions are not);
* ``network`` — the user's network (``ensure_network``, then the egress policy);
* ``rest`` — everything else: the policy, admission (one ledger transaction), the environment's preparation;
* ``run`` — ``runtime.run``, split into ``create`` (the create call, with the spec's validation and the
  runtime's network check), ``start`` (the engine's start call: namespaces, network endpoint, cgroups,
  the process) and ``inspect`` (reading back the address);
* ``record`` — marking the allocation running;
* ``total`` — the whole ``start_kernel`` (until the container runs; the kernel inside has not started).

With ``--warm`` the pool is on (each start waits for it to be full first) and ``adopt`` is the
warm pool's adoption (activation, new limits; no mounts to hand over here) in place of ``run``.

Usage::

    python benchmarks/container_start_phases.py [--n 15] [--warm]

Prints the medians and writes the ``container_start_phases`` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import platform
import secrets
import statistics
import subprocess
import sys
import tempfile
import time

from doc_sections import replace_section
from traitlets.config import Config

from jupyter_berth.service import BerthService

HERE = os.path.dirname(os.path.abspath(__file__))
DOC = os.path.join(os.path.dirname(HERE), "docs", "benchmarks.md")
BEGIN, END = "<!-- container_start_phases:begin -->", "<!-- container_start_phases:end -->"
IMAGE = "berth/python:3.11"
PHASES = ("catalog", "network", "run", "create", "start", "inspect", "adopt", "record", "rest", "total")


def timed(record: dict, name: str, fn):
    @functools.wraps(fn)
    async def wrapper(*a, **kw):
        t0 = time.perf_counter()
        try:
            return await fn(*a, **kw)
        finally:
            record[name] = record.get(name, 0.0) + time.perf_counter() - t0

    return wrapper


def remove_networks(run: str) -> None:
    """The user's (and the pool's) networks this run made: what carries its label, nothing else."""
    import docker

    client = docker.from_env()
    for net in client.networks.list(filters={"label": f"io.jupyter.berth.bench_run={run}"}):
        try:
            net.remove()
        except docker.errors.APIError as e:
            print(f"could not remove network {net.name}: {e}", file=sys.stderr)


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=15)
    ap.add_argument("--no-doc", action="store_true")
    ap.add_argument("--warm", action="store_true", help="the warm pool on: time an adoption instead")
    args = ap.parse_args()
    run = secrets.token_hex(4)
    os.environ["BERTH_EXTRA_LABELS"] = f"bench_run={run}"
    data = tempfile.mkdtemp(prefix="berth-phases-")
    c = Config()
    c.BerthService.data_dir = data
    c.BerthService.pool_size = 2 if args.warm else 0
    c.UsageTracker.sample_interval = 0
    s = BerthService(config=c)
    await s.start()
    record: dict = {}
    s.images.catalog_view = timed(record, "catalog", s.images.catalog_view)
    s._user_network = timed(record, "network", s._user_network)
    s.runtime.run = timed(record, "run", s.runtime.run)
    if s._pool is not None:
        s._pool.adopt = timed(record, "adopt", s._pool.adopt)
    engine_call = s.runtime.docker

    async def docker(method, *a, **kw):  # the engine calls inside runtime.run
        name = method if isinstance(method, str) else getattr(method, "__name__", "")
        phase = "start" if name == "start" else "inspect" if name == "_inspect_sync" else None
        t0 = time.perf_counter()
        try:
            return await engine_call(method, *a, **kw)
        finally:
            if phase:
                record[phase] = record.get(phase, 0.0) + time.perf_counter() - t0

    s.runtime.docker = docker
    orig_db = s._db

    async def db(fn, *a, **kw):  # recording the container is a ledger call through the service's executor
        name = getattr(fn, "__name__", "")
        t0 = time.perf_counter()
        try:
            return await orig_db(fn, *a, **kw)
        finally:
            if name == "mark_running":
                record["record"] = record.get("record", 0.0) + time.perf_counter() - t0

    s._db = db
    rows = {p: [] for p in PHASES}
    floor = []
    try:
        for i in range(args.n + 1):  # the first round warms caches and is not counted
            t0 = time.perf_counter()
            subprocess.run(["docker", "run", "--rm", "--label", f"io.jupyter.berth.bench_run={run}", IMAGE, "true"],
                           check=True, capture_output=True)  # fmt: skip
            docker_true = time.perf_counter() - t0
            if s._pool is not None:
                await s._pool.wait_full(timeout=180)
            record.clear()
            t0 = time.perf_counter()
            await s.start_kernel("bench", kernel_id=f"k{i}-{run}", request={"cpu": 0.5, "mem": "256M"})
            record["total"] = time.perf_counter() - t0
            measured = ("catalog", "network", "run", "adopt", "record")
            record["rest"] = record["total"] - sum(record.get(p, 0.0) for p in measured)
            record["create"] = record.get("run", 0.0) - record.get("start", 0.0) - record.get("inspect", 0.0)
            if i:
                floor.append(docker_true)
                for p in PHASES:
                    rows[p].append(record.get(p, 0.0))
            await s.stop_kernel("bench", f"k{i}-{run}", now=True)
    finally:
        await s.stop()
        remove_networks(run)
    med = {p: statistics.median(v) for p, v in rows.items()}
    true = statistics.median(floor)
    load = os.getloadavg()[0]
    print(f"docker run true: {1000 * true:.0f} ms; load {load:.2f}")
    for p in PHASES:
        print(f"{p:>10}: {1000 * med[p]:.0f} ms")
    if args.no_doc or args.warm:  # the doc's section is the cold path's
        return
    lines = [
        BEGIN,
        "## A cold start's container path, phase by phase",
        "",
        "`BerthService.start_kernel` with the warm pool off (until the container runs; the kernel inside has not "
        "started), interleaved with `docker run --rm IMAGE true`; the first round is not counted. **catalog**: the "
        "image catalog view; **network**: the user's network and its egress rules; **run**: create, start and "
        "inspect the container (split below it); **record**: marking the allocation running; **rest**: the policy, admission and "
        "the environment's preparation.",
        "",
        f"Measured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} cores, Linux {platform.release()} with "
        f"`python benchmarks/container_start_phases.py --n {args.n}`; 1-minute load average {load:.2f} at the end.",
        "",
        "| phase | median |",
        "|---|---|",
        f"| `docker run --rm {IMAGE} true` (CLI: create, start, wait, remove) | {1000 * true:.0f} ms |",
        *(f"| {p} | {1000 * med[p]:.0f} ms |" for p in PHASES if p != "adopt"),
        END,
    ]
    replace_section(DOC, BEGIN, END, "\n".join(lines))


if __name__ == "__main__":
    asyncio.run(main())

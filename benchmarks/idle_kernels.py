#!/usr/bin/env python3
"""Many idle Berth kernels on one host: do they all answer, what does each cost, what does the service cost?

One run, on this machine (2 cores, 24 GiB), with a standalone :class:`BerthService` embedded in
this process (as standalone JupyterLab embeds it) on the host's Docker engine:

1. **baseline**: the started service with no kernel, idle for ``--idle`` seconds with its usage
   sampler on (every 15 s, the default) and the engine-event follower on: the process's CPU,
   dockerd's and containerd's;
2. **start** ``--kernels`` kernels (``--request``: 0.1 CPU and 96 MiB each by default), spread over
   ``--users`` users (a user's network is a /26 by default: 61 kernels per user; 200 kernels over 4
   users is 50 each), ``--concurrency`` starts at a time; after each quarter, ``--rounds`` explicit
   sampler rounds (``service.usage.sample_all()``) are timed (CPU of this process, wall time);
3. **kernel_info**: every kernel is asked once (a fresh client each, 20 at a time): how many answer,
   and how fast;
4. **idle at N**: the same idle measurement as the baseline, now with N kernels running, plus the
   kernels' own CPU (their cgroups' counters);
5. **memory per kernel**: the kernel container's cgroup memory (what the sampler records), the kernel
   process's RSS and PSS, its ``containerd-shim``'s RSS; host-side: MemAvailable before and after
   (divided by N), and dockerd's and containerd's RSS growth (divided by N);
6. **cleanup**: every kernel stopped through the service; then anything still carrying this run's
   label (``$BERTH_EXTRA_LABELS``: ``bench=idle-kernels-<run>``) is removed: containers, networks,
   volumes. The ledger lived in a temporary folder, removed too.

Settings (explained in docs/benchmarks.md): ``cpu_overcommit`` is set so that N × the CPU request
fits the host's allotment (200 × 0.1 = 20 cores on 2: factor 10; idle kernels use next to no CPU);
memory is not overcommitted (200 × 96 MiB = 18.75 GiB of the 23 GiB the host allots); the policy
allows N kernels per user; the warm pool is off (``pool_size = 0``) so that every kernel is a
started container of its own.

Usage::

    python benchmarks/idle_kernels.py [--kernels 200] [--users 4] [--idle 60] [--no-doc]

Writes ``benchmarks/results/idle_kernels.json`` and the ``idle_kernels`` section of
``docs/benchmarks.md``. Needs the engine (``berth engine up``) and ``berth/python:3.11``; run as root
(it reads other processes' /proc files).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

from doc_sections import replace_section  # benchmarks/doc_sections.py (scripts run from this folder)
from kernel_start_probes import kernel_memory, machine_facts, mem_available, proc_kib, summary

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RESULTS = os.path.join(HERE, "results", "idle_kernels.json")
DOC = os.path.join(ROOT, "docs", "benchmarks.md")
BEGIN, END = "<!-- idle_kernels:begin -->", "<!-- idle_kernels:end -->"
CLK = os.sysconf("SC_CLK_TCK")


# -- /proc ------------------------------------------------------------------------------------------
def pids_named(name: str) -> list[int]:
    out = subprocess.run(["pgrep", "-x", name], capture_output=True, text=True).stdout.split()
    return [int(p) for p in out]


def proc_cpu(pid: int) -> float:
    """utime + stime of ``pid`` in seconds (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK
    except (OSError, IndexError, ValueError):
        return 0.0


def daemons() -> dict[str, int]:
    """dockerd's and containerd's pids (the host's own: the first of each name)."""
    found = {}
    for name in ("dockerd", "containerd"):
        pids = pids_named(name)
        if pids:
            found[name] = min(pids)
    return found


def self_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)  # every thread of this process: the service, engine calls, ledger
    return r.ru_utime + r.ru_stime


def host_busy() -> tuple[float, float]:
    """(busy, total) jiffies of the whole host from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return sum(v) - idle, sum(v)


# -- measurements -----------------------------------------------------------------------------------
async def idle_cpu(service, seconds: float, kernels: list) -> dict:
    """CPU over ``seconds`` of doing nothing: this process (the service), dockerd, containerd, the kernels."""
    pids = daemons()

    async def kernel_cpu():
        found = await asyncio.gather(*(service.runtime.usage(k.container_id) for k in kernels))
        return sum(u.cpu_seconds for u in found if u is not None)

    k0 = await kernel_cpu()
    s0, d0, h0, t0 = self_cpu(), {n: proc_cpu(p) for n, p in pids.items()}, host_busy(), time.monotonic()
    await asyncio.sleep(seconds)
    s1, d1, h1, t1 = self_cpu(), {n: proc_cpu(p) for n, p in pids.items()}, host_busy(), time.monotonic()
    k1 = await kernel_cpu()
    wall = t1 - t0
    out = {
        "seconds": wall,
        "service_pct_of_core": 100 * (s1 - s0) / wall,
        "kernels_pct_of_core": 100 * (k1 - k0) / wall,
        "host_busy_pct_of_all_cores": 100 * (h1[0] - h0[0]) / max(1, h1[1] - h0[1]),
        "loadavg": os.getloadavg(),
    }
    for name in pids:
        out[f"{name}_pct_of_core"] = 100 * (d1[name] - d0[name]) / wall
    return out


async def sampler_rounds(service, rounds: int) -> dict:
    """``rounds`` explicit sampler rounds: CPU of this process and wall time per round."""
    cpu, wall, counted = [], [], 0
    for _ in range(rounds):
        c0, w0 = self_cpu(), time.perf_counter()
        counted = await service.usage.sample_all()
        wall.append(1000 * (time.perf_counter() - w0))
        cpu.append(1000 * (self_cpu() - c0))
        await asyncio.sleep(0.5)
    return {"sampled": counted, "cpu_ms": summary(cpu), "wall_ms": summary(wall)}


async def kernel_info_all(launches: list, parallel: int = 20) -> dict:
    """Ask every kernel for kernel_info once (a fresh client each); answered count and round trips."""
    from jupyter_client.asynchronous import AsyncKernelClient

    gate = asyncio.Semaphore(parallel)

    async def ask(launch):
        async with gate:
            kc = AsyncKernelClient()
            kc.load_connection_info(launch.to_json()["connection"])
            kc.start_channels()
            try:
                times, status = [], None
                for _ in range(2):  # the first on a fresh connection, then one on the connected client
                    t0 = time.perf_counter()
                    msg_id = kc.kernel_info()
                    while True:
                        msg = await kc.get_shell_msg(timeout=30)
                        if msg["parent_header"].get("msg_id") == msg_id:
                            times.append(time.perf_counter() - t0)
                            status = msg["content"]["status"]
                            break
                return times, status
            finally:
                kc.stop_channels()

    t0 = time.perf_counter()
    results = await asyncio.gather(*(ask(launch) for launch in launches), return_exceptions=True)
    wall = time.perf_counter() - t0
    ok = [r[0] for r in results if isinstance(r, tuple) and r[1] == "ok"]
    failures = [repr(r)[:200] for r in results if not (isinstance(r, tuple) and r[1] == "ok")]
    return {
        "asked": len(launches),
        "answered": len(ok),
        "all_s": wall,
        "first_rtt_s": summary([t[0] for t in ok]) if ok else None,
        "rtt_s": summary([t[1] for t in ok]) if ok else None,
        "failures": failures[:5],
    }


def daemon_rss_mib() -> dict[str, float]:
    return {name: (proc_kib(pid, "VmRSS") or 0) / 1024 for name, pid in daemons().items()}


# -- the run ----------------------------------------------------------------------------------------
async def run(args, label: str, tmp: str) -> dict:
    from traitlets.config import Config

    from jupyter_berth.resources import Resources
    from jupyter_berth.service import BerthService

    request = json.loads(args.request)
    cores = os.cpu_count() or 1
    overcommit = max(1.0, math.ceil(args.kernels * Resources.parse(request).cpu / cores))
    c = Config()
    c.BerthService.data_dir = os.path.join(tmp, "berth-data")
    c.BerthService.stop_timeout = 1
    c.BerthService.pool_size = 0  # every kernel a container of its own
    c.BerthService.cpu_overcommit = overcommit
    c.BerthService.default_policy = {
        "max_cpu": 1,
        "max_mem": "1G",
        "max_kernels": args.kernels,
        "default": request,
    }
    c.UsageTracker.sample_interval = 0  # started by hand for the idle phases (at its default, 15 s)
    service = BerthService(config=c)
    await service.start()
    facts = machine_facts(await service.runtime.ping())
    out: dict = {
        "kernels": args.kernels,
        "users": args.users,
        "request": request,
        "cpu_overcommit": overcommit,
        "machine": facts,
        "label": label,
    }
    launches: list = []
    try:
        print(f"baseline: the service idle with no kernel for {args.idle:g} s", flush=True)
        service.usage.sample_interval = 15.0
        service.usage.start_sampling()
        out["idle_0"] = await idle_cpu(service, args.idle, [])
        service.usage.stop_sampling()
        mem0, rss0 = mem_available(), daemon_rss_mib()
        gate = asyncio.Semaphore(args.concurrency)

        async def start(i: int):
            async with gate:
                t0 = time.perf_counter()
                launch = await service.start_kernel(
                    f"idle{i % args.users}", kernel_id=f"idle-{label}-{i}", request=request
                )
                return launch, time.perf_counter() - t0

        out["checkpoints"] = []
        start_each, t_all = [], time.perf_counter()
        steps = sorted({min(args.kernels, math.ceil(args.kernels * q / 4)) for q in (1, 2, 3, 4)})
        errors = []
        for step in steps:
            results = await asyncio.gather(*(start(i) for i in range(len(launches), step)), return_exceptions=True)
            for r in results:
                if isinstance(r, BaseException):
                    errors.append(repr(r)[:300])
                else:
                    launches.append(r[0])
                    start_each.append(r[1])
            if errors:
                print(f"start failures: {errors[:3]}", flush=True)
                break
            rounds = await sampler_rounds(service, args.rounds)
            out["checkpoints"].append({"kernels": len(launches), **rounds})
            print(
                f"{len(launches)} kernels; sampler round: {rounds['cpu_ms']['p50']:.0f} ms CPU, "
                f"{rounds['wall_ms']['p50']:.0f} ms wall; load {os.getloadavg()[0]:.1f}",
                flush=True,
            )
        out["start_all_s"] = time.perf_counter() - t_all
        out["start_each_s"] = summary(start_each) if start_each else None
        out["start_errors"] = errors
        out["kernel_info"] = await kernel_info_all(launches)
        print(f"kernel_info: {out['kernel_info']['answered']} of {len(launches)} answered", flush=True)
        print(f"idle with {len(launches)} kernels for {args.idle:g} s", flush=True)
        service.usage.start_sampling()
        out["idle_n"] = await idle_cpu(service, args.idle, launches)
        service.usage.stop_sampling()
        per = [await kernel_memory(service, launch.container_id) for launch in launches]
        mem1, rss1 = mem_available(), daemon_rss_mib()
        n = max(1, len(launches))
        pick = lambda key: summary([p[key] for p in per if p.get(key) is not None])  # noqa: E731
        out["memory"] = {
            "cgroup_mib": pick("cgroup_mib"),
            "kernel_rss_mib": pick("rss_mib"),
            "kernel_pss_mib": pick("pss_mib"),
            "shim_rss_mib": pick("shim_rss_mib"),
            "host_mem_available_drop_per_kernel_mib": (mem0 - mem1) / n / 2**20,
            "daemon_rss_growth_per_kernel_mib": {k: (rss1.get(k, 0) - rss0.get(k, 0)) / n for k in rss0},
            "mem_available_gib": {"before": mem0 / 2**30, "after": mem1 / 2**30},
        }
    finally:
        t0 = time.perf_counter()
        stop_gate = asyncio.Semaphore(8)

        async def stop(alloc):
            async with stop_gate:
                await service.stop_kernel(alloc.owner, alloc.subject, now=True)

        results = await asyncio.gather(*(stop(a) for a in await service.list_kernels()), return_exceptions=True)
        out["stop_all_s"] = time.perf_counter() - t0
        out["stop_errors"] = [repr(r)[:200] for r in results if isinstance(r, BaseException)][:5]
        await service.close()
    return out


def remove_labelled(label_value: str) -> dict:
    """Remove what still carries this run's label; counts of what was found."""
    import docker

    selector = {"label": f"io.jupyter.berth.bench={label_value}"}
    client = docker.from_env(timeout=120)
    found = {"containers": 0, "networks": 0, "volumes": 0}
    for ctr in client.containers.list(all=True, filters=selector):
        ctr.remove(force=True)
        found["containers"] += 1
    for net in client.networks.list(filters=selector):
        net.remove()
        found["networks"] += 1
    for vol in client.volumes.list(filters=selector):
        vol.remove(force=True)
        found["volumes"] += 1
    client.close()
    return found


# -- report -----------------------------------------------------------------------------------------
def markdown(r: dict, command: str) -> str:
    m, i0, i1, ki = r["memory"], r["idle_0"], r["idle_n"], r["kernel_info"]
    n = r["kernels"]
    lines = [
        BEGIN,
        f"## {n} idle kernels on one host (`benchmarks/idle_kernels.py`)",
        "",
        f"Measured {r['date']} with `{command}` on {r['machine']['cores']} cores and "
        f"{r['machine']['mem_gib']} GiB, Docker {r['machine']['docker']}, cgroup {r['machine']['cgroup']}. "
        f"Load average at the start {r['machine']['loadavg_start'][0]:.2f}, during the idle phases "
        f"{i0['loadavg'][0]:.2f} (no kernel) and {i1['loadavg'][0]:.2f} ({n} kernels), at the end "
        f"{r['loadavg_end'][0]:.2f}: the machine was shared with other work.",
        "",
        f"**Settings.** {n} kernels of {r['request']['cpu']} CPU and {r['request']['mem']} each, over "
        f"{r['users']} users ({n // r['users']} each: a user's network is a /26 by default, room for 61 "
        f"kernels; one user with more needs `c.BerthService.user_subnet_prefix = 24`, 253). "
        f"`cpu_overcommit = {r['cpu_overcommit']:g}`: {n} × {r['request']['cpu']} CPU is "
        f"{n * r['request']['cpu']:g} cores promised on {r['machine']['cores']}, which idle kernels never "
        f"use. Memory is not overcommitted ({n} × {r['request']['mem']} fits the host's allotment). "
        "The warm pool is off, so every kernel is a container of its own. The service is embedded in "
        "the benchmark's process, as standalone JupyterLab embeds it.",
        "",
        "| | figure |",
        "|---|---|",
        f"| started | {len(r['checkpoints']) and r['checkpoints'][-1]['kernels']} of {n} in "
        f"{r['start_all_s']:.0f} s (each p50 {r['start_each_s']['p50']:.2f} s, max "
        f"{r['start_each_s']['max']:.1f} s); errors: {len(r['start_errors'])} |",
        f"| answer `kernel_info` | {ki['answered']} of {ki['asked']}, all asked in {ki['all_s']:.1f} s (20 at a time, a "
        f"fresh client each): first reply on a new connection p50 {1000 * ki['first_rtt_s']['p50']:.0f} ms "
        f"(max {1000 * ki['first_rtt_s']['max']:.0f}), then a round trip p50 {1000 * ki['rtt_s']['p50']:.1f} ms "
        f"(max {1000 * ki['rtt_s']['max']:.1f}) |",
        f"| kernel container, cgroup memory (what the sampler records) | p50 {m['cgroup_mib']['p50']:.1f} MiB "
        f"(min {m['cgroup_mib']['min']:.1f}, max {m['cgroup_mib']['max']:.1f}) |",
        f"| kernel process RSS / PSS | {m['kernel_rss_mib']['p50']:.1f} / {m['kernel_pss_mib']['p50']:.1f} MiB |",
        f"| its `containerd-shim` (host side) RSS | {m['shim_rss_mib']['p50']:.1f} MiB |",
        "| dockerd / containerd growth per kernel (host side) | "
        + " / ".join(f"{v:.2f} MiB" for v in m["daemon_rss_growth_per_kernel_mib"].values())
        + " |",
        f"| host MemAvailable drop per kernel (everything, noisy) | {m['host_mem_available_drop_per_kernel_mib']:.1f} MiB "
        f"({m['mem_available_gib']['before']:.1f} → {m['mem_available_gib']['after']:.1f} GiB) |",
        f"| service (this process) idle CPU, sampler every 15 s | {i0['service_pct_of_core']:.2f}% of a core "
        f"with no kernel → {i1['service_pct_of_core']:.2f}% with {n} |",
        "| dockerd / containerd idle CPU | "
        f"{i0.get('dockerd_pct_of_core', 0):.2f}% / {i0.get('containerd_pct_of_core', 0):.2f}% → "
        f"{i1.get('dockerd_pct_of_core', 0):.2f}% / {i1.get('containerd_pct_of_core', 0):.2f}% of a core |",
        f"| the {n} idle kernels' own CPU | {i1['kernels_pct_of_core']:.2f}% of a core in all |",
        f"| stopping all | {r['stop_all_s']:.0f} s; left behind and removed by label: {r['leftovers']} |",
        "",
        "**The sampler's cost per round** (`sample_all()`: every kernel's cgroup counters read, one ledger "
        "transaction), timed as the kernels came up:",
        "",
        "| kernels | CPU per round p50 (max) | per kernel | wall per round p50 (max) |",
        "|---|---|---|---|",
    ]
    for cp in r["checkpoints"]:
        lines.append(
            f"| {cp['kernels']} | {cp['cpu_ms']['p50']:.0f} ms ({cp['cpu_ms']['max']:.0f}) | "
            f"{cp['cpu_ms']['p50'] / max(1, cp['kernels']):.2f} ms | "
            f"{cp['wall_ms']['p50']:.0f} ms ({cp['wall_ms']['max']:.0f}) |"
        )
    lines += ["", END]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kernels", type=int, default=200)
    ap.add_argument("--users", type=int, default=4)
    ap.add_argument("--request", default='{"cpu": 0.1, "mem": "96M"}', help="each kernel's request (JSON)")
    ap.add_argument("--concurrency", type=int, default=4, help="starts at a time")
    ap.add_argument("--idle", type=float, default=60.0, help="seconds of each idle measurement")
    ap.add_argument("--rounds", type=int, default=5, help="timed sampler rounds at each quarter")
    ap.add_argument("--no-doc", action="store_true", help="do not rewrite docs/benchmarks.md")
    args = ap.parse_args(argv)
    if math.ceil(args.kernels / args.users) > 61:
        print("note: more than 61 kernels per user need c.BerthService.user_subnet_prefix = 24", file=sys.stderr)
    label = f"idle-kernels-{uuid.uuid4().hex[:8]}"
    extra = os.environ.get("BERTH_EXTRA_LABELS", "")
    os.environ["BERTH_EXTRA_LABELS"] = ",".join(filter(None, [extra, f"bench={label}"]))
    tmp = tempfile.mkdtemp(prefix="berth-idle-")
    os.chmod(tmp, 0o755)
    try:
        result = asyncio.run(run(args, label, tmp))
    finally:
        leftovers = remove_labelled(label)
        shutil.rmtree(tmp, ignore_errors=True)
    result["leftovers"] = leftovers
    result["loadavg_end"] = os.getloadavg()
    result["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as f:
        json.dump(result, f, indent=1, default=str)
    command = "python benchmarks/idle_kernels.py" + (
        " " + " ".join(argv or sys.argv[1:]) if (argv or sys.argv[1:]) else ""
    )
    text = markdown(result, command.replace(" --no-doc", ""))
    print(text)
    if not args.no_doc:
        replace_section(DOC, BEGIN, END, text)
    return 0 if result["kernel_info"]["answered"] == result["kernels"] else 1


if __name__ == "__main__":
    sys.exit(main())

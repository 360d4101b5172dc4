#!/usr/bin/env python3
"""Kernel start latency: local ipykernel vs cold Berth container vs warm-pool Berth kernel.

One run measures, on this machine, the time from the start request
(``AsyncKernelManager.start_kernel``) to the first ``kernel_info_reply`` for:

* **local** — the ``python3`` kernelspec through jupyter_client's default provisioner
  (the baseline, measured in the same run);
* **cold** — a Berth kernel whose container is created for the request;
* **warm** — a Berth kernel that adopts a warm-pool container, as standalone JupyterLab runs it
  (the pool learned its mounts and the user's network from a first start: nothing to move);
* **warm-moved** — the same from a pool with configured mounts (as a hub would set it), whose
  containers wait on the shared, isolated pool network and join the user's network on adoption.

The three kinds are interleaved round by round (so load from anything else on the host
falls on all three alike), one kernel at a time, each shut down before the next, and each
start begins with the warm pool full (no refill running). Then ``--concurrent`` idle Berth
kernels run together: all must answer ``kernel_info``; their memory (cgroup, kernel RSS/PSS,
the per-container ``containerd-shim``) is compared with a local kernel's.

Usage::

    python benchmarks/kernel_start.py [--n 20] [--concurrent 40] [--pool-size 2]

Writes ``benchmarks/results/kernel_start.json`` and the ``kernel_start`` section of
``docs/benchmarks.md`` (between its markers; other sections are left alone).
Needs the Docker engine (``berth engine up``) and the kernel image (``berth images bootstrap``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time

from doc_sections import replace_section  # benchmarks/doc_sections.py (scripts run from this folder)
from kernel_start_probes import kernel_memory, machine_facts, mem_available, proc_kib, summary

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RESULTS = os.path.join(HERE, "results", "kernel_start.json")
DOC = os.path.join(ROOT, "docs", "benchmarks.md")
BEGIN, END = "<!-- kernel_start:begin -->", "<!-- kernel_start:end -->"
KINDS = ("local", "cold", "warm", "warm-moved")
#: what each kind's container must be (anything else is not counted)
EXPECTED = {"local": "local", "cold": "kernel", "warm": "pool", "warm-moved": "pool"}
TARGETS = {"cold": 1.2, "warm": 0.25, "warm-moved": 0.25}
#: the request of every Berth kernel in the latency runs (the policy default) and in the concurrent run
START_REQUEST = {"cpu": 1, "mem": "512M"}
IDLE_REQUEST = {"cpu": 0.5, "mem": "256M"}


# -- one start -----------------------------------------------------------------------------------
async def kernel_info(kc, timeout: float = 60.0) -> float:
    """Send kernel_info and wait for its reply; returns the monotonic time it arrived."""
    msg_id = kc.kernel_info()
    deadline = time.monotonic() + timeout
    while True:
        msg = await kc.get_shell_msg(timeout=max(0.01, deadline - time.monotonic()))
        if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "kernel_info_reply":
            return time.perf_counter()


class Bench:
    def __init__(self, args, tmp: str):
        self.args = args
        self.tmp = tmp
        self.dirs = {k: os.path.join(tmp, k) for k in KINDS}
        for d in self.dirs.values():
            os.makedirs(d)
            os.chown(d, 1000, 100) if os.getuid() == 0 else None
        self.service = None  #: learned pool (standalone default): local-free kinds except warm-moved
        self.moved = None  #: pool with configured mounts on the shared pool network
        self.ksm = None
        self.running: dict = {}  #: kernel manager → client, until shut down
        self.phases: dict[str, list[dict]] = {k: [] for k in KINDS}

    async def setup(self):
        from jupyter_client.kernelspec import KernelSpecManager
        from traitlets.config import Config

        from jupyter_berth.kernels import backend
        from jupyter_berth.kernelspecs import plan, sync
        from jupyter_berth.service import BerthService

        os.chmod(self.tmp, 0o755)

        def config(name: str, mounts):
            data = os.path.join(self.tmp, f"berth-data-{name}")
            os.makedirs(data)
            c = Config()
            c.BerthService.data_dir = data
            c.UsageTracker.sample_interval = 0
            c.BerthService.stop_timeout = 1
            c.BerthService.cpu_overcommit = 10.0  # 40 idle kernels × 0.5 CPU on 2 cores (idle kernels use ~0 CPU)
            c.BerthService.default_policy = {"max_cpu": 2, "max_mem": "2G", "default": START_REQUEST}
            c.BerthService.pool_size = self.args.pool_size
            c.WarmPool.mounts = mounts
            return c

        self.service = BerthService(config=config("main", None))  # learns from the first start in dirs["warm"]
        moved = self.dirs["warm-moved"]
        self.moved = BerthService(config=config("moved", [f"{moved}:{moved}"]))
        await self.service.start()
        await self.moved.start()
        backend._service = self.service
        kdir = os.path.join(self.tmp, "jupyter-data", "kernels")
        sync(plan(await self.service.images.catalog_view(), self.service.preset_list, self.service.default_image), kdir)
        os.environ["JUPYTER_PATH"] = os.path.join(self.tmp, "jupyter-data")
        self.ksm = KernelSpecManager()
        self._last = {}
        self._instrument(self.service)
        self._instrument(self.moved)
        # the first start in the warm folder is cold and teaches the standalone pool its mounts and network
        km, kc, _ = await self.start("warm")
        await self.stop(km, kc)
        return await self.service.runtime.ping()

    def _instrument(self, svc):
        """Time the container part of each Berth start (docker create+start, or the adoption)."""
        last = self._last
        for owner, name in ((svc.runtime, "run"), (svc._pool, "adopt")):
            if owner is None:
                continue
            inner = getattr(owner, name)

            async def timed(*a, _inner=inner, _name=name, **k):
                if a and a[0].command == ["berth-kernel-pool"]:  # a pool refill, not the start being timed
                    return await _inner(*a, **k)
                t0 = time.perf_counter()
                try:
                    return await _inner(*a, **k)
                finally:
                    last[_name] = last.get(_name, 0.0) + time.perf_counter() - t0

            setattr(owner, name, timed)

    async def start(self, kind: str, env: dict | None = None):
        from jupyter_client.manager import AsyncKernelManager

        from jupyter_berth.kernels import backend

        backend._service = self.moved if kind == "warm-moved" else self.service
        name = "python3" if kind == "local" else "berth-python-3.11"
        km = AsyncKernelManager(kernel_name=name, kernel_spec_manager=self.ksm)
        self._last.clear()
        t0 = time.perf_counter()
        await km.start_kernel(cwd=self.dirs["cold" if kind == "concurrent" else kind], **({"env": env} if env else {}))
        t1 = time.perf_counter()
        kc = km.client()
        kc.start_channels()
        self.running[km] = kc
        t2 = await kernel_info(kc)
        phases = {
            "total": t2 - t0,
            "start_kernel": t1 - t0,
            "to_first_reply": t2 - t1,
            "container": self._last.get("run", 0.0),
            "adopt": self._last.get("adopt", 0.0),
        }
        return km, kc, phases

    async def stop(self, km, kc) -> None:
        self.running.pop(km, None)
        kc.stop_channels()
        await km.shutdown_kernel(now=True)

    async def container_kind(self, km) -> str | None:
        launch = getattr(km.provisioner, "launch", None)
        if launch is None:
            return "local"
        info = await self.service.runtime.inspect(launch.container_id)
        return info.berth_labels.get("kind") if info else None

    async def calm(self):
        """With ``--quiet-load L``: before a round, wait (at most 3 minutes) for the 1-minute load average to fall to L."""
        deadline = time.monotonic() + 180
        while self.args.quiet_load and os.getloadavg()[0] > self.args.quiet_load and time.monotonic() < deadline:
            await asyncio.sleep(5)

    async def quiet(self):
        """Both pools full (no refill running), then a short pause."""
        for svc in (self.service, self.moved):
            if svc is not None and svc._pool is not None and svc._pool.status():
                await svc._pool.wait_full(timeout=180)
        await asyncio.sleep(0.3)

    # -- latency rounds ----------------------------------------------------------------------------
    async def latency(self) -> dict:
        samples = {k: [] for k in KINDS}
        misses = {k: 0 for k in KINDS}
        rounds = []  #: per round: {kind: seconds, "loadavg": 1-minute load}
        for i in range(self.args.n + 1):  # round 0 warms caches (not counted)
            order = KINDS[i % len(KINDS) :] + KINDS[: i % len(KINDS)]
            await self.calm()
            this = {"loadavg": os.getloadavg()[0]}
            for kind in order:
                await self.quiet()
                km, kc, phases = await self.start(kind)
                got = await self.container_kind(km)
                expected = EXPECTED[kind]
                await self.stop(km, kc)
                if got != expected:
                    misses[kind] += 1
                    print(f"  round {i} {kind}: ran as {got}, not counted", flush=True)
                    continue
                if i > 0:
                    samples[kind].append(phases["total"])
                    self.phases[kind].append(phases)
                    this[kind] = phases["total"]
            if i > 0:
                rounds.append(this)
                print(
                    f"  round {i}: " + "  ".join(f"{k} {samples[k][-1]:.3f}s" for k in KINDS if samples[k]), flush=True
                )
        out = {k: summary(v) for k, v in samples.items()}
        for k in KINDS:
            out[k]["phases_p50"] = {p: statistics.median(ph[p] for ph in self.phases[k]) for p in self.phases[k][0]}
            out[k]["not_counted"] = misses[k]
        # Paired within each round (same moment, same load): robust to load that drifts over the run.
        for k in TARGETS:
            paired = [r[k] / r["local"] for r in rounds if k in r and "local" in r]
            out[k]["paired_ratio_p50"] = statistics.median(paired) if paired else None
        out["rounds"] = rounds
        return out

    # -- many idle kernels -------------------------------------------------------------------------
    async def concurrent(self, count: int) -> dict:
        await self.quiet()
        pool_idle = []
        if self.service._pool is not None:
            for state in self.service._pool._keys.values():
                for pc in state.ready:
                    usage = await self.service.runtime.usage(pc.id)
                    pool_idle.append(usage.mem_bytes / 2**20) if usage else None
        local_km, local_kc, _ = await self.start("local")
        await asyncio.sleep(3)
        pid = local_km.provisioner.process.pid
        local = {
            "rss_mib": proc_kib(pid, "VmRSS") / 1024,
            "pss_mib": (proc_kib(pid, "Pss", "smaps_rollup") or 0) / 1024,
        }
        await self.stop(local_km, local_kc)

        before = mem_available()
        env = {"BERTH_REQUEST": json.dumps(IDLE_REQUEST)}
        gate = asyncio.Semaphore(4)

        async def one(_):
            async with gate:
                km, kc, phases = await self.start("concurrent", env=env)
                return km, kc, phases["total"]

        t0 = time.perf_counter()
        started = await asyncio.gather(*(one(i) for i in range(count)))
        start_all = time.perf_counter() - t0
        await asyncio.sleep(5)  # idle
        t1 = time.perf_counter()
        replies = await asyncio.gather(*(kernel_info(kc, timeout=30) for _, kc, _ in started), return_exceptions=True)
        answered = [r - t1 for r in replies if isinstance(r, float)]
        after = mem_available()
        per = []
        for km, _, _ in started:
            per.append(await kernel_memory(self.service, km.provisioner.launch.container_id))
        await asyncio.gather(*(self.stop(km, kc) for km, kc, _ in started))
        pick = lambda key: summary([p[key] for p in per if p.get(key) is not None])  # noqa: E731
        return {
            "kernels": count,
            "request": IDLE_REQUEST,
            "start_all_s": start_all,
            "start_each": summary([s for _, _, s in started]),
            "answered": len(answered),
            "kernel_info_rtt": summary(answered) if answered else None,
            "cgroup_mem_mib": pick("cgroup_mib"),
            "kernel_rss_mib": pick("rss_mib"),
            "kernel_pss_mib": pick("pss_mib"),
            "shim_rss_mib": pick("shim_rss_mib"),
            "host_mem_per_kernel_mib": (before - after) / count / 2**20,
            "local_kernel": local,
            "pool_container_idle_cgroup_mib": pool_idle,
        }

    async def close(self):
        from jupyter_berth.kernels import backend

        for km, kc in list(self.running.items()):  # left running by an interrupted run
            await self.stop(km, kc)
        for svc in (self.service, self.moved):
            if svc is not None:
                for alloc in await svc.list_kernels():
                    await svc.stop_kernel(alloc.owner, alloc.subject, now=True)
                await svc.stop()
        backend._service = None


# -- report ---------------------------------------------------------------------------------------
def markdown(r: dict) -> str:
    m, lat, conc = r["machine"], r["latency"], r.get("concurrent")
    ms = lambda s: f"{1000 * s:.0f} ms"  # noqa: E731
    row = lambda name, st: f"| {name} | {st['p50']:.1f} | {st['p95']:.1f} |"  # noqa: E731
    lines = [
        BEGIN,
        "## Kernel start: local vs cold container vs warm pool",
        "",
        f"Measured {r['date']} with `{r['command']}` on this project's machine: {m['cores']} cores, "
        f"{m['mem_gib']} GiB, Docker {m['docker']} (cgroup {m['cgroup']}), Linux {m['kernel']}, "
        f"Python {m['python']}, ipykernel {m['ipykernel_local']} locally and in the image. Load average "
        f"{m['loadavg_start'][0]:.1f} at the start and {m['loadavg_end'][0]:.1f} at the end, per round "
        f"{min(x['loadavg'] for x in lat['rounds']):.1f}–{max(x['loadavg'] for x in lat['rounds']):.1f} ("
        + (
            "other work shared the machine; "
            if max(x["loadavg"] for x in lat["rounds"]) >= m["cores"]
            else "a quiet machine; "
        )
        + "the kinds are interleaved round by round, so any load falls on all of them alike).",
        "",
        "Time from `AsyncKernelManager.start_kernel()` to the first `kernel_info_reply`, one kernel at a "
        f"time, each shut down before the next, every start beginning with the warm pools full; "
        f"{lat['local']['n']} counted starts of each kind after one warm-up round. Berth kernels get "
        f"{START_REQUEST['cpu']} CPU and {START_REQUEST['mem']} (limits enforced); the local kernel has none.",
        "",
        "* **local** — the `python3` kernelspec, jupyter_client's default (local) provisioner: the baseline;",
        "* **cold** — a Berth kernel in a container created for the request;",
        "* **warm** — a Berth kernel adopting a warm-pool container, as standalone JupyterLab runs the pool "
        "(mounts and network learned from a first start: the container already waits on the user's network);",
        "* **warm-moved** — the same from a pool with configured mounts, as in hub mode: the container waits on "
        "the shared pool network and joins the user's network on adoption.",
        "",
        "| kind | p50 | p95 | min | max | p50 ÷ local p50 | per-round ratio, median | target |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for k in KINDS:
        s = lat[k]
        ratio = s["p50"] / lat["local"]["p50"]
        target = "baseline" if k == "local" else f"≤ {TARGETS[k]}×"
        verdict = "" if k == "local" else (" ✔" if ratio <= TARGETS[k] else " ✘")
        paired = "–" if k == "local" else f"{s['paired_ratio_p50']:.2f}×"
        lines.append(
            f"| {k} | {ms(s['p50'])} | {ms(s['p95'])} | {ms(s['min'])} | {ms(s['max'])} | "
            f"{ratio:.2f}× | {paired} | {target}{verdict} |"
        )
    lines += [
        "",
        "Where the time goes (medians of each phase):",
        "",
        "| kind | `start_kernel` returns | of which: container create + start / adoption | then to the first reply |",
        "|---|---|---|---|",
    ]
    for k in KINDS:
        ph = lat[k]["phases_p50"]
        part = {"local": "– (process spawned)", "cold": ms(ph["container"])}.get(k, ms(ph["adopt"]))
        lines.append(f"| {k} | {ms(ph['start_kernel'])} | {part} | {ms(ph['to_first_reply'])} |")
    lines += [
        "",
        "The rest of `start_kernel` is the service: policy, image catalog, admission (a ledger "
        "transaction), the user's network, recording the container. After it, a cold kernel still starts its "
        "interpreter and imports inside the container; a warm one has done that in advance and answers at once.",
        "",
        "For scale: gateway_provisioners' DockerProvisioner was reported at a median of 1.88 s against "
        "0.86 s for a local kernel (2.2×), without limits.",
    ]
    if conc:
        lo = conc["local_kernel"]
        idle = conc["pool_container_idle_cgroup_mib"]
        lines += [
            "",
            f"**{conc['kernels']} concurrent idle Berth kernels** ({conc['request']['cpu']} CPU, "
            f"{conc['request']['mem']} each; started 4 at a time in {conc['start_all_s']:.1f} s, "
            f"p50 {ms(conc['start_each']['p50'])} per start): {conc['answered']}/{conc['kernels']} answered "
            f"`kernel_info` after 5 s idle (all asked at once: round trip p50 {ms(conc['kernel_info_rtt']['p50'])}, "
            f"p95 {ms(conc['kernel_info_rtt']['p95'])}).",
            "",
            "| memory per kernel (MiB) | p50 | p95 |",
            "|---|---|---|",
            f"| local ipykernel process, RSS / PSS | {lo['rss_mib']:.1f} / {lo['pss_mib']:.1f} | – |",
            row("Berth kernel process, RSS", conc["kernel_rss_mib"]),
            row("Berth kernel process, PSS", conc["kernel_pss_mib"]),
            row("Berth container, cgroup (what the limit counts)", conc["cgroup_mem_mib"]),
            row("containerd-shim for each container, RSS", conc["shim_rss_mib"]),
            f"| host MemAvailable drop ÷ {conc['kernels']} (noisy: the whole host) "
            f"| {conc['host_mem_per_kernel_mib']:.1f} | – |",
            f"| an idle warm-pool container, cgroup | {statistics.median(idle):.1f} | – |"
            if idle
            else "| an idle warm-pool container, cgroup | – | – |",
            "",
            "Per kernel, a container adds the engine's shim process on the host and tini; the cgroup also "
            "counts page cache the kernel touched. The kernel process itself is "
            + (
                "smaller than the local one here (the image's Debian Python against the host's pyenv build)."
                if conc["kernel_rss_mib"]["p50"] < lo["rss_mib"]
                else "about as large as the local one."
            ),
        ]
    lines += ["", "Raw figures, per round: `benchmarks/results/kernel_start.json`.", END]
    return "\n".join(lines)


def write_doc(section: str) -> None:
    replace_section(DOC, BEGIN, END, section)


async def main(args) -> int:
    tmp = tempfile.mkdtemp(prefix="berth-bench-")
    bench = Bench(args, tmp)
    this = asyncio.current_task()
    for signum in (signal.SIGTERM, signal.SIGINT):  # stopped early: still remove every container it made
        asyncio.get_running_loop().add_signal_handler(signum, this.cancel)
    try:
        engine = await bench.setup()
        result = {
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "machine": machine_facts(engine),
            "command": "python benchmarks/kernel_start.py " + " ".join(sys.argv[1:]),
            "pool_size": args.pool_size,
        }
        result["command"] = result["command"].strip()
        print(f"latency: {args.n} rounds of {' / '.join(KINDS)}", flush=True)
        result["latency"] = await bench.latency()
        if args.concurrent:
            print(f"{args.concurrent} concurrent idle kernels", flush=True)
            result["concurrent"] = await bench.concurrent(args.concurrent)
        result["machine"]["loadavg_end"] = os.getloadavg()
    finally:
        await bench.close()
        shutil.rmtree(tmp, ignore_errors=True)
    lat = result["latency"]
    result["ratios"] = {k: lat[k]["p50"] / lat["local"]["p50"] for k in TARGETS}
    result["targets_met"] = {k: result["ratios"][k] <= t for k, t in TARGETS.items()}
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as f:
        json.dump(result, f, indent=2)
    if not args.no_doc:
        write_doc(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20, help="starts of each kind (default 20)")
    parser.add_argument("--concurrent", type=int, default=40, help="idle Berth kernels run together (0: skip)")
    parser.add_argument("--pool-size", type=int, default=2, help="warm-pool size (default 2)")
    parser.add_argument(
        "--quiet-load",
        type=float,
        default=0.0,
        help="before each round, wait up to 3 min for the 1-minute load average to fall to this (0: never)",
    )
    parser.add_argument("--no-doc", action="store_true", help="do not write docs/benchmarks.md")
    sys.exit(asyncio.run(main(parser.parse_args())))

"""Classroom burst: N students ask for servers within 10 seconds, then each runs one cell.

Each run starts a real JupyterHub (configured as the hub demo: tests/hub_process.py) with N
students in the group ``class-a``, and for each student, through the hub's REST API:

1. ``POST /hub/api/users/<name>/server`` (user_options ``{"cpu": 0.25, "mem": "256M"}``),
   the requests spread evenly over 10 seconds;
2. polls until the server is ready (a failed spawn counts as an error);
3. starts a kernel for a notebook (``POST /user/<name>/api/sessions``) and executes one cell
   over the kernel's websocket.

Measured: seconds from the request until the server is ready and until the cell ran
(p50, p95, max), errors, queue waits (BerthSpawner logs each admission that waited), and,
every 0.5 s, whether the live allocations in the ledger ever exceed the host's capacity.
Plain DockerSpawner runs on the same image in the same run for comparison (no limits,
kernels as local processes in the server, no queue), with the hub's default timeouts and
with start/http timeouts raised to 300 s. A sequential run (one spawn at a time) gives the
single-spawn latency of both.

    python benchmarks/classroom_burst.py                 # the full set (about 10 minutes)
    python benchmarks/classroom_burst.py --runs berth:20 docker:20  --sequential 0
    python benchmarks/classroom_burst.py --write-docs    # also update docs/benchmarks.md

Results go to benchmarks/results/classroom_burst.json (and the docs section between the
``classroom_burst`` markers with --write-docs).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from doc_sections import replace_section  # noqa: E402  (benchmarks/doc_sections.py)

from jupyter_berth.ledger import Ledger  # noqa: E402
from tests.hub_process import HubProcess, run_cell  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "classroom_burst.json"
DOCS = ROOT / "docs" / "benchmarks.md"
BEGIN, END = "<!-- classroom_burst:begin -->", "<!-- classroom_burst:end -->"
OPTIONS = {"cpu": 0.25, "mem": "256M"}
POLICIES = {
    "default": {"max_cpu": 1, "max_mem": "1G", "default": {"cpu": 0.1, "mem": "128M"}},
    "groups": {"class-a": {"max_cpu": 0.5, "max_mem": "512M", "max_kernels": 2}},
    "users": {},
}
#: 2 cores × 10 = 20 CPU of allocations: 50 servers (0.25) and 50 kernels (0.1) fit (17.5).
CPU_OVERCOMMIT = 10.0
SPREAD = 10.0
CELL = "import os, socket\nprint(os.getpid(), socket.gethostname())"


def pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    k = (len(values) - 1) * p
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return round(values[lo] + (values[hi] - values[lo]) * (k - lo), 2)


def summary(values: list[float]) -> dict:
    return {"p50": pct(values, 0.5), "p95": pct(values, 0.95), "max": round(max(values), 2) if values else None}


class Sampler:
    """Every 0.5 s: the sum of live allocations vs the host's capacity, from the ledger."""

    def __init__(self, data_dir: Path):
        self.data_dir = data_dir
        self.samples = 0
        self.over = 0
        self.peak = {"cpu": 0.0, "mem": 0, "servers": 0, "kernels": 0}
        self.capacity = None

    async def run(self, stop: asyncio.Event) -> None:
        ledger = None
        while not stop.is_set():
            try:
                if ledger is None and (self.data_dir / "berth.sqlite").exists():
                    ledger = Ledger(data_dir=str(self.data_dir))
                if ledger is not None:
                    nodes, live = await asyncio.to_thread(lambda led=ledger: (led.nodes(), led.live_allocations()))
                    if nodes:
                        cap = nodes[0]
                        self.capacity = {"cpu": cap.cpu, "mem": cap.mem}
                        cpu, mem = sum(a.cpu for a in live), sum(a.mem for a in live)
                        self.samples += 1
                        self.over += cpu > cap.cpu + 1e-9 or mem > cap.mem
                        self.peak = {
                            "cpu": max(self.peak["cpu"], round(cpu, 3)),
                            "mem": max(self.peak["mem"], mem),
                            "servers": max(self.peak["servers"], sum(a.kind == "server" for a in live)),
                            "kernels": max(self.peak["kernels"], sum(a.kind == "kernel" for a in live)),
                        }
            except Exception as e:  # noqa: BLE001 - a sample that fails (db busy) is skipped, never fatal
                print(f"  sample failed: {e}", file=sys.stderr)
            try:
                await asyncio.wait_for(stop.wait(), 0.5)
            except asyncio.TimeoutError:
                pass
        if ledger is not None:
            ledger.close()


async def wait_ready(hub: HubProcess, client: httpx.AsyncClient, name: str) -> None:
    """Follow the spawn's progress event stream, as the browser's spawn page does (no polling)."""
    while True:
        async with client.stream("GET", f"{hub.api}/users/{name}/server/progress") as r:
            async for line in r.aiter_lines():
                if not line.startswith("data:"):
                    continue
                event = json.loads(line[5:])
                if event.get("failed"):
                    raise RuntimeError(f"spawn failed: {event.get('message', '')[:200]}")
                if event.get("ready"):
                    return
        model = (await client.get(f"{hub.api}/users/{name}")).json()  # the stream ended without a verdict
        server = model.get("servers", {}).get("")
        if server and server.get("ready"):
            return
        if not server or not server.get("pending"):
            raise RuntimeError("spawn failed (see the hub log)")
        await asyncio.sleep(1)


async def timed_spawn(hub: HubProcess, client: httpx.AsyncClient, options: dict, name: str = "alice") -> float:
    """One spawn of ``name``'s server, from the request to its ready event (seconds); then stopped and gone."""
    t0 = time.monotonic()
    r = await client.post(f"{hub.api}/users/{name}/server", json=options)
    if r.status_code not in (201, 202):
        raise RuntimeError(f"spawn refused: {r.status_code} {r.text[:300]}")
    await wait_ready(hub, client, name)
    took = time.monotonic() - t0
    await client.delete(f"{hub.api}/users/{name}/server")
    while (await client.get(f"{hub.api}/users/{name}")).json()["servers"]:
        await asyncio.sleep(0.2)
    return took


async def student(hub: HubProcess, client: httpx.AsyncClient, name: str, delay: float, kernel: str, options) -> dict:
    await asyncio.sleep(delay)
    t0 = time.monotonic()
    out = {"user": name, "error": None}
    try:
        r = await client.post(f"{hub.api}/users/{name}/server", json=options)
        if r.status_code not in (201, 202):
            raise RuntimeError(f"spawn refused: {r.status_code} {r.text[:200]}")
        await wait_ready(hub, client, name)
        out["ready"] = time.monotonic() - t0
        r = await client.post(
            f"{hub.url}/user/{name}/api/sessions",
            json={"path": "lab.ipynb", "type": "notebook", "name": "lab.ipynb", "kernel": {"name": kernel}},
            timeout=300,
        )
        if r.status_code != 201:
            raise RuntimeError(f"kernel refused: {r.status_code} {r.text[:200]}")
        await run_cell(hub, name, r.json()["kernel"]["id"], CELL, timeout=120)
        out["cell"] = time.monotonic() - t0
    except Exception as e:  # noqa: BLE001 - every failure is counted and reported, the run goes on
        out["error"] = f"{type(e).__name__}: {e}"[:300]
    return out


def queue_waits(log: str) -> list[float]:
    return [float(m) for m in re.findall(r"admitted after ([0-9.]+) s in the queue", log)]


async def burst(spawner: str, n: int, raised: bool) -> dict:
    users = [f"student{i:03d}" for i in range(1, n + 1)]
    extra = "c.Spawner.start_timeout = 300\nc.Spawner.http_timeout = 300\n" if raised else ""
    with tempfile.TemporaryDirectory(prefix="berth-burst-") as tmp:
        hub = HubProcess(
            Path(tmp),
            users=users + ["teacher"],
            spawner=spawner,
            extra=extra,
            cpu_overcommit=CPU_OVERCOMMIT,
            policies=POLICIES,
        )
        hub.start()
        stop = asyncio.Event()
        sampler = Sampler(Path(tmp) / "berth")
        sampling = asyncio.ensure_future(sampler.run(stop))
        kernel = "berth-python-3.11" if spawner == "berth" else "python3"
        options = OPTIONS if spawner == "berth" else {}
        t0 = time.monotonic()
        try:
            limits = httpx.Limits(max_connections=n * 2 + 10)
            async with httpx.AsyncClient(headers=hub.headers, timeout=600, limits=limits) as client:
                results = await asyncio.gather(
                    *(student(hub, client, u, i * SPREAD / n, kernel, options) for i, u in enumerate(users))
                )
                wall = time.monotonic() - t0
                stop.set()
                await sampling
                await asyncio.gather(*(client.delete(f"{hub.api}/users/{u}/server") for u in users))
        finally:
            stop.set()
            log = hub.log_path.read_text(errors="replace")
            hub.stop(timeout=120)
    errors = [r for r in results if r["error"]]
    ready = [r["ready"] for r in results if "ready" in r]
    cells = [r["cell"] for r in results if "cell" in r]
    waits = queue_waits(log)
    result = {
        "spawner": spawner,
        "n": n,
        "timeouts": "raised to 300 s" if raised else "hub defaults",
        "wall_s": round(wall, 1),
        "server_ready_s": summary(ready),
        "cell_done_s": summary(cells),
        "errors": len(errors),
        "error_samples": sorted({e["error"] for e in errors})[:3],
        "queued": len(waits),
        "queue_wait_s": summary(waits),
        "ledger_samples": sampler.samples,
        "oversubscribed_samples": sampler.over,
        "capacity": sampler.capacity,
        "peak_allocated": sampler.peak,
    }
    print(json.dumps(result), flush=True)
    return result


async def sequential(spawner: str, k: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="berth-seq-") as tmp:
        hub = HubProcess(
            Path(tmp), users=["alice", "teacher"], spawner=spawner, cpu_overcommit=CPU_OVERCOMMIT, policies=POLICIES
        )
        hub.start()
        try:
            async with httpx.AsyncClient(headers=hub.headers, timeout=300) as client:
                options = OPTIONS if spawner == "berth" else {}
                times = [await timed_spawn(hub, client, options) for _ in range(k)]
        finally:
            hub.stop(timeout=60)
    result = {"spawner": spawner, "sequential": k, "spawn_s": summary(times), "all_s": [round(t, 2) for t in times]}
    print(json.dumps(result), flush=True)
    return result


def docs_section(results: dict) -> str:
    lines = [
        BEGIN,
        "## Classroom burst (BerthSpawner vs DockerSpawner)",
        "",
        f"Measured {results['date']} on this project's machine (2 cores, 24 GiB, Docker 20.10, cgroup v1), "
        f"load average {results['load']} at the start"
        + (" (other work shared the machine). " if results["load"] >= (os.cpu_count() or 1) else " (a quiet machine). ")
        + f"`{results.get('command') or 'python benchmarks/classroom_burst.py --write-docs'}`; "
        "what it does is in its docstring. "
        f"Students ask for servers within {SPREAD:g} s through the hub's REST API (BerthSpawner: "
        f"`{json.dumps(OPTIONS)}`; DockerSpawner: no limits), wait until ready, start a kernel "
        "(Berth: a kernel container through the Berth service; DockerSpawner: a local ipykernel in the server) "
        "and run one cell. Times are seconds from the spawn request.",
        "",
        "| spawner | N | timeouts | errors | server ready p50 / p95 / max | cell done p50 / p95 / max | queued (wait p50 / max) | ledger samples over capacity |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results["bursts"]:
        s, c, q = r["server_ready_s"], r["cell_done_s"], r["queue_wait_s"]
        over = (
            f"{r['oversubscribed_samples']} of {r['ledger_samples']}"
            if r["spawner"] == "berth"
            else "no ledger (no limits)"
        )
        queued = f"{r['queued']} ({q['p50']} / {q['max']})" if r["queued"] else "0"
        lines.append(
            f"| {r['spawner']} | {r['n']} | {r['timeouts']} | {r['errors']} of {r['n']} | {s['p50']} / {s['p95']} / {s['max']} | "
            f"{c['p50']} / {c['p95']} / {c['max']} | {queued} | {over} |"
        )
    if results.get("sequential"):
        lines += [
            "",
            "Sequential spawns (one at a time, request → ready):",
            "",
            "| spawner | spawns | p50 | p95 | max |",
            "|---|---|---|---|---|",
        ]
        for r in results["sequential"]:
            s = r["spawn_s"]
            lines.append(f"| {r['spawner']} | {r['sequential']} | {s['p50']} | {s['p95']} | {s['max']} |")
    lines += [
        "",
        "Errors seen: "
        + (
            "; ".join(
                f"{r['spawner']} N={r['n']} ({r['timeouts']}): {', '.join(r['error_samples'])}"
                for r in results["bursts"]
                if r["errors"]
            )
            or "none"
        )
        + ".",
        END,
    ]
    return "\n".join(lines)


def write_docs(results: dict) -> None:
    replace_section(str(DOCS), BEGIN, END, docs_section(results))


async def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--runs",
        nargs="*",
        default=["berth:20", "docker:20", "docker:20:raised", "berth:50", "docker:50"],
        help="spawner:N[:raised] (spawner berth or docker)",
    )
    parser.add_argument("--sequential", type=int, default=5, help="spawns one at a time per spawner (0: skip)")
    parser.add_argument("--write-docs", action="store_true", help="update the section in docs/benchmarks.md")
    args = parser.parse_args(argv)
    results = {
        "date": time.strftime("%Y-%m-%d"),
        "load": os.getloadavg()[0].__round__(1),
        "command": " ".join(["python benchmarks/classroom_burst.py", *(sys.argv[1:] if argv is None else argv)]),
        "bursts": [],
        "sequential": [],
    }
    if args.sequential:
        for spawner in ("berth", "docker"):
            results["sequential"].append(await sequential(spawner, args.sequential))
    for run in args.runs:
        spawner, n, *rest = run.split(":")
        results["bursts"].append(await burst(spawner, int(n), raised=bool(rest and rest[0] == "raised")))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2))
    if args.write_docs:
        write_docs(results)
    print(docs_section(results))


if __name__ == "__main__":
    asyncio.run(main())

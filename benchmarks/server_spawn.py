"""Server spawn, one at a time: BerthSpawner with its server pool vs DockerSpawner on the same image.

Three real JupyterHubs run side by side (tests/hub_process.py, configured as the hub demo), and
the spawns are interleaved, one hub after the other, so that load on this shared machine falls
on all three alike:

* ``berth``: BerthSpawner as installed (the server pool on, its default size);
* ``docker``: plain DockerSpawner, the same ``berth/singleuser:3.11`` image, no limits;
* ``berth-cold``: BerthSpawner with ``c.ServerPool.size = 0`` (every spawn boots a container).

Each spawn is ``POST /hub/api/users/alice/server`` until the spawn's progress stream says ready,
then the server is stopped (and, for ``berth``, the next spawn starts once the pool has a ready
server again: spawns one at a time, as students arrive, not a burst). Both Berth hubs mount the
user's volume (the pool hands it over); DockerSpawner mounts one too. Reported: p50 / p95 / max
per spawner, the ratio of the p50s to DockerSpawner's, how many Berth spawns adopted a pooled
server, and the load average before and after.

    python benchmarks/server_spawn.py                 # 15 spawns each (about 5 minutes)
    python benchmarks/server_spawn.py --spawns 5 --write-docs

Results go to benchmarks/results/server_spawn.json (and the docs section between the
``server_spawn`` markers with --write-docs).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from classroom_burst import OPTIONS, POLICIES, pct, timed_spawn  # noqa: E402  (benchmarks/)
from doc_sections import replace_section  # noqa: E402

from tests.hub_process import HubProcess  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "server_spawn.json"
DOCS = ROOT / "docs" / "benchmarks.md"
BEGIN, END = "<!-- server_spawn:begin -->", "<!-- server_spawn:end -->"
SPAWNERS = {
    "berth": ("berth", ""),
    "docker": ("docker", ""),
    "berth-cold": ("berth", "c.ServerPool.size = 0\n"),
}


async def spawn_once(hub: HubProcess, client: httpx.AsyncClient, label: str) -> float:
    if label == "berth":  # one at a time: the pool has had the time to refill
        await asyncio.to_thread(hub.wait_server_pool, 1, 120)
    return await timed_spawn(hub, client, OPTIONS if label != "docker" else {})


async def run(spawns: int) -> dict:
    load_before = [round(x, 2) for x in os.getloadavg()]
    hubs: dict[str, HubProcess] = {}
    times: dict[str, list[float]] = {label: [] for label in SPAWNERS}
    with tempfile.TemporaryDirectory(prefix="berth-spawn-") as tmp:
        try:
            for label, (spawner, extra) in SPAWNERS.items():
                hubs[label] = HubProcess(
                    Path(tmp) / label,
                    users=["alice", "teacher"],
                    spawner=spawner,
                    extra=extra,
                    cpu_overcommit=10.0,
                    policies=POLICIES,
                ).start()
            clients = {label: httpx.AsyncClient(headers=hub.headers, timeout=300) for label, hub in hubs.items()}
            for label, hub in hubs.items():  # one warm-up spawn each (first image reads, the user's volume)
                await spawn_once(hub, clients[label], label)
            for i in range(spawns):
                for label, hub in hubs.items():
                    times[label].append(await spawn_once(hub, clients[label], label))
                print(f"  round {i + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()), flush=True)
            adopted = hubs["berth"].log_path.read_text(errors="replace").count("adopted server-pool container")
            for client in clients.values():
                await client.aclose()
        finally:
            for hub in hubs.values():
                hub.stop(timeout=60)
    docker_p50 = pct(times["docker"], 0.5)
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "spawns": spawns,
        "load_before": load_before,
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "adopted": adopted,
        "spawners": {
            label: {
                "p50": pct(t, 0.5),
                "p95": pct(t, 0.95),
                "max": round(max(t), 2),
                "ratio_p50_to_docker": round(pct(t, 0.5) / docker_p50, 2),
                "all_s": [round(x, 2) for x in t],
            }
            for label, t in times.items()
        },
    }
    print(json.dumps(result), flush=True)
    return result


def docs_section(r: dict) -> str:
    lines = [
        BEGIN,
        "## Server spawn, one at a time (server pool vs DockerSpawner)",
        "",
        f"Measured {r['date']} on this project's machine (2 cores, 24 GiB, Docker 20.10, cgroup v1), "
        f"load average {' / '.join(map(str, r['load_before']))} (1 / 5 / 15 min) before and "
        f"{' / '.join(map(str, r['load_after']))} after: other helpers' test runs shared the machine. "
        f"`python benchmarks/server_spawn.py --spawns {r['spawns']} --write-docs`; what it does is in its "
        "docstring (three hubs side by side, spawns interleaved, request → ready through the spawn's "
        f"progress stream). {r['adopted']} of the {r['spawns'] + 1} pool spawns (one warm-up included) adopted a "
        "waiting server.",
        "",
        "| spawner | spawns | p50 (s) | p95 (s) | max (s) | p50 / DockerSpawner's |",
        "|---|---|---|---|---|---|",
    ]
    names = {
        "berth": "BerthSpawner, server pool (default)",
        "docker": "DockerSpawner (same image)",
        "berth-cold": "BerthSpawner, `c.ServerPool.size = 0`",
    }
    for label, s in r["spawners"].items():
        lines.append(
            f"| {names[label]} | {r['spawns']} | {s['p50']} | {s['p95']} | {s['max']} | {s['ratio_p50_to_docker']}× |"
        )
    ratio = r["spawners"]["berth"]["ratio_p50_to_docker"]
    lines += [
        "",
        f"Target: the pool's p50 at most 0.3× DockerSpawner's: {'met' if ratio <= 0.3 else 'missed'} ({ratio}×).",
        END,
    ]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spawns", type=int, default=15, help="spawns per spawner (after one warm-up each)")
    parser.add_argument("--write-docs", action="store_true", help="update the section in docs/benchmarks.md")
    args = parser.parse_args(argv)
    result = asyncio.run(run(args.spawns))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))
    if args.write_docs:
        replace_section(str(DOCS), BEGIN, END, docs_section(result))
    print(docs_section(result))


if __name__ == "__main__":
    main()

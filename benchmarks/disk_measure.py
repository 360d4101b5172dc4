"""What measuring a container's disk use costs (measured mode of disk limits, issue 20 item 7).

On the shared engine, containers whose writable layers hold one 100 MiB file, 10,000 files and
50,000 files; for each, interleaved: a usage sample (``DockerRuntime.usage``: cgroup files, what
the sampler reads every ``sample_interval``), a plain ``docker inspect``, and the disk
measurement (``DockerRuntime.disk_written``: ``inspect --size``, which walks the layer). Ratios
are against the plain inspect of the same round. Writes its section of docs/benchmarks.md
(``--no-doc`` keeps the page) and benchmarks/results/disk_measure.json. The containers carry the
label ``berth-bench=disk-<pid>`` and are removed at the end.

    python benchmarks/disk_measure.py
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
from datetime import date

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import docker  # noqa: E402

from benchmarks.doc_sections import replace_section  # noqa: E402
from jupyter_berth.runtime.docker import DockerRuntime  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DOC = os.path.join(HERE, "..", "docs", "benchmarks.md")
IMAGE = "berth/python:3.11"
LAYERS = {
    "one 100 MiB file": "open('/tmp/f', 'wb').write(b'x' * 100 * 2**20)",
    "10,000 files of 4 KiB": "import os\nfor i in range(10000): open(f'/tmp/f{i}', 'wb').write(b'x' * 4096)",
    "50,000 files of 4 KiB": "import os\nfor i in range(50000): open(f'/tmp/f{i}', 'wb').write(b'x' * 4096)",
}


def make_containers(client, label: str) -> dict[str, str]:
    out = {}
    for name, code in LAYERS.items():
        c = client.containers.run(
            IMAGE,
            ["python", "-c", code + "\nimport time; print('ready', flush=True); time.sleep(3600)"],
            detach=True,
            labels={"berth-bench": label},
            user="1000:100",
            network_mode="none",
        )
        while b"ready" not in c.logs():
            time.sleep(0.2)
        out[name] = c.id
    return out


async def timed(call) -> float:
    started = time.perf_counter()
    await call
    return time.perf_counter() - started


async def measure(runtime: DockerRuntime, cid: str, runs: int) -> dict:
    sample, inspect, disk = [], [], []
    written = None
    for _ in range(runs):  # interleaved, so load changes hit all three alike
        sample.append(await timed(runtime.usage(cid)))
        inspect.append(await timed(runtime.docker("inspect_container", cid)))
        started = time.perf_counter()
        written = await runtime.disk_written(cid)
        disk.append(time.perf_counter() - started)
    return {
        "written": written,
        "sample_ms": statistics.median(sample) * 1000,
        "inspect_ms": statistics.median(inspect) * 1000,
        "disk_ms": statistics.median(disk) * 1000,
    }


async def run(runs: int) -> list[dict]:
    label = f"disk-{os.getpid()}"
    client = docker.from_env()
    runtime = DockerRuntime()
    try:
        ids = make_containers(client, label)
        rows = []
        for name, cid in ids.items():
            row = {"layer": name, **await measure(runtime, cid, runs)}
            rows.append(row)
            print(
                f"{name}: {row['written']:,} bytes; sample {row['sample_ms']:.2f} ms, inspect "
                f"{row['inspect_ms']:.2f} ms, inspect --size {row['disk_ms']:.2f} ms "
                f"({row['disk_ms'] / row['inspect_ms']:.1f}x)"
            )
        return rows
    finally:
        for c in client.containers.list(all=True, filters={"label": f"berth-bench={label}"}):
            c.remove(force=True)
        client.close()
        runtime.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--no-doc", action="store_true")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    rows = asyncio.run(run(args.runs))
    load = max(load_before, os.getloadavg()[0])
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", "disk_measure.json"), "w") as f:
        json.dump({"rows": rows, "load": load, "date": str(date.today())}, f, indent=1)
    if args.no_doc:
        return
    table = "\n".join(
        f"| {r['layer']} | {r['written'] / 2**20:.1f} MiB | {r['sample_ms']:.2f} ms | {r['inspect_ms']:.2f} ms | "
        f"{r['disk_ms']:.2f} ms | {r['disk_ms'] / r['inspect_ms']:.1f}× |"
        for r in rows
    )
    section = f"""<!-- disk_measure:begin -->
## Measuring disk use (`benchmarks/disk_measure.py`)

Measured {date.today()} on {os.cpu_count()} cores, {platform.system()} {platform.release()}, shared engine
(overlay2 on ext4: disk limits in measured mode); load average {load:.1f}. Median of {args.runs} interleaved
rounds per container: a usage sample (cgroup files), a plain `docker inspect`, and the disk measurement
(`docker inspect --size`, which walks the writable layer); the ratio is the measurement against the plain
inspect.

| writable layer | measured | usage sample | inspect | inspect --size | ratio |
|---|---|---|---|---|---|
{table}

The cost grows with the number of files in the layer, not their size: hence its own interval
(`c.UsageTracker.disk_interval`, 60 s), not every sample (`sample_interval`, 15 s).

<!-- disk_measure:end -->"""
    replace_section(DOC, "<!-- disk_measure:begin -->", "<!-- disk_measure:end -->", section)


if __name__ == "__main__":
    main()

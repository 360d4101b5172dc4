"""The chaos run of issue 20 (item 9), long: figures into docs/benchmarks.md.

Ten users, a few concurrent workers, ``--cycles`` kernel start/stop operations while a chaos
task kills and removes kernel containers, removes networks and restarts the service at random;
the invariants (ledger = engine, policies, capacity, closed usage records, nothing leaked) are
checked at every checkpoint (tests/chaos_scenario.py). Needs the engine and berth/python:3.11.

    python benchmarks/chaos.py --cycles 400
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
from datetime import date

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.doc_sections import replace_section  # noqa: E402
from tests.chaos_scenario import Chaos  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DOC = os.path.join(HERE, "..", "docs", "benchmarks.md")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=400)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--seed", type=int, default=9)
    parser.add_argument("--no-doc", action="store_true")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="berth-chaos-") as tmp:
        figures = asyncio.run(Chaos(tmp, cycles=args.cycles, workers=args.workers, seed=args.seed).run()).to_json()
    print(json.dumps(figures, indent=1))
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", "chaos.json"), "w") as f:
        json.dump({**figures, "date": str(date.today()), "cycles_asked": args.cycles}, f, indent=1)
    if args.no_doc:
        return
    f = figures
    section = f"""<!-- chaos:begin -->
## Chaos (`benchmarks/chaos.py`)

Measured {date.today()} on {os.cpu_count()} cores, {platform.system()} {platform.release()}, Python
{platform.python_version()}; load average {load:.1f} at the start (the machine was shared). Command:
`python benchmarks/chaos.py --cycles {args.cycles} --workers {args.workers} --seed {args.seed}`.

Ten users started and stopped small kernels (0.1 CPU, 96 MiB; at most 2 kernels and 0.3 CPU
each) from {args.workers} concurrent workers, {f["cycles"]} operations in {f["seconds"]} s, while the
chaos task killed {f["kills"]} kernel containers (`docker kill`),
removed {f["removals"]} (`docker rm -f`), tried {f["network_attempts"]} times to remove a user's network (removed {f["network_removals"]}: the engine
refuses while a container is attached) and restarted the service {f["restarts"]} times.

| | |
|---|---|
| kernels started / stopped by their users | {f["started"]} / {f["stopped"]} |
| starts refused by the policy (users at their limits) | {f["refused"]} |
| operations hit by the chaos or by another worker (kernel already gone or stopped mid-start) | {f["casualties"]} |
| unexpected errors | {len(f["unexpected"])} |
| checkpoints: ledger = running containers, no user over policy, host within capacity, every usage record closed | {f["checkpoints"]}, all held |
| time for the ledger to agree with the engine at a checkpoint (events settling) | at most {f["settle_max"]} s |
| left at the end: live allocations, containers | 0, 0 |

The service restarts are orderly (a stop, then a new service on the same ledger that
reconciles); a kill -9 of the service during kernel starts is tested by the hub service's burst
test (no failed start, nothing leaked).

<!-- chaos:end -->"""
    replace_section(DOC, "<!-- chaos:begin -->", "<!-- chaos:end -->", section)


if __name__ == "__main__":
    main()

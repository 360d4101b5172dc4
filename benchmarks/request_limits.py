"""How much work a request body can cost a Berth endpoint (issue 20, item 5).

Times the one parser (``jupyter_berth.server.json_io.parse_json``) on the worst bodies under
its limits and on the bodies the issue reported (100,000 nested brackets, 50,000 nested
objects, 50 MB), and for comparison ``json.loads`` on the 50 MB body as it was parsed before.
Writes its section of docs/benchmarks.md (``--no-doc`` keeps the page) and
benchmarks/results/request_limits.json.

    python benchmarks/request_limits.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from datetime import date

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.doc_sections import replace_section  # noqa: E402
from jupyter_berth.errors import RequestError  # noqa: E402
from jupyter_berth.server.json_io import MAX_BODY_BYTES, MAX_DEPTH, parse_json  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DOC = os.path.join(HERE, "..", "docs", "benchmarks.md")


def bodies() -> dict[str, bytes]:
    item = b'{"cpu": 0.25, "mem": "256M", "folders": ["a", "b"]},'
    wide = b"[" + item * ((MAX_BODY_BYTES - 2) // len(item)) + b"{}]"
    nested = b"[" * MAX_DEPTH + b"]" * MAX_DEPTH
    deep_ok = b"[" + b",".join([nested] * ((MAX_BODY_BYTES - 2) // (len(nested) + 1))) + b"]"
    return {
        "1 MiB of small objects (the largest ordinary body)": wide,
        f"1 MiB of arrays {MAX_DEPTH + 1} deep (just over the nesting limit: the longest scan)": deep_ok[
            : MAX_BODY_BYTES - 1
        ]
        if len(deep_ok) > MAX_BODY_BYTES
        else deep_ok,
        "100,000 nested brackets (issue: 500)": b"[" * 100_000 + b"]" * 100_000,
        "50,000 nested objects (issue: 500)": b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
        "50 MB (issue: 12.8 s)": b" " * (50 * 2**20 - 2) + b"{}",
    }


def measure(body: bytes, runs: int) -> tuple[float, str]:
    times, outcome = [], ""
    for _ in range(runs):
        started = time.perf_counter()
        try:
            parse_json(body)
            outcome = "parsed"
        except RequestError as e:
            outcome = f"{e.status}"
        times.append(time.perf_counter() - started)
    return statistics.median(times), outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--no-doc", action="store_true")
    args = parser.parse_args()
    rows = []
    for name, body in bodies().items():
        seconds, outcome = measure(body, args.runs)
        rows.append({"body": name, "bytes": len(body), "seconds": seconds, "answer": outcome})
        print(f"{name}: {len(body):,} bytes → {outcome} in {seconds * 1000:.2f} ms")
    big = b"[" + b'{"a": 1},' * (50 * 2**20 // 9) + b"{}]"
    started = time.perf_counter()
    json.loads(big)
    before = time.perf_counter() - started
    print(f"json.loads of a 50 MB JSON array, as every route did before: {before:.2f} s")
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", "request_limits.json"), "w") as f:
        json.dump({"rows": rows, "json_loads_50mb_seconds": before, "date": str(date.today())}, f, indent=1)
    if args.no_doc:
        return
    load = os.getloadavg()[0]
    table = "\n".join(f"| {r['body']} | {r['bytes']:,} | {r['answer']} | {r['seconds'] * 1000:.2f} ms |" for r in rows)
    section = f"""<!-- request_limits:begin -->
## Request limits (`benchmarks/request_limits.py`)

Measured {date.today()} on {os.cpu_count()} cores, {platform.system()} {platform.release()}, Python
{platform.python_version()}; load average {load:.1f}. Median of {args.runs} runs of the one body parser
(`server_ext/json_io.py`) every Berth route uses; limits {MAX_BODY_BYTES:,} bytes and {MAX_DEPTH} levels.

| body | bytes | answer | time |
|---|---|---|---|
{table}

For comparison, `json.loads` of a 50 MB JSON array (what any route did with such a body before
the limits): {before:.2f} s. A body is received in full before the handler runs (tornado);
the size check then refuses it before any parsing.

<!-- request_limits:end -->"""
    replace_section(DOC, "<!-- request_limits:begin -->", "<!-- request_limits:end -->", section)


if __name__ == "__main__":
    main()

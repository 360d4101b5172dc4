"""The PostgreSQL server the database benchmarks use: ``$BERTH_BENCH_POSTGRES_URL``, or the project's own."""

from __future__ import annotations

import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def postgres_base_url() -> str:
    """``$BERTH_BENCH_POSTGRES_URL``, else the server ``scripts/postgres-up.sh`` starts (or finds) on loopback."""
    url = os.environ.get("BERTH_BENCH_POSTGRES_URL")
    if url:
        return url
    done = subprocess.run(
        ["sh", os.path.join(ROOT, "scripts", "postgres-up.sh")], capture_output=True, text=True, timeout=900, check=True
    )
    return done.stdout.strip().splitlines()[-1]

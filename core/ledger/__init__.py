"""The ledger: the record of hosts, allocations, usage, policies and profiles.

SQLAlchemy 2 over SQLite (default, a file under the data directory) or
PostgreSQL (psycopg 3); the schema belongs to the Alembic migrations in
``migrations/`` (``berth db upgrade``). See ``docs/ledger.md``.
"""

from .db import LedgerRevisionError, default_data_dir, default_url, head_revision
from .records import Allocation, Node, Profile, Usage, UsageRecord, UsageSample
from .store import END_REASONS, Ledger
from .totals import gpu_shares_in_use, live_usage, usage_by_node

__all__ = [
    "END_REASONS",
    "Allocation",
    "Ledger",
    "LedgerRevisionError",
    "Node",
    "Profile",
    "Usage",
    "UsageRecord",
    "UsageSample",
    "default_data_dir",
    "default_url",
    "gpu_shares_in_use",
    "head_revision",
    "live_usage",
    "usage_by_node",
]

"""Connecting to the ledger: engines, sessions, schema revisions and upgrades.

SQLite (the default, a file under the data directory) runs in WAL mode with a
30 s busy timeout and foreign keys on. SQLAlchemy, not the ``sqlite3`` driver,
emits ``BEGIN``: write transactions start with ``BEGIN IMMEDIATE``, which takes
the database's single write lock at once, so check-and-reserve transactions run
one after the other; read-only sessions start with a plain (deferred) ``BEGIN``
and never block on writers.

PostgreSQL goes through psycopg 3 (``postgresql+psycopg://``; ``postgresql://``
and ``postgres://`` URLs are read the same way) with a pool sized for a
threaded service. Admission locks rows there (see ``jupyter_berth.admission``).

The schema belongs to Alembic (``migrations/``). :func:`check_revision` refuses
to run against a database at another revision, with a message that tells the
admin what to run (``berth db upgrade``).
"""

from __future__ import annotations

import logging
import os
import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import URL, make_url

from ..errors import BerthError, RequestError
from . import migrations
from .models import Base

log = logging.getLogger(__name__)

#: Execution option marking a read-only session's connections (plain ``BEGIN`` on SQLite).
READ_ONLY = "berth_read_only"
#: Seconds a writer waits for SQLite's write lock before giving up.
SQLITE_BUSY_TIMEOUT = 30
#: Arbitrary key for the advisory lock that serialises concurrent PostgreSQL upgrades.
_PG_UPGRADE_LOCK = 0x6265_7274  # "bert"
SQLITE_FILE = "berth.sqlite"
UPGRADE_COMMAND = "berth db upgrade"


class LedgerRevisionError(BerthError):
    """The database's schema revision is not the one this version of jupyter-berth needs."""

    status = 500

    def __init__(self, url: str, current: str | None, head: str, *, known: bool = True, tables: bool = False):
        self.url, self.current, self.head = url, current, head
        where = f"the Berth ledger at {url}"
        if current is None and tables:
            message = (
                f"{where} has Berth tables but no schema revision stamp, this version needs {head}; "
                f"back up the database and run `{UPGRADE_COMMAND}` on an empty database, or restore a good backup"
            )
        elif not known:
            message = (
                f"{where} is at revision {current}, this version needs {head} and does not know {current} "
                "(was the database written by a newer jupyter-berth? run that version instead); otherwise "
                f"back up the database and run `{UPGRADE_COMMAND}`"
            )
        else:
            shown = current or "none (no Berth schema yet)"
            message = f"{where} is at revision {shown}, this version needs {head}; back up the database and run `{UPGRADE_COMMAND}`"
        super().__init__(message)


def default_data_dir() -> str:
    """``$BERTH_DATA_DIR``, else ``~/.local/share/jupyter-berth``."""
    return os.environ.get("BERTH_DATA_DIR") or os.path.join(os.path.expanduser("~"), ".local", "share", "jupyter-berth")


def default_url(data_dir: str | None = None) -> str:
    """``sqlite:///<data_dir>/berth.sqlite``."""
    return f"sqlite:///{os.path.join(os.path.abspath(data_dir or default_data_dir()), SQLITE_FILE)}"


def normalise_url(url: str | URL) -> URL:
    """Parse a database URL; PostgreSQL URLs without a driver get psycopg 3.

    Only SQLite files and PostgreSQL are supported: SQLite in memory cannot be
    shared between the service's threads.
    """
    try:
        parsed = make_url(url)
    except Exception as e:  # sqlalchemy raises ArgumentError with its own wording
        raise RequestError("db_url", f"{url!r} is not a database URL ({e})") from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database in (None, "", ":memory:") or (parsed.database or "").startswith("file::memory:"):
            raise RequestError(
                "db_url",
                "an in-memory SQLite ledger cannot be shared between threads; name a file: sqlite:////path/to/berth.sqlite",
            )
    elif backend != "postgresql":
        raise RequestError(
            "db_url",
            f"{backend} is not supported; use sqlite:////path/to/berth.sqlite or postgresql+psycopg://user:password@host/db",
        )
    return parsed


def describe_url(url: str | URL) -> str:
    """The URL as an admin may see it in a message: password hidden; SQLite as its file."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return parsed.database or str(parsed)
    return parsed.render_as_string(hide_password=True)


def resolve_url(url: str | None = None, data_dir: str | None = None) -> str:
    """The ledger a process uses: ``url``, else ``$BERTH_DB_URL``, else SQLite under ``data_dir``."""
    return url or os.environ.get("BERTH_DB_URL") or default_url(data_dir)


def make_engine(url: str | URL, **engine_kwargs: Any) -> Engine:
    """An engine set up for the ledger (see module doc). ``engine_kwargs`` go to ``create_engine``."""
    parsed = normalise_url(url)
    if parsed.get_backend_name() == "sqlite":
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        kwargs = dict(
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT, "check_same_thread": False},
            pool_size=10,
            max_overflow=20,
            pool_timeout=60,
        )
        kwargs.update(engine_kwargs)
        engine = create_engine(parsed, **kwargs)
        _install_sqlite_hooks(engine)
        return engine
    kwargs = dict(pool_size=20, max_overflow=20, pool_timeout=60, pool_pre_ping=True)
    kwargs.update(engine_kwargs)
    return create_engine(parsed, **kwargs)


def _install_sqlite_hooks(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, connection_record):
        # Take transaction control away from the sqlite3 driver; "begin" below emits BEGIN.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT * 1000}")
            cursor.execute("PRAGMA journal_mode = WAL")
            # WAL + NORMAL survives a crash of the process; a power cut may lose the last
            # commits, but then the containers those allocations describe are gone too.
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        if conn.get_execution_options().get(READ_ONLY):
            conn.exec_driver_sql("BEGIN")
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")


# -- revisions ---------------------------------------------------------------------


def alembic_config() -> Config:
    """An Alembic config pointing at the packaged migrations (no ini file needed)."""
    cfg = Config()
    cfg.set_main_option("script_location", os.path.dirname(os.path.abspath(migrations.__file__)))
    return cfg


def head_revision() -> str:
    """The revision this version of jupyter-berth needs."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def is_known_revision(revision: str) -> bool:
    try:
        return ScriptDirectory.from_config(alembic_config()).get_revision(revision) is not None
    except CommandError:
        return False


def current_revision(engine: Engine) -> str | None:
    """The revision stamped in the database (``None`` for an empty database)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def has_berth_tables(engine: Engine) -> bool:
    with engine.connect() as conn:
        existing = set(inspect(conn).get_table_names())
    return bool(existing & set(Base.metadata.tables))


def check_revision(engine: Engine, auto_upgrade: bool = True) -> None:
    """Make sure the schema is at head, or raise :class:`LedgerRevisionError`.

    With ``auto_upgrade``, an empty database (any kind) is created at head and an
    SQLite database at an older known revision is backed up and upgraded. A
    PostgreSQL database at an older revision is never upgraded behind the admin's
    back: back it up (``pg_dump``) and run ``berth db upgrade``.
    """
    head = head_revision()
    current = current_revision(engine)
    if current == head:
        return
    where = describe_url(engine.url)
    if current is None:
        if has_berth_tables(engine):
            raise LedgerRevisionError(where, None, head, tables=True)
        if auto_upgrade:
            upgrade(engine)
            return
        raise LedgerRevisionError(where, None, head)
    known = is_known_revision(current)
    if known and auto_upgrade and engine.dialect.name == "sqlite":
        upgrade(engine)
        return
    raise LedgerRevisionError(where, current, head, known=known)


def backup_sqlite(engine: Engine, suffix: str) -> str | None:
    """Copy an SQLite ledger to ``<file>.bak-<suffix>-<UTC time>`` (online backup API)."""
    path = engine.url.database
    if engine.dialect.name != "sqlite" or not path or not os.path.exists(path):
        return None
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    dest = f"{path}.bak-{suffix}-{stamp}"
    src = sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT)
    try:
        dst = sqlite3.connect(dest)
        try:
            src.backup(dst)
        finally:
            dst.close()
    finally:
        src.close()
    return dest


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str | None, str | None]:
    """Run the migrations up to ``revision``; returns ``(before, after, backup_path)``.

    An SQLite file that already holds a schema is backed up first. Concurrent
    upgrades are serialised (SQLite's write lock; an advisory lock on PostgreSQL),
    so two processes starting on a fresh database do not both create it.
    """
    before = current_revision(engine)
    if revision == "head" and before == head_revision():
        return before, before, None
    backup = backup_sqlite(engine, before) if before is not None else None
    cfg = alembic_config()
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_UPGRADE_LOCK})
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
        after = MigrationContext.configure(conn).get_current_revision()
    if before != after:
        log.info("upgraded the Berth ledger at %s from %s to %s", describe_url(engine.url), before, after)
    return before, after, backup


def downgrade(engine: Engine, revision: str) -> None:
    """Run the migrations down to ``revision`` (``"base"`` empties the database). For tests and rescue."""
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


def stamp(engine: Engine, revision: str) -> None:
    """Write ``revision`` into ``alembic_version`` without running anything (for tests and rescue)."""
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.stamp(cfg, revision, purge=True)

"""Database fixtures: run a test against SQLite and against PostgreSQL.

Registered as a plugin in tests/conftest.py (``pytest_plugins``).

``ledger_url`` is parametrised: ``sqlite`` (a file in ``tmp_path``) and
``postgresql`` (marked ``postgres``). The PostgreSQL server is
``$BERTH_TEST_POSTGRES_URL``, or whatever ``scripts/postgres-up.sh`` brings up
(run once per session). Each PostgreSQL test gets a database of its own,
dropped afterwards (or, where the role may not create databases, a schema of
its own). When no server can be had the PostgreSQL cases are skipped with the
reason, except under CI (``$CI`` set), where they fail: CI must never skip
them silently.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

REPO = Path(__file__).resolve().parent.parent
POSTGRES_UP = REPO / "scripts" / "postgres-up.sh"

#: Computed once per session: {"url": ...} or {"error": ...}.
_postgres: dict[str, str] = {}


def _libpq_url(url: str) -> str:
    """SQLAlchemy URL → a libpq URL psycopg can connect with."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _find_postgres() -> dict[str, str]:
    if _postgres:
        return _postgres
    url = os.environ.get("BERTH_TEST_POSTGRES_URL")
    if not url:
        try:
            done = subprocess.run(["sh", str(POSTGRES_UP)], capture_output=True, text=True, timeout=900)
        except (OSError, subprocess.TimeoutExpired) as e:
            _postgres["error"] = f"scripts/postgres-up.sh could not run: {e}"
            return _postgres
        lines = done.stdout.strip().splitlines()
        if done.returncode != 0 or not lines:
            tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
            _postgres["error"] = f"scripts/postgres-up.sh failed (exit {done.returncode}): {tail}"
            return _postgres
        url = lines[-1].strip()
    try:
        import psycopg

        with psycopg.connect(_libpq_url(url), connect_timeout=10) as conn:
            conn.execute("SELECT 1")
    except Exception as e:  # noqa: BLE001 - any failure to connect is the reason to report
        _postgres["error"] = (
            f"cannot connect to PostgreSQL at {make_url(url).render_as_string(hide_password=True)}: {e}"
        )
        return _postgres
    _postgres["url"] = url
    return _postgres


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The PostgreSQL server's URL (skips, or fails under CI, when there is none)."""
    found = _find_postgres()
    if "error" in found:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is required in CI: {found['error']}")
        pytest.skip(found["error"])
    return found["url"]


def _fresh_postgres(base_url: str):
    """Create a database (or schema) for one test; returns (url, cleanup)."""
    import psycopg
    from psycopg import errors, sql

    name = f"berth_t_{uuid.uuid4().hex[:12]}"
    admin = psycopg.connect(_libpq_url(base_url), autocommit=True)
    try:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except errors.InsufficientPrivilege:
        admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
        url = make_url(base_url).update_query_dict({"options": f"-csearch_path={name}"})

        def drop_schema():
            admin.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))
            admin.close()

        return url.render_as_string(hide_password=False), drop_schema

    def drop_database():
        admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.close()

    return make_url(base_url).set(database=name).render_as_string(hide_password=False), drop_database


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def ledger_url(request, tmp_path):
    """A URL of an empty database: SQLite in tmp_path, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger' / 'berth.sqlite'}"
        return
    url, cleanup = _fresh_postgres(request.getfixturevalue("postgres_url"))
    try:
        yield url
    finally:
        cleanup()


@pytest.fixture
def ledger(ledger_url):
    """A :class:`Ledger` at head on ``ledger_url``."""
    from jupyter_berth.ledger import Ledger

    led = Ledger(url=ledger_url)
    try:
        yield led
    finally:
        led.close()

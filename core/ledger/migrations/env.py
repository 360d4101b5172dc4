"""Alembic environment for the Berth ledger.

Run programmatically by :func:`jupyter_berth.ledger.db.upgrade` (``berth db
upgrade``), which passes an open connection in ``config.attributes["connection"]``.
For developers, ``alembic -c core/ledger/migrations/alembic.ini -x url=sqlite:///x.sqlite
revision --autogenerate -m "..."`` works too (a URL given with ``-x url=`` or as
``sqlalchemy.url`` in the ini file).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from jupyter_berth.ledger.models import Base

config = context.config
target_metadata = Base.metadata


def _configure(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things; batch mode recreates tables instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )


def run_migrations_offline() -> None:
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    context.configure(
        url=url, target_metadata=target_metadata, literal_binds=True, render_as_batch=url.startswith("sqlite")
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            _configure(connection)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()

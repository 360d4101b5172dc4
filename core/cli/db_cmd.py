"""``berth db upgrade`` and ``berth db current``: the ledger database's schema.

``upgrade`` creates the schema in an empty database or runs the migrations up
to the revision this version needs (an SQLite file is copied to
``<file>.bak-<revision>-<time>`` first; back PostgreSQL up with ``pg_dump``
yourself). ``current`` prints the database's revision and the one needed, and
exits 1 when they differ.

The database is the deployment's (``c.BerthService.db_url`` / ``data_dir`` in its config files, see
:mod:`jupyter_berth.cli.command`), or ``--db-url``, else ``$BERTH_DB_URL``, else the SQLite file
under ``--data-dir`` (``$BERTH_DATA_DIR`` or ``~/.local/share/jupyter-berth``).
"""

from __future__ import annotations

from traitlets.config import Application

from .._version import __version__
from ..ledger import db
from ..service import BerthService
from .command import BerthCommand, ledger_settings


class DbCommand(BerthCommand):
    """Shared options of the ``berth db`` subcommands: the ledger the deployment's config names."""

    classes = [BerthService]
    aliases = {"db-url": "BerthService.db_url", "data-dir": "BerthService.data_dir"}

    def ledger_url(self) -> str:
        return ledger_settings(self)[0]

    def engine(self):
        return db.make_engine(self.ledger_url())


class DbUpgradeApp(DbCommand):
    name = "berth db upgrade"
    description = """Create the ledger's schema, or migrate it to the revision this version needs.

    An SQLite ledger is backed up next to itself first; back a PostgreSQL ledger
    up with pg_dump before running this.
    """
    examples = "berth db upgrade\nberth db upgrade --db-url=postgresql+psycopg://berth:PASSWORD@localhost/berth"

    def start(self):
        engine = self.engine()
        try:
            where = db.describe_url(engine.url)
            before, after, backup = db.upgrade(engine)
        finally:
            engine.dispose()
        if before == after:
            print(f"{where}: already at revision {after}, nothing to do")
            return
        print(f"{where}: upgraded from revision {before or 'none (empty database)'} to {after}")
        if backup:
            print(f"backup of the previous database: {backup}")


class DbCurrentApp(DbCommand):
    name = "berth db current"
    description = "Print the ledger's schema revision and the one this version needs; exit 1 if they differ."

    def start(self):
        engine = self.engine()
        try:
            where = db.describe_url(engine.url)
            current = db.current_revision(engine)
        finally:
            engine.dispose()
        head = db.head_revision()
        if current == head:
            print(f"{where}: revision {current} (up to date)")
            return
        if current is not None and not db.is_known_revision(current):
            print(
                f"{where}: revision {current}, unknown to this version (which needs {head}); was it written by a newer jupyter-berth?"
            )
        else:
            print(
                f"{where}: revision {current or 'none (empty database)'}, this version needs {head}; run `berth db upgrade`"
            )
        self.exit(1)


class DbApp(Application):
    """``berth db``: parent of ``upgrade`` and ``current``."""

    name = "berth db"
    version = __version__
    description = "Create, upgrade or inspect the Berth ledger database."
    subcommands = {
        "upgrade": (
            DbUpgradeApp,
            "Create the schema or migrate it to this version's revision (SQLite is backed up first).",
        ),
        "current": (DbCurrentApp, "Print the database's schema revision and the one this version needs."),
    }

    def start(self):
        if self.subapp is None:
            print(f"{self.name}: a subcommand is required\n")
            self.print_subcommands()
            self.exit(1)
        return self.subapp.start()

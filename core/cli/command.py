"""The base of every ``berth`` subcommand that does something: the deployment's configuration.

A command reads the same files as the Berth service and the hub (``jupyter_berth_config.py`` in
the Jupyter config path, ``$BERTH_CONFIG``, ``--config``; :mod:`jupyter_berth.config_files`),
so ``berth images offer`` on the hub host changes the hub's catalog, not a private one. Options on
the command line override the files.
"""

from __future__ import annotations

from traitlets import Unicode
from traitlets.config import Application

from .._version import __version__
from ..config_files import CONFIG_ENV, CONFIG_NAME, load_berth_config

CONFIG_HELP = (
    f"A Berth config file to load after {CONFIG_NAME}.py in the Jupyter config path and ${CONFIG_ENV} "
    "(c.BerthService.… and the rest; the same file the hub's Berth service reads). It must exist."
)


class BerthCommand(Application):
    """A ``berth`` command that loads the deployment's config files before it runs."""

    version = __version__
    raise_config_file_errors = True  # a broken config file is an error to see, not a warning to miss
    config_file = Unicode("", config=True, help=CONFIG_HELP)
    aliases: dict = {}

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        if "config" not in cls.aliases:  # every command takes --config, whatever aliases it adds
            cls.aliases = {"config": "BerthCommand.config_file", **cls.aliases}

    def initialize(self, argv=None):
        super().initialize(argv)
        if self.subapp is None:  # the command that will run (a dispatcher's subcommand loads for itself)
            load_berth_config(self, self.config_file)  # the files read: self.loaded_config_files


BerthCommand.aliases = {"config": "BerthCommand.config_file"}


def ledger_settings(app: Application) -> tuple[str, str]:
    """(ledger URL, data directory) exactly as the service under ``app``'s configuration resolves them."""
    from ..ledger.db import resolve_url
    from ..service import BerthService

    service = BerthService(parent=app)
    try:
        return resolve_url(service.db_url, service.data_dir), service.data_dir
    finally:
        service._db_executor.shutdown(wait=False)

"""Where a deployment's Berth configuration lives: one file name, found the Jupyter way.

Every process of a deployment reads the same settings (``c.BerthService.*`` and the
other ``c.<Class>.*`` sections): the ``berth`` command, the hub's Berth service, the hub
itself (``load_subconfig``, see docs/admin-hub.md) and a standalone Jupyter server (its
``berth`` extension loads ``jupyter_berth_config`` from the same path by jupyter_server's
own rule). The files, lowest priority first:

1. ``jupyter_berth_config.py`` (or ``.json``) in each directory of the Jupyter config path
   (``jupyter --paths``: ``/etc/jupyter``, ``/usr/local/etc/jupyter``, the environment's
   ``etc/jupyter``, ``~/.jupyter``, ``$JUPYTER_CONFIG_DIR``), system-wide first;
2. the file named by ``$BERTH_CONFIG``;
3. the file named with ``--config``.

A later file overrides an earlier one setting by setting; the command line overrides
every file. A file named by ``$BERTH_CONFIG`` or ``--config`` must exist.
"""

from __future__ import annotations

import os

from jupyter_core.paths import jupyter_config_path
from traitlets.config import Application

from .errors import BerthError

#: The configuration file's name (without ``.py`` / ``.json``), the same in every process.
CONFIG_NAME = "jupyter_berth_config"
#: Environment variable naming one more config file, loaded after those in the config path.
CONFIG_ENV = "BERTH_CONFIG"


def config_dirs() -> list[str]:
    """The Jupyter config path, highest priority first (as ``jupyter --paths`` lists it)."""
    return jupyter_config_path()


def named_file(path: str, source: str) -> str:
    """``path`` made absolute; a :class:`BerthError` naming ``source`` if it does not exist."""
    full = os.path.abspath(os.path.expanduser(path))
    if not os.path.isfile(full):
        raise BerthError(f"the config file {full} ({source}) does not exist; fix {source} or create the file")
    return full


def config_files(explicit: str = "") -> list[str]:
    """Every Berth config file that applies, lowest priority first (for ``load_subconfig`` in a hub config).

    ``explicit`` is a file named on the command line (``--config``).
    """
    found = []
    for directory in reversed(config_dirs()):
        for ext in (".py", ".json"):
            path = os.path.join(directory, CONFIG_NAME + ext)
            if os.path.isfile(path) and path not in found:
                found.append(path)
    if os.environ.get(CONFIG_ENV):
        found.append(named_file(os.environ[CONFIG_ENV], f"${CONFIG_ENV}"))
    if explicit:
        found.append(named_file(explicit, "--config"))
    return found


def load_berth_config(app: Application, explicit: str = "") -> list[str]:
    """Load every Berth config file into ``app`` (command line still wins); return the files loaded, in order."""
    app.load_config_file(CONFIG_NAME, path=config_dirs())
    for source, path in ((f"${CONFIG_ENV}", os.environ.get(CONFIG_ENV, "")), ("--config", explicit)):
        if path:
            full = named_file(path, source)
            app.load_config_file(os.path.basename(full), path=os.path.dirname(full))
    return list(app._loaded_config_files)


__all__ = ["CONFIG_ENV", "CONFIG_NAME", "config_dirs", "config_files", "load_berth_config"]

"""``berth info``: which configuration and which ledger a ``berth`` command uses here.

Run it on the hub host before any admin command: if the ledger it names is not the hub's
(the Berth service logs its ledger at start), the commands would change another catalog.
It also says how disk limits hold on this host's engine (``runtime/disk_quota.py``).
"""

from __future__ import annotations

import json
import os

from traitlets import Bool

from .._version import __version__
from ..config_files import CONFIG_ENV, CONFIG_NAME, config_dirs
from ..engine import probe_engine
from ..ledger.db import describe_url
from ..service import BerthService
from .command import BerthCommand, ledger_settings


class InfoApp(BerthCommand):
    name = "berth info"
    description = "Show the config files read (in order), the ledger and the data directory the commands use."
    examples = """berth info
berth info --json
berth info --config=/etc/jupyterhub/jupyter_berth_config.py"""
    classes = [BerthService]
    aliases = {"db-url": "BerthService.db_url", "data-dir": "BerthService.data_dir"}
    as_json = Bool(False, config=True, help="Print JSON instead of text.")
    flags = {"json": ({"InfoApp": {"as_json": True}}, "Print JSON instead of text.")}

    def describe(self) -> dict:
        url, data_dir = ledger_settings(self)
        service = self.config.get("BerthService", {})
        return {
            "version": __version__,
            "config_name": CONFIG_NAME,
            "config_path": config_dirs(),
            "config_env": {CONFIG_ENV: os.environ.get(CONFIG_ENV, "")},
            "config_files": list(self.loaded_config_files),
            "ledger": describe_url(url),
            "ledger_from": "c.BerthService.db_url"
            if service.get("db_url")
            else "$BERTH_DB_URL"
            if os.environ.get("BERTH_DB_URL")
            else "SQLite in the data directory",
            "data_dir": os.path.abspath(data_dir),
            "disk_limits": disk_limits(),
        }

    def start(self):
        info = self.describe()
        if self.as_json:
            print(json.dumps(info, indent=2))
            return
        print(f"jupyter-berth {info['version']}")
        print(f"config path: {CONFIG_NAME}.py/.json searched in (a directory listed first wins):")
        for directory in info["config_path"]:
            print(f"  {directory}")
        print(f"${CONFIG_ENV}: {info['config_env'][CONFIG_ENV] or '(not set)'}")
        print("config files read, in order (later ones win):")
        for path in info["config_files"] or ["(none: built-in defaults)"]:
            print(f"  {path}")
        print(f"ledger: {info['ledger']} ({info['ledger_from']})")
        print(f"data dir: {info['data_dir']}")
        print(f"disk limits: {info['disk_limits']['mode']}, because {info['disk_limits']['why']}")


def disk_limits() -> dict:
    """How this host's Docker engine holds kernels and servers to their disk limit (enforced or measured)."""
    answers, why = probe_engine()
    if not answers:
        return {"mode": "unknown", "why": why, "driver": None, "backing_filesystem": None}
    import docker

    from ..runtime.disk_quota import detect

    client = docker.from_env()
    try:
        return detect(client.api).to_json()
    finally:
        client.close()

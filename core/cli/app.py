"""The ``berth`` command: a traitlets Application with subcommands.

``berth engine up``, ``berth images bootstrap``, ``berth db upgrade`` and the
rest are small Applications of their own (one module per area); this module only
wires them together, in the style of ``jupyter`` and ``jupyterhub``.
"""

from __future__ import annotations

import sys

from traitlets.config import Application

from .._version import __version__
from ..errors import BerthError


def _subcommands() -> dict:
    # Imported lazily so `berth --help` stays fast and one broken area does not break all.
    return {
        "info": (
            "jupyter_berth.cli.info_cmd.InfoApp",
            "Which config files and which ledger the commands use (run it first on a hub host).",
        ),
        "engine": ("jupyter_berth.cli.engine_cmd.EngineApp", "Start or check the container engine (Docker)."),
        "images": ("jupyter_berth.cli.images_cmd.ImagesApp", "Build (offline) and list kernel images."),
        "db": ("jupyter_berth.cli.db_cmd.DbApp", "Create or upgrade the Berth ledger database."),
        "usage": (
            "jupyter_berth.cli.usage_cmd.UsageApp",
            "Usage report by user, group, image or day (table, CSV, JSON).",
        ),
        "budgets": (
            "jupyter_berth.cli.budgets_cmd.BudgetsApp",
            "Budgets per period (CPU-, memory-, GPU-hours) per user and group against use.",
        ),
        "kernelspecs": (
            "jupyter_berth.cli.kernelspecs_cmd.KernelspecsApp",
            "Write Berth kernelspecs (one per image version and preset).",
        ),
        "folders": ("jupyter_berth.cli.folders_cmd.FoldersApp", "Group folders for classes and teams, folder quotas."),
        "develop": (
            "jupyter_berth.cli.develop_cmd.DevelopApp",
            "After pip install -e .: link the lab extension and enable the server extension.",
        ),
        "run": (
            "jupyter_berth.cli.run_cmd.RunApp",
            "Run a notebook as a batch job in its own container (berth run NB.ipynb --cpu=2 -p alpha 0.5).",
        ),
    }


class BerthApp(Application):
    name = "berth"
    version = __version__
    description = """jupyter-berth: every Jupyter kernel in its own quota-bounded container.

    Set-up:  berth engine up && berth images bootstrap
    """
    examples = """
    berth engine up             # use the running Docker engine, or install and start one
    berth images bootstrap      # build the default kernel image without a registry
    berth db upgrade            # create or migrate the ledger database
    berth info                  # which config files (jupyter_berth_config.py) and ledger are used
    """
    subcommands = _subcommands()

    def start(self):
        if self.subapp is None:
            self.print_help()
            self.exit(1)
        return self.subapp.start()


def main(argv=None):
    """Console-script entry point: user-facing errors are printed without a traceback."""
    try:
        app = BerthApp.instance()
        app.initialize(argv)
        app.start()
    except BerthError as e:
        print(f"berth: {e.message}", file=sys.stderr)
        sys.exit(2 if e.status == 400 else 1)
    except KeyboardInterrupt:
        print("berth: interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":  # pragma: no cover
    main()

"""``berth budgets``: every budget (per user, and each group's shared one) against its use.

Reads the policies (the config file's ``BerthService.*`` and the stored ones) and
the ledger; no engine needed.
"""

from __future__ import annotations

import json

from traitlets import Unicode

from ..budgets import AMOUNTS
from .folders_cmd import _COMMON, FolderCommand


class BudgetsApp(FolderCommand):
    name = "berth budgets"
    description = """Budgets per period (CPU-hours, memory GiB-hours, GPU share-hours) against use.

    One row per user budget and per group's shared budget in its current period
    (a calendar month or a term): the amount, what was held so far, what is left
    and when it resets. Users are those with kernels or servers in the last year
    or a policy of their own. --config loads the server's config file for the
    policies it sets (stored policies are read from the ledger)."""
    examples = """berth budgets --config=/etc/jupyterhub/berth_config.py
berth budgets --group=class-a
berth budgets --user=ada --format=json"""

    output_format = Unicode("table", config=True, help="table or json.")
    aliases = {
        **_COMMON,
        "user": "FolderCommand.user",
        "group": "FolderCommand.group",
        "format": "BudgetsApp.output_format",
    }

    def start(self):
        from ..budget_report import all_budgets

        async def work(service):
            return await all_budgets(service, user=self.user or None, group=self.group or None)

        rows = self.run(work)
        if self.output_format == "json":
            print(json.dumps({"budgets": rows}, indent=1))
            return
        print(f"{'scope':6} {'name':20} {'period':14} {'kind':14} {'budget':>10} {'used':>10} {'left':>10}  resets")
        for r in rows:
            for kind, limit in r["limits"].items():
                print(
                    f"{r['scope']:6} {r['name']:20} {r['period']:14} {kind:14} {limit:>10g} "
                    f"{r['used'][kind]:>10.2f} {r['remaining'][kind]:>10.2f}  {r['resets_at'][:16]}"
                )
        if not rows:
            print(f"no budgets ({', '.join(AMOUNTS)}) are set in the policies of known users and groups")

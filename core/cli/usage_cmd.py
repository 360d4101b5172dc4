"""``berth usage``: the usage report on the command line (table, CSV or JSON).

Reads the deployment's ledger directly (no engine needed): the one its config files name,
or ``--db-url``, else ``$BERTH_DB_URL``, else the SQLite file under ``--data-dir``. The rows are the same as the admin
page's and its CSV/JSON exports (see :mod:`jupyter_berth.usage.reports`).
"""

from __future__ import annotations

import sys

from traitlets import Unicode

from ..ledger import Ledger
from ..usage.reports import GROUPINGS, build_report, parse_format
from ..usage.window import ACCEPTED_FORMS
from .db_cmd import DbCommand


class UsageApp(DbCommand):
    name = "berth usage"
    description = f"""Usage per user, group, image (version) and day over a time window.

    Figures: kernels, servers and batch jobs, kernel- and job-hours, CPU core-hours allotted and used
    (and used/allotted), memory GiB-hours allotted, peak memory, GPU share-hours,
    kernels culled for idleness and their idle hours. Kernels running across the
    window's edges count only their overlap; groups are those at the time of use.

    Times: {ACCEPTED_FORMS}. A day, month or period given as --until counts in
    full (--since 2026-11-01 --until 2026-11-30 is all of November). UTC.
    """
    examples = """berth usage                                   # the last 30 days by user
berth usage --since this-month --by group
berth usage --since 2026-01 --until 2026-03 --by user,day --format csv > q1.csv
berth usage --since 7d --by image --format json"""

    since = Unicode("30d", help="Start of the window (see the accepted forms above).").tag(config=True)
    until = Unicode("now", help="End of the window.").tag(config=True)
    by = Unicode(
        "user", help=f"Grouping: one or more of {', '.join(GROUPINGS)}, comma-separated ('' for totals only)."
    ).tag(config=True)
    output_format = Unicode("table", help="table, csv or json.").tag(config=True)
    user = Unicode("", help="Only this user's kernels and servers.").tag(config=True)
    group = Unicode("", help="Only kernels and servers of members of this group (at the time of use).").tag(config=True)
    image = Unicode("", help="Only kernels and servers of this image reference.").tag(config=True)

    aliases = {
        **DbCommand.aliases,
        "since": "UsageApp.since",
        "until": "UsageApp.until",
        "by": "UsageApp.by",
        "format": "UsageApp.output_format",
        "user": "UsageApp.user",
        "group": "UsageApp.group",
        "image": "UsageApp.image",
    }

    def start(self):
        fmt = parse_format(self.output_format)
        ledger = Ledger(self.ledger_url(), auto_upgrade=False)
        try:
            report = build_report(
                ledger,
                self.since,
                self.until,
                self.by,
                user=self.user or None,
                group=self.group or None,
                image=self.image or None,
            )
        finally:
            ledger.close()
        sys.stdout.write(report.render(fmt))
        if fmt == "table":
            w = report.window
            print(
                f"\n{len(report.rows)} rows; window {w.to_json()['since']} – {w.to_json()['until']}"
                + (f"; filters {report.filters}" if report.filters else ""),
                file=sys.stderr,
            )

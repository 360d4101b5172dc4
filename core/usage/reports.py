"""Usage reports: who used what, over any window, grouped by user, group, image and day.

:func:`build_report` runs one aggregate query in the database (see
:mod:`.sql`) and returns a :class:`Report`: rows of the figures below,
the totals, and the window. The same rows feed the admin page, the CSV and JSON
exports, the ``berth usage`` command and the sidebar's "my usage".

Figures of a row (hours are wall-clock hours within the window):

``kernels`` / ``servers`` / ``jobs``
    how many ran in the row's window (a kernel running on two days counts on both);
    ``jobs`` are batch jobs (``berth run``, jupyter-scheduler)
``kernel_hours`` / ``server_hours`` / ``job_hours``
    time they were held
``cpu_core_hours_allotted`` / ``cpu_core_hours_used`` / ``cpu_used_ratio``
    cores reserved × hours; CPU time actually used; used ÷ allotted
``mem_gib_hours_allotted``
    memory limit (GiB) × hours
``mem_peak_gib``
    the highest memory of any kernel or server in the row (its whole-life peak)
``gpu_share_hours_allotted``
    GPU share × hours
``culled`` / ``idle_hours_culled``
    kernels ended by the idle culler in the row's window, and how long they had
    been idle when they were culled (since their first usage sample after which
    they used less than one CPU-second in all)

How a kernel that spans the window's edges (or midnight, by day) is counted:
only its overlap. Allotted figures are pro-rated by time. CPU used is the
difference of its CPU counter between the edges, read off its usage samples
(interpolated linearly between two samples); where a kernel has no samples, its
total is pro-rated by time. Kernels still running count up to now, with the CPU
of their last sample (so a crash of the service loses at most one sampling
interval). Groups are the user's groups when the kernel was started,
not today's; a kernel of a user in two groups counts in both groups' rows, and a
user in no group appears under an empty group.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import column, text

from ..errors import RequestError
from ..ledger.base import UTCDateTime
from .sql import KEY_SQL, pick_index, query_params, report_query
from .window import MAX_DAYS, Window, day_label, iso, parse_window

#: Groupings a report accepts (combine with commas: ``user,day``).
GROUPINGS = tuple(KEY_SQL)
#: Figures of every row, in column order.
FIGURES = (
    "kernels",
    "servers",
    "jobs",
    "kernel_hours",
    "server_hours",
    "job_hours",
    "cpu_core_hours_allotted",
    "cpu_core_hours_used",
    "cpu_used_ratio",
    "mem_gib_hours_allotted",
    "mem_peak_gib",
    "gpu_share_hours_allotted",
    "culled",
    "idle_hours_culled",
)
#: Figures that add up across rows (the others are a maximum and a ratio).
ADDITIVE = tuple(f for f in FIGURES if f not in ("cpu_used_ratio", "mem_peak_gib"))
INTEGER_FIGURES = ("kernels", "servers", "jobs", "culled")
FORMATS = ("table", "csv", "json")
#: Decimals kept in reports (hours to the 3.6 ms), so that every format shows the same numbers.
DECIMALS = 6
#: PostgreSQL ``work_mem`` for the report's transaction (a year of records sorts in memory).
PG_WORK_MEM = "64MB"
#: Spreadsheets read cells starting with these as formulas.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def parse_by(value: str | Iterable[str] | None) -> tuple[str, ...]:
    """``"user"``, ``"group,day"``, ``["image", "day"]`` or ``""``/``None`` (totals only) → key tuple."""
    if value is None:
        return ()
    parts = value.split(",") if isinstance(value, str) else list(value)
    keys: list[str] = []
    for part in parts:
        key = str(part).strip().lower()
        if not key:
            continue
        if key not in GROUPINGS:
            raise RequestError(
                "by",
                f"{part!r} is not a grouping; expected one or more of {', '.join(GROUPINGS)} "
                "separated by commas (for example user or group,day)",
            )
        if key in keys:
            raise RequestError("by", f"{key} is named twice")
        keys.append(key)
    return tuple(keys)


def parse_format(value: str | None) -> str:
    fmt = (value or "table").strip().lower()
    if fmt not in FORMATS:
        raise RequestError("format", f"{value!r} is not an output format; expected one of {', '.join(FORMATS)}")
    return fmt


def _clean(name: str, value: Any) -> Any:
    if name in INTEGER_FIGURES:
        return int(value or 0)
    if value is None:
        return 0.0 if name != "cpu_used_ratio" else None
    value = float(value)
    return round(value, DECIMALS) if math.isfinite(value) else None


def _ratio(row: dict) -> float | None:
    allotted = row["cpu_core_hours_allotted"]
    return round(row["cpu_core_hours_used"] / allotted, DECIMALS) if allotted else None


@dataclass(frozen=True)
class Report:
    """A usage report: ``rows`` (dicts with the keys of ``by`` then :data:`FIGURES`) and ``totals``."""

    window: Window
    by: tuple[str, ...]
    rows: list[dict]
    totals: dict
    filters: dict = field(default_factory=dict)
    generated_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))

    @property
    def columns(self) -> list[str]:
        return [*self.by, *FIGURES]

    def to_json(self) -> dict:
        return {
            "window": self.window.to_json(),
            "by": list(self.by),
            "filters": dict(self.filters),
            "generated_at": iso(self.generated_at),
            "columns": self.columns,
            "rows": self.rows,
            "totals": self.totals,
        }

    def json_text(self) -> str:
        return json.dumps(self.to_json(), indent=1)

    def to_csv(self) -> str:
        """The rows as CSV (a header line first); text cells cannot start a spreadsheet formula."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(self.columns)
        for row in self.rows:
            writer.writerow([csv_cell(row[c]) for c in self.columns])
        return out.getvalue()

    def to_table(self) -> str:
        """The rows as an aligned text table (two spaces between columns; ``-`` for none)."""
        header = [c for c in self.columns]
        cells = [[table_cell(row[c]) for c in self.columns] for row in self.rows]
        widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(header)]
        lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip()]
        lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in cells]
        return "\n".join(lines) + "\n"

    def render(self, fmt: str) -> str:
        fmt = parse_format(fmt)
        return {"table": self.to_table, "csv": self.to_csv, "json": lambda: self.json_text() + "\n"}[fmt]()


def csv_cell(value: Any) -> str:
    """A CSV cell: ``None`` → empty; text starting with ``= + - @`` (or tab/CR) gets a leading ``'``."""
    if value is None:
        return ""
    if isinstance(value, str):
        return "'" + value if value.startswith(FORMULA_PREFIXES) else value
    return str(value)


def table_cell(value: Any) -> str:
    if value is None or value == "":
        return "-"
    return str(value).replace("\n", " ")


def _row(by: tuple[str, ...], values: tuple) -> dict:
    row: dict[str, Any] = {}
    for i, key in enumerate(by):
        v = values[i]
        row[key] = day_label(v) if key == "day" else v
    figures = values[len(by) :]
    names = [f for f in FIGURES if f != "cpu_used_ratio"]
    for name, v in zip(names, figures):
        row[name] = _clean(name, v)
    row["cpu_used_ratio"] = _ratio(row)
    return {k: row[k] for k in [*by, *FIGURES]}


def _sum_rows(rows: list[dict]) -> dict:
    totals: dict[str, Any] = {f: 0 if f in INTEGER_FIGURES else 0.0 for f in FIGURES}
    for row in rows:
        for f in ADDITIVE:
            totals[f] += row[f]
        totals["mem_peak_gib"] = max(totals["mem_peak_gib"], row["mem_peak_gib"])
    for f in ADDITIVE:
        if f not in INTEGER_FIGURES:
            totals[f] = round(totals[f], DECIMALS)
    totals["cpu_used_ratio"] = _ratio(totals)
    return totals


_SPAN = text("SELECT (SELECT MIN(started_at) FROM usage_records), (SELECT MAX(ended_at) FROM usage_records)")
_SPAN = _SPAN.columns(column("first", UTCDateTime()), column("last", UTCDateTime()))


def _query(ledger, by: tuple[str, ...], window: Window, now: datetime, filters: dict) -> list[dict]:
    params = query_params(window.since, window.until, now, filters)
    with ledger.reading() as s:
        index = None
        if ledger.dialect == "sqlite" and "user" not in filters:  # a user's records: the owner index is best
            index = pick_index(window.since, window.until, *s.execute(_SPAN).one())
        if ledger.dialect == "postgresql":
            # compiling this query costs more than running it; its sort and hash fit in memory
            s.execute(text("SET LOCAL jit = off"))
            s.execute(text(f"SET LOCAL work_mem = '{PG_WORK_MEM}'"))
        result = s.execute(report_query(ledger.dialect, by, filters, index=index), params).all()
    rows = [_row(by, tuple(r)) for r in result]
    rows.sort(key=lambda row: tuple((row[k] is not None, row[k] or "") for k in by))  # the same on every database
    return rows


def build_report(
    ledger,
    since: str | datetime | None = None,
    until: str | datetime | None = None,
    by: str | Iterable[str] | None = "user",
    *,
    user: str | None = None,
    group: str | None = None,
    image: str | None = None,
    now: datetime | None = None,
) -> Report:
    """The usage report for ``[since, until)`` grouped ``by`` (see the module doc).

    ``user``, ``group`` and ``image`` restrict it to records of that user, group
    (at the time of use) or image. Blocking: call from a thread in async code.
    Raises :class:`RequestError` for a malformed window or an unknown grouping.
    """
    now = now or datetime.now(timezone.utc)
    window = parse_window(since, until, now=now)
    keys = parse_by(by)
    if "day" in keys and window.seconds > MAX_DAYS * 86400:
        raise RequestError(
            "since",
            f"a report by day covers at most {MAX_DAYS} days, this window has "
            f"{int(window.seconds // 86400)}; shorten it or group without day",
        )
    filters = {k: v for k, v in (("user", user), ("group", group), ("image", image)) if v not in (None, "")}
    rows = _query(ledger, keys, window, now, filters)
    if set(keys) <= {"user", "image"}:
        totals = _sum_rows(rows)  # each record is in exactly one row: the totals add up
    else:
        (totals,) = _query(ledger, (), window, now, filters) or [_sum_rows([])]
    return Report(window=window, by=keys, rows=rows, totals=totals, filters=filters, generated_at=now)


__all__ = ["FIGURES", "FORMATS", "GROUPINGS", "Report", "build_report", "csv_cell", "parse_by", "parse_format"]

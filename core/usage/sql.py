"""The SQL behind usage reports: one aggregate query, the same on SQLite and PostgreSQL.

The database does the work (no Python loop over records). The query, in steps
(common table expressions the planners fold into one pass):

``recs``
    usage records overlapping the window (``ended_at > since AND started_at <
    until``, read through one of the composite indexes of migration 0004) plus
    the live allocations (reserved or running), which end "now" and whose CPU
    figure is their last sample. Times become epoch seconds.
``clipped`` / ``pieces``
    each record clipped to the window, ``[ps, pe)``; with ``day`` in the
    grouping, one piece per UTC day the record touches (a recursive expansion
    that walks each record's days: a year of records costs one row per
    record-day, not records × days). ``lo_dt``/``hi_dt`` are the piece's edges
    that fall inside its record (as datetimes, so sample lookups use the index).
``final``
    CPU used in the piece: the record's total when the piece is the whole
    record; otherwise the CPU counter at the upper edge minus the counter at the
    lower edge, each read off the record's usage samples (interpolated between
    the sample before and the sample after the edge; the record's start, at 0,
    and its last sample or end, at its total, stand in where a side has none, so
    a record without samples is pro-rated by time). These lookups are index
    seeks, made only for the few pieces cut by an edge. For culled kernels, the
    idle time: from the first sample after which less than ``IDLE_CPU_SECONDS``
    of CPU was used, to the cull (the whole life when the kernel used less than
    that in all; 0 when unknown).

Then one ``GROUP BY`` over the keys (``group`` expands each record's groups, as
they were when it ran, with a lateral JSON join). Only fixed SQL fragments from
this module are put into the text; every value is a bound parameter.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, text
from sqlalchemy.sql.elements import TextClause

from ..ledger.base import UTCDateTime

#: A culled kernel was idle from its first sample with less than this many CPU-seconds still to use.
IDLE_CPU_SECONDS = 1.0
#: Grouping key → SQL expression over the final pieces ``p`` (and groups ``g``).
KEY_SQL = {"user": "p.owner", "group": "g.value", "image": "p.image", "day": "p.d"}
GIB = 1024.0**3

_REC_COLS = ("aid", "kind", "cpu", "mem", "gpu", "s", "e", "last_t", "cpu_s", "peak", "reason")


class Dialect:
    """The few places where SQLite and PostgreSQL SQL differ."""

    def __init__(self, name: str):
        if name not in ("sqlite", "postgresql"):
            raise ValueError(f"usage reports support sqlite and postgresql, not {name}")
        self.name = name
        self.pg = name == "postgresql"

    def epoch(self, col: str) -> str:
        if self.pg:
            return f"CAST(EXTRACT(EPOCH FROM {col}) AS DOUBLE PRECISION)"
        return f"((julianday({col}) - 2440587.5) * 86400.0)"

    def greatest(self, *args: str) -> str:
        return f"{'GREATEST' if self.pg else 'max'}({', '.join(args)})"

    def least(self, *args: str) -> str:
        return f"{'LEAST' if self.pg else 'min'}({', '.join(args)})"

    def day_of(self, expr: str) -> str:
        if self.pg:
            return f"CAST(FLOOR(({expr}) / 86400.0) AS BIGINT)"
        return f"CAST((({expr}) / 86400.0) AS INTEGER)"  # epochs here are positive: truncation is floor

    def day_start(self, day: str) -> str:
        """Midnight (UTC) of day number ``day`` as the database stores datetimes."""
        if self.pg:
            return f"CAST(to_timestamp(({day}) * 86400.0) AT TIME ZONE 'UTC' AS TIMESTAMP)"
        return f"(datetime(({day}) * 86400, 'unixepoch') || '.000000')"

    def groups_of(self, col: str, alias: str) -> str:
        """A table source of the JSON list ``col``'s strings, column ``{alias}.value``."""
        if self.pg:
            return f"json_array_elements_text({col}) AS {alias}(value)"
        return f"json_each({col}) AS {alias}"

    def expand_groups(self, col: str) -> str:
        if self.pg:
            return f"LEFT JOIN LATERAL {self.groups_of(col, 'g')} ON TRUE"
        return f"LEFT JOIN {self.groups_of(col, 'g')}"


def _filters(d: Dialect, alias: str, filters: dict) -> str:
    sql = ""
    if filters.get("user") is not None:
        sql += f" AND {alias}.owner = :f_user"
    if filters.get("image") is not None:
        sql += f" AND {alias}.image = :f_image"
    if filters.get("group") is not None:
        sql += f" AND EXISTS (SELECT 1 FROM {d.groups_of(alias + '.groups', 'gf')} WHERE gf.value = :f_group)"
    return sql


#: The composite indexes of migration 0004, by the end of the history they serve.
WINDOW_INDEXES = {"ended": "ix_usage_records_ended_at_started_at", "started": "ix_usage_records_started_at_ended_at"}


def pick_index(since: datetime, until: datetime, first_start: datetime | None, last_end: datetime | None) -> str | None:
    """Which window index scans fewer entries: ``"ended"`` (records ending after ``since``)
    or ``"started"`` (records starting before ``until``), judged from the history's span.

    SQLite has no statistics to judge this by itself (PostgreSQL does, and gets no hint).
    """
    if first_start is None or last_end is None:
        return None
    return "ended" if (last_end - since) <= (until - first_start) else "started"


def _sample(edge: str, side: str, what: str) -> str:
    """The sample just before (``prev``, at or before) or after (``next``) a piece's edge: its time or CPU counter."""
    cmp, order = ("<=", "DESC") if side == "prev" else (">", "ASC")
    return (
        f"(SELECT u.{what} FROM usage_samples u WHERE u.allocation_id = p.aid AND u.at {cmp} p.{edge}_dt "
        f"ORDER BY u.at {order} LIMIT 1)"
    )


def _cpu_at(d: Dialect, edge: str, x: str) -> str:
    """The CPU counter at the piece edge ``x``: 0 at the record's start, its total at its end or after its
    last sample, else interpolated between the samples either side of the edge (``(start, 0)`` and
    ``(last sample or end, total)`` stand in where a side has none). The lookups are index seeks, made
    only for edges inside a record (``{edge}_dt`` set)."""
    last = "COALESCE(p.last_t, p.e)"
    pt = f"COALESCE({d.epoch(_sample(edge, 'prev', 'at'))}, p.s)"
    pc = f"COALESCE({_sample(edge, 'prev', 'cpu_seconds')}, 0.0)"
    nt = f"COALESCE({d.epoch(_sample(edge, 'next', 'at'))}, {last})"
    nc = f"COALESCE({_sample(edge, 'next', 'cpu_seconds')}, p.cpu_s)"
    at_record_edge = "0.0" if edge == "lo" else "p.cpu_s"
    return (
        f"(CASE WHEN p.{edge}_dt IS NULL THEN {at_record_edge} "
        f"WHEN {x} >= {last} THEN p.cpu_s "
        f"ELSE {pc} + ({nc} - {pc}) * COALESCE(({x} - {pt}) / NULLIF({nt} - {pt}, 0.0), 0.0) END)"
    )


def report_query(dialect: str, by: tuple[str, ...], filters: dict, index: str | None = None) -> TextClause:
    """The aggregate query for grouping ``by`` (keys of :data:`KEY_SQL`, may be empty).

    Bound parameters: ``since``/``until`` (datetimes), ``since_ep``/``until_ep``/``now_ep``
    (epoch seconds) and ``f_user``/``f_image``/``f_group`` for the filters given. ``index``
    (``"ended"``/``"started"``, SQLite only) names the window index to read records by.
    """
    d = Dialect(dialect)
    hint = f" INDEXED BY {WINDOW_INDEXES[index]}" if index and not d.pg else ""
    ep = d.epoch
    # only the columns this grouping needs travel through the steps
    extra = [
        (name, col)
        for key, name, col in (("user", "owner", "owner"), ("group", "grps", "groups"), ("image", "image", "image"))
        if key in by
    ]
    rec_extra = "".join(f", r.{col} AS {name}" for name, col in extra)
    live_extra = "".join(f", a.{col}" for name, col in extra)
    recs = f"""
recs AS (
  SELECT r.allocation_id AS aid, r.kind AS kind, r.cpu AS cpu, r.mem AS mem, r.gpu AS gpu,
         {ep("r.started_at")} AS s, {ep("r.ended_at")} AS e, CAST(NULL AS DOUBLE PRECISION) AS last_t,
         r.cpu_seconds AS cpu_s, r.mem_peak_bytes AS peak, r.end_reason AS reason{rec_extra}
  FROM usage_records r{hint}
  WHERE r.ended_at > :since AND r.started_at < :until{_filters(d, "r", filters)}
  UNION ALL
  SELECT a.id, a.kind, a.cpu, a.mem, a.gpu, {ep("COALESCE(a.started_at, a.created_at)")}, :now_ep,
         {ep("COALESCE(a.sampled_at, a.started_at, a.created_at)")}, COALESCE(a.cpu_seconds, 0.0),
         COALESCE(a.mem_peak_bytes, 0), CAST(NULL AS VARCHAR(32)){live_extra}
  FROM allocations a
  WHERE a.state IN ('reserved', 'running') AND COALESCE(a.started_at, a.created_at) < :until{_filters(d, "a", filters)}
)"""
    cols = ", ".join([*_REC_COLS, *(name for name, _ in extra)])
    if "day" in by:
        first = d.day_of(d.greatest("s", ":since_ep"))
        last = d.day_of(d.least("e", ":until_ep"))
        pieces = f"""
spans({cols}, d, dl) AS (
  SELECT {cols}, {first}, {last} FROM recs
  UNION ALL
  SELECT {cols}, d + 1, dl FROM spans WHERE d < dl
),
clipped AS (
  SELECT {cols}, d, {d.greatest("s", ":since_ep", "d * 86400.0")} AS ps,
         {d.least("e", ":until_ep", "(d + 1) * 86400.0")} AS pe
  FROM spans
),
pieces AS (
  SELECT clipped.*,
         CASE WHEN ps > s THEN (CASE WHEN d * 86400.0 > :since_ep THEN {d.day_start("d")} ELSE :since END) END AS lo_dt,
         CASE WHEN pe < e THEN (CASE WHEN (d + 1) * 86400.0 < :until_ep THEN {d.day_start("d + 1")} ELSE :until END) END AS hi_dt
  FROM clipped WHERE pe > ps
)"""
    else:
        pieces = f"""
clipped AS (
  SELECT {cols}, {d.greatest("s", ":since_ep")} AS ps, {d.least("e", ":until_ep")} AS pe FROM recs
),
pieces AS (
  SELECT clipped.*, CASE WHEN ps > s THEN :since END AS lo_dt, CASE WHEN pe < e THEN :until END AS hi_dt
  FROM clipped WHERE pe > ps
)"""
    culled_here = "(p.reason = 'culled' AND p.pe >= p.e)"  # culled inside this piece

    idle_at = (
        f"(SELECT u.at FROM usage_samples u WHERE u.allocation_id = p.aid "
        f"AND u.cpu_seconds >= p.cpu_s - {IDLE_CPU_SECONDS} ORDER BY u.cpu_seconds, u.at LIMIT 1)"
    )
    idle_from = f"CASE WHEN p.cpu_s < {IDLE_CPU_SECONDS} THEN p.s ELSE COALESCE({ep(idle_at)}, p.e) END"
    curve = f"""
final AS (
  SELECT p.*,
         CASE WHEN p.lo_dt IS NULL AND p.hi_dt IS NULL THEN p.cpu_s
              ELSE {d.greatest(f"{_cpu_at(d, 'hi', 'p.pe')} - {_cpu_at(d, 'lo', 'p.ps')}", "0.0")} END AS used,
         CASE WHEN {culled_here} THEN {d.greatest(f"p.e - ({idle_from})", "0.0")} ELSE 0.0 END AS idle_s
  FROM pieces p
)"""
    keys = [KEY_SQL[k] for k in by]
    join = ""
    where = ""
    if "group" in by:
        join = d.expand_groups("p.grps")
        if filters.get("group") is not None:
            where = "WHERE g.value = :f_group"
    hours = "(p.pe - p.ps)"
    select = ", ".join(
        [f"{k} AS k{i}" for i, k in enumerate(keys)]
        + [
            "SUM(CASE WHEN p.kind = 'kernel' THEN 1 ELSE 0 END) AS kernels",
            "SUM(CASE WHEN p.kind = 'server' THEN 1 ELSE 0 END) AS servers",
            "SUM(CASE WHEN p.kind = 'job' THEN 1 ELSE 0 END) AS jobs",
            f"SUM(CASE WHEN p.kind = 'kernel' THEN {hours} ELSE 0.0 END) / 3600.0 AS kernel_hours",
            f"SUM(CASE WHEN p.kind = 'server' THEN {hours} ELSE 0.0 END) / 3600.0 AS server_hours",
            f"SUM(CASE WHEN p.kind = 'job' THEN {hours} ELSE 0.0 END) / 3600.0 AS job_hours",
            f"SUM(p.cpu * {hours}) / 3600.0 AS cpu_core_hours_allotted",
            "SUM(p.used) / 3600.0 AS cpu_core_hours_used",
            f"SUM(p.mem * {hours}) / {3600.0 * GIB} AS mem_gib_hours_allotted",
            f"MAX(p.peak) / {GIB} AS mem_peak_gib",
            f"SUM(p.gpu * {hours}) / 3600.0 AS gpu_share_hours_allotted",
            f"SUM(CASE WHEN {culled_here} THEN 1 ELSE 0 END) AS culled",
            "SUM(p.idle_s) / 3600.0 AS idle_hours_culled",
        ]
    )
    group = f"GROUP BY {', '.join(keys)}" if keys else ""
    sql = f"WITH RECURSIVE {recs},{pieces},{curve}\nSELECT {select}\nFROM final p {join} {where} {group}"
    params = [bindparam("since", type_=UTCDateTime()), bindparam("until", type_=UTCDateTime())]
    return text(sql).bindparams(*params)


def query_params(since: datetime, until: datetime, now: datetime, filters: dict) -> dict:
    """Bound values for :func:`report_query`."""
    params = {
        "since": since,
        "until": until,
        "since_ep": since.timestamp(),
        "until_ep": until.timestamp(),
        "now_ep": now.timestamp(),
    }
    for name in ("user", "image", "group"):
        if filters.get(name) is not None:
            params[f"f_{name}"] = filters[name]
    return params

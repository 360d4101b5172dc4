"""HTML and inline SVG for the admin usage page: plain strings, no JavaScript, works offline.

Pure functions from report rows to markup, so they are tested without a server.
Every piece of text that comes from data (user, group and image names) goes
through :func:`html.escape`.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from urllib.parse import urlencode

#: Series colours (colour-blind safe, Okabe–Ito).
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
#: Lines drawn in the per-group plot; the rest are summed as "other groups".
MAX_SERIES = 7
#: Column titles of the table.
TITLES = {
    "user": "User",
    "group": "Group",
    "image": "Image",
    "day": "Day",
    "kernels": "Kernels",
    "servers": "Servers",
    "jobs": "Jobs",
    "kernel_hours": "Kernel-hours",
    "server_hours": "Server-hours",
    "job_hours": "Job-hours",
    "cpu_core_hours_allotted": "CPU core-h allotted",
    "cpu_core_hours_used": "CPU core-h used",
    "cpu_used_ratio": "Used / allotted",
    "mem_gib_hours_allotted": "Memory GiB-h allotted",
    "mem_peak_gib": "Peak memory GiB",
    "gpu_share_hours_allotted": "GPU share-h allotted",
    "culled": "Culled",
    "idle_hours_culled": "Idle h culled",
}
e = html.escape


def fmt(value) -> str:
    """A table cell: integers as they are, fractions with up to 2 decimals, ``–`` for none."""
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) >= 0.005 or value == 0 else f"{value:.4f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _nice_max(value: float) -> float:
    """A round axis maximum at or above ``value`` (1, 2, 2.5, 5 × 10ⁿ)."""
    if value <= 0:
        return 1.0
    base = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if step * base >= value:
            return step * base
    return 10 * base


def _frame(title: str, width: int, height: int, body: str, desc: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" role="img" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" aria-label="{e(title)}"><title>{e(title)}</title><desc>{e(desc)}</desc>'
        f'<text x="8" y="18" class="plot-title">{e(title)}</text>{body}</svg>'
    )


def _y_axis(left: int, top: int, plot_w: int, plot_h: int, ymax: float, unit: str) -> str:
    out = []
    for i in range(5):
        v = ymax * i / 4
        y = top + plot_h - plot_h * i / 4
        out.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" class="tick">{v:g}</text>'
        )
    out.append(f'<text x="{left}" y="{top - 8}" class="unit">{e(unit)}</text>')
    return "".join(out)


def line_chart(
    title: str,
    labels: Sequence[str],
    series: dict[str, Sequence[float]],
    unit: str,
    width: int = 600,
    height: int = 300,
    dashed: Iterable[str] = (),
    colours: dict[str, str] | None = None,
) -> str:
    """Lines over ``labels`` (days), one per series, with a legend. Empty data → a note instead."""
    if not labels or not series:
        return _frame(title, width, 60, '<text x="8" y="44" class="empty">No usage in this window.</text>', "no data")
    dashed = set(dashed)
    left, top, right, legend_h = 56, 40, 16, 22 * math.ceil(len(series) / 4)
    plot_w, plot_h = width - left - right, height - top - 40 - legend_h
    ymax = _nice_max(max((max(v) for v in series.values() if len(v)), default=0.0))
    n = len(labels)
    x = (lambda i: left + plot_w / 2) if n == 1 else (lambda i: left + plot_w * i / (n - 1))
    parts = [_y_axis(left, top, plot_w, plot_h, ymax, unit)]
    step = max(1, math.ceil(n / 8))
    for i in range(0, n, step):
        parts.append(
            f'<text x="{x(i):.1f}" y="{top + plot_h + 16}" text-anchor="middle" class="tick">{e(labels[i][5:] if len(labels[i]) == 10 else labels[i])}</text>'
        )
    for k, (name, values) in enumerate(series.items()):
        colour = (colours or {}).get(name, PALETTE[k % len(PALETTE)])
        points = " ".join(f"{x(i):.1f},{top + plot_h - plot_h * (v / ymax):.1f}" for i, v in enumerate(values))
        dash = ' stroke-dasharray="6 4"' if name in dashed else ""
        parts.append(
            f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"{dash}>'
            f"<title>{e(name)}</title></polyline>"
        )
        if n == 1 or n <= 40:
            parts += [
                f'<circle cx="{x(i):.1f}" cy="{top + plot_h - plot_h * (v / ymax):.1f}" r="2.5" fill="{colour}">'
                f"<title>{e(name)} {e(labels[i])}: {v:g} {e(unit)}</title></circle>"
                for i, v in enumerate(values)
            ]
        lx, ly = 8 + (k % 4) * (width - 16) / 4, height - legend_h + 14 + 22 * (k // 4)
        parts.append(
            f'<rect x="{lx:.0f}" y="{ly - 9}" width="14" height="4" fill="{colour}"/>'
            f'<text x="{lx + 20:.0f}" y="{ly - 3}" class="legend">{e(name[:28])}</text>'
        )
    desc = f"{len(series)} series over {n} days, up to {ymax:g} {unit}"
    return _frame(title, width, height, "".join(parts), desc)


def bar_chart(
    title: str,
    items: Sequence[tuple[str, float, float]],
    unit: str,
    width: int = 600,
    labels: tuple[str, str] = ("allotted", "used"),
) -> str:
    """Horizontal bars: for each ``(name, allotted, used)`` a light bar (allotted) with a dark one (used) inside."""
    if not items:
        return _frame(title, width, 60, '<text x="8" y="44" class="empty">No usage in this window.</text>', "no data")
    left, top, bar_h, gap = 150, 44, 14, 8
    height = top + len(items) * (bar_h + gap) + 8
    plot_w = width - left - 90
    vmax = _nice_max(max(max(a, u) for _, a, u in items))
    parts = [
        f'<rect x="{left}" y="26" width="14" height="8" class="bar-allotted"/>'
        f'<text x="{left + 20}" y="34" class="legend">{e(labels[0])}</text>'
        f'<rect x="{left + 100}" y="26" width="14" height="8" class="bar-used"/>'
        f'<text x="{left + 120}" y="34" class="legend">{e(labels[1])}</text>'
    ]
    for i, (name, allotted, used) in enumerate(items):
        y = top + i * (bar_h + gap)
        wa, wu = plot_w * allotted / vmax, plot_w * used / vmax
        parts.append(
            f'<text x="{left - 6}" y="{y + bar_h - 3}" text-anchor="end" class="tick">{e(name[:22])}</text>'
            f'<rect x="{left}" y="{y}" width="{wa:.1f}" height="{bar_h}" class="bar-allotted">'
            f"<title>{e(name)}: {allotted:g} {e(unit)} {e(labels[0])}</title></rect>"
            f'<rect x="{left}" y="{y + 3}" width="{wu:.1f}" height="{bar_h - 6}" class="bar-used">'
            f"<title>{e(name)}: {used:g} {e(unit)} {e(labels[1])}</title></rect>"
            f'<text x="{left + max(wa, wu) + 6:.1f}" y="{y + bar_h - 3}" class="tick">{allotted:.1f} / {used:.1f}</text>'
        )
    return _frame(title, width, height, "".join(parts), f"{len(items)} bars, up to {vmax:g} {unit}")


def group_series(rows: Sequence[dict], days: Sequence[str], figure: str) -> dict[str, list[float]]:
    """``by=group,day`` rows → ``{group: [value per day]}``: the biggest groups, the rest as "other groups"."""
    per: dict[str, dict[str, float]] = {}
    for r in rows:
        per.setdefault(r["group"] or "(no group)", {})[r["day"]] = r[figure]
    ranked = sorted(per, key=lambda g: -sum(per[g].values()))
    series = {g: [per[g].get(d, 0.0) for d in days] for g in ranked[:MAX_SERIES]}
    rest = ranked[MAX_SERIES:]
    if rest:
        series["other groups"] = [sum(per[g].get(d, 0.0) for g in rest) for d in days]
    return series


KEYS = ("user", "group", "image", "day")


def table(columns: Sequence[str], rows: Sequence[dict], totals: dict | None) -> str:
    """The report's rows as an HTML table, with a totals line."""

    def th(c: str) -> str:
        return f'<th scope="col"{"" if c in KEYS else " class=num"}>{e(TITLES.get(c, c))}</th>'

    def td(c: str, value) -> str:
        if c in KEYS:
            return f"<td>{e(fmt(value if value is not None else '(no group)'))}</td>"
        return f'<td class="num">{e(fmt(value))}</td>'

    body = ["<tr>" + "".join(td(c, r[c]) for c in columns) + "</tr>" for r in rows]
    if not rows:
        body.append(f'<tr><td colspan="{len(columns)}" class="empty">No usage in this window.</td></tr>')
    foot = ""
    if totals is not None:
        keys = [c for c in columns if c in KEYS]
        label = f'<th scope="row" colspan="{len(keys)}">Total</th>' if keys else ""
        foot = "<tfoot><tr>" + label + "".join(td(c, totals.get(c)) for c in columns if c not in KEYS) + "</tr></tfoot>"
    return (
        f'<table class="usage"><thead><tr>{"".join(th(c) for c in columns)}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody>{foot}</table>"
    )


def filters_form(action: str, params: dict, groups: Sequence[str], groupings: Sequence[str]) -> str:
    options = ['<option value="">all groups</option>'] + [
        f'<option value="{e(g)}"{" selected" if g == params.get("group") else ""}>{e(g)}</option>' for g in groups
    ]
    bys = [f'<option value="{e(b)}"{" selected" if b == params.get("by") else ""}>{e(b)}</option>' for b in groupings]
    return (
        f'<form method="get" action="{e(action)}" class="filters">'
        f'<label>From <input name="since" value="{e(params.get("since", ""))}" size="12"></label> '
        f'<label>until <input name="until" value="{e(params.get("until", ""))}" size="12"></label> '
        f'<label>Group <select name="group">{"".join(options)}</select></label> '
        f'<label>Rows by <select name="by">{"".join(bys)}</select></label> '
        f'<button type="submit">Show</button>'
        f'<span class="hint">e.g. 30d, this-month, last-month, 2026-11, 2026-11-01</span></form>'
    )


STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#1b1b1b;background:#fff}
h1{font-size:1.4em;margin:0 0 4px}h2{font-size:1.1em;margin:28px 0 8px}
.meta{color:#555;margin:0 0 16px}.filters{display:flex;flex-wrap:wrap;gap:10px;align-items:center;
background:#f4f6f8;padding:10px 12px;border-radius:6px}.filters input,.filters select{font:inherit}
.hint{color:#666;font-size:.85em}.exports a{margin-right:14px}
.plots{display:flex;flex-wrap:wrap;gap:18px}.plot{background:#fff;border:1px solid #e2e5e8;border-radius:6px}
.plot-title{font-size:14px;font-weight:600}.tick,.legend,.unit{font-size:11px;fill:#333}.unit{fill:#666}
.grid{stroke:#e6e6e6}.empty{fill:#777;color:#777;font-style:italic}
.bar-allotted{fill:#b9d3ea}.bar-used{fill:#0072B2}
table.usage{border-collapse:collapse;font-size:13px;margin-top:8px}
table.usage th,table.usage td{border-bottom:1px solid #e2e5e8;padding:4px 8px;text-align:left}
table.usage .num{text-align:right;font-variant-numeric:tabular-nums}
table.usage thead th{background:#f4f6f8;position:sticky;top:0}table.usage tfoot{font-weight:600}
.error{background:#fdecea;border:1px solid #f5c2bd;padding:12px;border-radius:6px}
"""


def page(title: str, body: str) -> str:
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{e(title)}</title>'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{STYLE}</style></head>'
        f"<body>{body}</body></html>"
    )


def error_page(status: int, message: str) -> str:
    return page(
        f"Berth usage: error {status}",
        f'<h1>Berth usage</h1><p class="error"><strong>{status}</strong> {e(message)}</p>',
    )


def usage_page(
    *,
    path: str,
    params: dict,
    window: dict,
    report,
    groups: Sequence[str],
    days: Sequence[str],
    per_group: dict[str, list[float]],
    day_rows: Sequence[dict],
    top_users: Sequence[dict],
    groupings: Sequence[str],
    generated_at: str,
) -> str:
    """The admin page: filters, export links, three plots and the table of ``report``'s rows."""
    query = urlencode({k: v for k, v in params.items() if v})
    base = path.rsplit("/", 1)[0]
    exports = (
        f'<p class="exports">Export these rows: <a href="{e(base)}/usage.csv?{e(query)}">CSV</a>'
        f'<a href="{e(base)}/usage.json?{e(query)}">JSON</a> · same rows as '
        f"<code>berth usage --since {e(params.get('since') or '30d')} --until {e(params.get('until') or 'now')} "
        f"--by {e(params.get('by') or 'user')}{' --group ' + e(params['group']) if params.get('group') else ''}</code></p>"
    )
    by_day = {r["day"]: r for r in day_rows}
    allotted = [by_day.get(d, {}).get("cpu_core_hours_allotted", 0.0) for d in days]
    used = [by_day.get(d, {}).get("cpu_core_hours_used", 0.0) for d in days]
    top = [(r["user"], r["cpu_core_hours_allotted"], r["cpu_core_hours_used"]) for r in top_users]
    scope = f" — group {params['group']}" if params.get("group") else ""
    plots = (
        line_chart(f"CPU core-hours used per day, per group{scope}", days, per_group, "core-hours")
        + bar_chart(f"Top users by CPU core-hours allotted{scope}", top, "core-hours")
        + line_chart(
            f"CPU core-hours allotted vs used per day{scope}",
            days,
            {"allotted": allotted, "used": used},
            "core-hours",
            dashed=("allotted",),
            colours={"allotted": "#7FA9CF", "used": "#0072B2"},
        )
    )
    t = report.totals
    ratio = f"{t['cpu_used_ratio']:.0%}" if t.get("cpu_used_ratio") is not None else "–"
    summary = (
        f"<p>{fmt(t['kernels'])} kernels, {fmt(t['servers'])} servers and {fmt(t['jobs'])} batch jobs; "
        f"{fmt(t['kernel_hours'])} kernel-hours, {fmt(t['job_hours'])} job-hours; "
        f"CPU used: {fmt(t['cpu_core_hours_used'])} of {fmt(t['cpu_core_hours_allotted'])} core-hours allotted "
        f"({ratio}); {fmt(t['mem_gib_hours_allotted'])} GiB-hours of memory and "
        f"{fmt(t['gpu_share_hours_allotted'])} GPU share-hours allotted; {fmt(t['culled'])} kernels culled "
        f"after {fmt(t['idle_hours_culled'])} idle hours.</p>"
    )
    body = (
        f'<h1>Berth usage</h1><p class="meta">{e(window["since"])} – {e(window["until"])} (UTC){e(scope)} · '
        f"generated {e(generated_at)}</p>"
        + filters_form(path, params, groups, groupings)
        + summary
        + exports
        + f'<div class="plots">{plots}</div>'
        + f"<h2>By {e(', '.join(report.by) or 'total')}</h2>"
        + table(report.columns, report.rows, report.totals)
    )
    return page("Berth usage", body)

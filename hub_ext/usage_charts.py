"""The geometry of the usage page's plots: pure functions from report rows to what the SVG
macros (templates/usage_plots.html) draw. Numbers are formatted here, so the markup stays a
template an admin can restyle without arithmetic."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

#: Series colours (colour-blind safe, Okabe–Ito).
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
#: Lines drawn in the per-group plot; the rest are summed as "other groups".
MAX_SERIES = 7


def nice_max(value: float) -> float:
    """A round axis maximum at or above ``value`` (1, 2, 2.5, 5 × 10ⁿ)."""
    if value <= 0:
        return 1.0
    base = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if step * base >= value:
            return step * base
    return 10 * base


def _f(v: float) -> str:
    return f"{v:.1f}"


def _empty(title: str, width: int) -> dict:
    return {"title": title, "width": width, "height": 60, "desc": "no data", "empty": True}


def line_chart(
    title: str,
    labels: Sequence[str],
    series: dict[str, Sequence[float]],
    unit: str,
    width: int = 600,
    height: int = 300,
    dashed: Iterable[str] = (),
    colours: dict[str, str] | None = None,
) -> dict:
    """Lines over ``labels`` (days), one per series, with a legend; no data → an empty chart."""
    if not labels or not series:
        return _empty(title, width)
    dashed = set(dashed)
    left, top, right, legend_h = 56, 40, 16, 22 * math.ceil(len(series) / 4)
    plot_w, plot_h = width - left - right, height - top - 40 - legend_h
    ymax = nice_max(max((max(v) for v in series.values() if len(v)), default=0.0))
    n = len(labels)
    x = (lambda i: left + plot_w / 2) if n == 1 else (lambda i: left + plot_w * i / (n - 1))
    y = lambda v: top + plot_h - plot_h * (v / ymax)  # noqa: E731
    step = max(1, math.ceil(n / 8))
    out = []
    for k, (name, values) in enumerate(series.items()):
        colour = (colours or {}).get(name, PALETTE[k % len(PALETTE)])
        dots = [
            {"x": _f(x(i)), "y": _f(y(v)), "title": f"{name} {labels[i]}: {v:g} {unit}"}
            for i, v in enumerate(values)
            if n <= 40
        ]
        out.append(
            {
                "name": name,
                "colour": colour,
                "dashed": name in dashed,
                "points": " ".join(f"{_f(x(i))},{_f(y(v))}" for i, v in enumerate(values)),
                "dots": dots,
                "legend_x": round(8 + (k % 4) * (width - 16) / 4),
                "legend_y": height - legend_h + 14 + 22 * (k // 4),
            }
        )
    return {
        "title": title,
        "width": width,
        "height": height,
        "desc": f"{len(series)} series over {n} days, up to {ymax:g} {unit}",
        "empty": False,
        "left": left,
        "top": top,
        "right_x": left + plot_w,
        "unit": unit,
        "y_ticks": [
            {
                "y": _f(top + plot_h - plot_h * i / 4),
                "label_y": _f(top + plot_h - plot_h * i / 4 + 4),
                "label": f"{ymax * i / 4:g}",
            }
            for i in range(5)
        ],
        "x_label_y": top + plot_h + 16,
        "x_ticks": [
            {"x": _f(x(i)), "label": labels[i][5:] if len(labels[i]) == 10 else labels[i]} for i in range(0, n, step)
        ],
        "series": out,
    }


def bar_chart(
    title: str,
    items: Sequence[tuple[str, float, float]],
    unit: str,
    width: int = 600,
    labels: tuple[str, str] = ("allotted", "used"),
) -> dict:
    """Horizontal bars: for each ``(name, allotted, used)`` a light bar (allotted) with a dark one (used) inside."""
    if not items:
        return _empty(title, width)
    left, top, bar_h, gap = 150, 44, 14, 8
    plot_w = width - left - 90
    vmax = nice_max(max(max(a, u) for _, a, u in items))
    bars = []
    for i, (name, allotted, used) in enumerate(items):
        wa, wu = plot_w * allotted / vmax, plot_w * used / vmax
        bars.append(
            {
                "name": name,
                "y": top + i * (bar_h + gap),
                "allotted_w": _f(wa),
                "used_w": _f(wu),
                "allotted_text": f"{allotted:g}",
                "used_text": f"{used:g}",
                "value_x": _f(left + max(wa, wu) + 6),
                "figures": f"{allotted:.1f} / {used:.1f}",
            }
        )
    return {
        "title": title,
        "width": width,
        "height": top + len(items) * (bar_h + gap) + 8,
        "desc": f"{len(items)} bars, up to {vmax:g} {unit}",
        "empty": False,
        "left": left,
        "bar_h": bar_h,
        "unit": unit,
        "labels": labels,
        "bars": bars,
    }


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

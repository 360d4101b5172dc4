"""The admin usage page from Jinja2 templates (templates/usage.html): the context and the rendering.

Pure functions from report rows to a template context, so they are tested without a server;
the markup is in the templates (an admin may override them, :mod:`.usage_templates`) and the
plots' geometry in :mod:`.usage_charts`. Autoescaping covers every piece of text that comes
from data (user, group and image names).
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlencode

from jinja2 import Environment

from jupyter_berth.resources import format_bytes

from . import usage_charts
from .usage_templates import default_environment

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
#: The columns that name a row (the rest are figures).
KEYS = ("user", "group", "image", "day")


def fmt(value) -> str:
    """A table cell: integers as they are, fractions with up to 2 decimals, ``–`` for none."""
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) >= 0.005 or value == 0 else f"{value:.4f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def fmt_resource(kind: str, value) -> str:
    """A group total's cell: memory as a size, the rest as :func:`fmt`."""
    if kind == "mem" and value is not None:
        return format_bytes(int(value))
    return fmt(value)


def page_context(
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
    fair_share: dict | None = None,
) -> dict:
    """What templates/usage.html gets: filters, totals, export links, three plots, the table of ``report``."""
    by_day = {r["day"]: r for r in day_rows}
    allotted = [by_day.get(d, {}).get("cpu_core_hours_allotted", 0.0) for d in days]
    used = [by_day.get(d, {}).get("cpu_core_hours_used", 0.0) for d in days]
    top = [(r["user"], r["cpu_core_hours_allotted"], r["cpu_core_hours_used"]) for r in top_users]
    scope = f" — group {params['group']}" if params.get("group") else ""
    totals = report.totals
    return {
        "fair_share": fair_share or {"group_totals": {}, "budgets": []},
        "path": path,
        "base": path.rsplit("/", 1)[0],
        "query": urlencode({k: v for k, v in params.items() if v}),
        "params": {k: params.get(k) or "" for k in ("since", "until", "by", "group")},
        "window": window,
        "scope": scope,
        "generated_at": generated_at,
        "groups": list(groups),
        "groupings": list(groupings),
        "totals": totals,
        "used_ratio": f"{totals['cpu_used_ratio']:.0%}" if totals.get("cpu_used_ratio") is not None else "–",
        "per_group_chart": usage_charts.line_chart(
            f"CPU core-hours used per day, per group{scope}", days, per_group, "core-hours"
        ),
        "top_users_chart": usage_charts.bar_chart(f"Top users by CPU core-hours allotted{scope}", top, "core-hours"),
        "allotted_used_chart": usage_charts.line_chart(
            f"CPU core-hours allotted vs used per day{scope}",
            days,
            {"allotted": allotted, "used": used},
            "core-hours",
            dashed=("allotted",),
            colours={"allotted": "#7FA9CF", "used": "#0072B2"},
        ),
        "by_label": ", ".join(report.by) or "total",
        "columns": list(report.columns),
        "rows": report.rows,
        "keys": KEYS,
        "titles": TITLES,
        "fmt": fmt,
        "fmt_resource": fmt_resource,
    }


def usage_page(env: Environment | None = None, **context) -> str:
    """The admin page (``usage.html``); ``context`` as :func:`page_context` takes it."""
    return (env or default_environment()).get_template("usage.html").render(**page_context(**context))


def error_page(status: int, message: str, env: Environment | None = None) -> str:
    return (env or default_environment()).get_template("usage_error.html").render(status=status, message=message)


__all__ = ["KEYS", "TITLES", "error_page", "fmt", "fmt_resource", "page_context", "usage_page"]

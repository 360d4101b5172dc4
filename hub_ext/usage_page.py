"""The admin usage page of the hub's Berth service, its CSV/JSON exports and ``/metrics``.

Routes (under the service's prefix, e.g. ``/services/berth/``):

``usage``
    the page: filters (window, group, rows by), totals, three inline SVG plots
    (CPU used per day per group, top users allotted vs used, allotted vs used per
    day) and the table. Admins only.
``usage.csv`` / ``usage.json``
    the table's rows (parameters ``since``, ``until``, ``by``, ``group``, ``user``,
    ``image``); CSV cells cannot start a spreadsheet formula. Admins only.
``metrics``
    Prometheus text exposition (see ``jupyter_berth.usage.metrics``). Admins (a hub
    admin, or a token with the ``custom:berth:admin`` scope, which is what a
    Prometheus server should scrape with) unless the service's tornado setting
    ``berth_metrics_public`` is true.

The page is rendered from Jinja2 templates (``templates/usage.html``; an admin's
``c.BerthHubService.template_paths`` come first, see :mod:`.usage_templates`), the
environment in the tornado setting ``berth_templates`` (Berth's own when absent).

The handlers are mixins over any tornado ``RequestHandler`` base that offers
``self.settings["berth_service"]`` (a :class:`~jupyter_berth.service.BerthService`)
and ``self.berth_identity()`` → ``{"name", "groups", "admin"}`` (raising a
401/403 ``BerthError``). :func:`usage_routes` builds the handlers for a given base;
:data:`ROUTES` are those of the hub's Berth service (``service_base``).
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

from tornado import web

from jupyter_berth.errors import BerthError, RequestError
from jupyter_berth.usage.metrics import CONTENT_TYPE
from jupyter_berth.usage.window import day_label, day_number, iso

from . import usage_charts, usage_render

PAGE_PARAMS = ("since", "until", "by", "group")
EXPORT_PARAMS = ("since", "until", "by", "group", "user", "image")
#: What the page's "rows by" choice offers (any grouping works in the URL and the exports).
PAGE_GROUPINGS = ("user", "group", "image", "day", "group,user", "user,day", "group,day", "image,day")
TOP_USERS = 12


class UsageHandlerMixin:
    """Shared by the usage handlers: the service, the admin check, strict query parameters, JSON errors."""

    @property
    def berth_service(self):
        return self.settings["berth_service"]

    def require_usage_admin(self) -> dict:
        who = self.berth_identity()
        if not who.get("admin"):
            raise BerthError(
                f"{who.get('name')!r} is not an admin: the usage of all users is for admins only "
                "(your own usage is in JupyterLab's Berth sidebar)",
                status=403,
            )
        return who

    def usage_params(self, allowed: tuple[str, ...]) -> dict[str, str]:
        for name in self.request.query_arguments:
            if name not in allowed:
                raise RequestError(name, f"unknown parameter; accepted: {', '.join(allowed)}")
        return {name: self.get_query_argument(name, "").strip() for name in allowed}

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, BerthError):
            self.set_status(exc.status)
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps(exc.to_json()))
            return
        super().write_error(status_code, **kwargs)


class UsagePageMixin(UsageHandlerMixin):
    """``GET usage``: the admin page (HTML; errors as HTML too)."""

    async def get(self):
        self.require_usage_admin()
        p = self.usage_params(PAGE_PARAMS)
        since, until, by, group = p["since"] or "30d", p["until"] or "now", p["by"] or "user", p["group"] or None
        svc = self.berth_service
        table, per_group, per_day, users, fair_share = await asyncio.gather(
            svc.usage.usage_report(since, until, by, group=group),
            svc.usage.usage_report(since, until, "group,day"),  # every group: the filter's choices too
            svc.usage.usage_report(since, until, "day", group=group),
            svc.usage.usage_report(since, until, "user", group=group),
            svc.fair.overview(),  # group totals and budgets, now (not over the window)
        )
        first, last = day_number(table.window.since), day_number(table.window.until - timedelta(microseconds=1))
        days = [day_label(n) for n in range(first, last + 1)]
        groups = sorted({r["group"] for r in per_group.rows if r["group"]} | ({group} if group else set()))
        group_rows = [r for r in per_group.rows if group is None or r["group"] == group]
        top = sorted(users.rows, key=lambda r: -r["cpu_core_hours_allotted"])[:TOP_USERS]
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(
            usage_render.usage_page(
                self.settings.get("berth_templates"),
                path=self.request.path,
                params={"since": since, "until": until, "by": by, "group": group or ""},
                window=table.window.to_json(),
                report=table,
                groups=groups,
                days=days,
                per_group=usage_charts.group_series(group_rows, days, "cpu_core_hours_used"),
                day_rows=per_day.rows,
                top_users=top,
                groupings=PAGE_GROUPINGS,
                generated_at=iso(table.generated_at.replace(microsecond=0)),
                fair_share=fair_share,
            )
        )

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, BerthError):
            status_code, message = exc.status, exc.message
        else:
            message = self._reason
        self.set_status(status_code)
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(usage_render.error_page(status_code, message, self.settings.get("berth_templates")))


class UsageExportMixin(UsageHandlerMixin):
    """``GET usage.csv`` / ``usage.json``: the rows the page's table shows."""

    export_format = "json"

    async def get(self):
        self.require_usage_admin()
        p = self.usage_params(EXPORT_PARAMS)
        report = await self.berth_service.usage.usage_report(
            p["since"] or "30d",
            p["until"] or "now",
            p["by"] or "user",
            group=p["group"] or None,
            user=p["user"] or None,
            image=p["image"] or None,
        )
        w = report.window
        stem = f"berth-usage-{iso(w.since)[:10]}-{iso(w.until)[:10]}-by-{'-'.join(report.by) or 'total'}"
        if self.export_format == "csv":
            self.set_header("Content-Type", "text/csv; charset=utf-8")
            self.set_header("Content-Disposition", f'attachment; filename="{stem}.csv"')
            self.finish(report.to_csv())
        else:
            self.set_header("Content-Type", "application/json")
            self.set_header("Content-Disposition", f'inline; filename="{stem}.json"')
            self.finish(report.json_text())


class MetricsMixin(UsageHandlerMixin):
    """``GET metrics``: Prometheus text exposition."""

    async def get(self):
        if not self.settings.get("berth_metrics_public"):
            self.require_usage_admin()
        text = await self.berth_service.usage.metrics_text()
        self.set_header("Content-Type", CONTENT_TYPE)
        self.finish(text)


def usage_routes(base: type, api_base: type | None = None, *, login_redirect: bool = False) -> list[tuple[str, type]]:
    """``[(pattern, handler)]`` of the page, exports and metrics over ``base`` (relative patterns).

    ``api_base`` (default ``base``) is used for ``metrics``, which a scraper calls with a
    token; ``login_redirect`` sends a browser that is not logged in to the login page
    (``tornado.web.authenticated``) instead of answering 401.
    """
    api_base = api_base or base
    page_ns: dict = {"__doc__": UsagePageMixin.__doc__}
    csv_ns: dict = {"export_format": "csv", "__doc__": "``GET usage.csv``"}
    json_ns: dict = {"export_format": "json", "__doc__": "``GET usage.json``"}
    if login_redirect:
        page_ns["get"] = web.authenticated(UsagePageMixin.get)
        csv_ns["get"] = json_ns["get"] = web.authenticated(UsageExportMixin.get)
    return [
        (r"usage", type("UsagePageHandler", (UsagePageMixin, base), page_ns)),
        (r"usage\.csv", type("UsageCSVHandler", (UsageExportMixin, base), csv_ns)),
        (r"usage\.json", type("UsageJSONHandler", (UsageExportMixin, base), json_ns)),
        (r"metrics", type("MetricsHandler", (MetricsMixin, api_base), {"__doc__": MetricsMixin.__doc__})),
    ]


def _hub_routes() -> list[tuple[str, type]]:
    from .service_base import BerthAPIHandler, BerthServiceHandler

    return usage_routes(BerthServiceHandler, BerthAPIHandler, login_redirect=True)


#: The routes the hub's Berth service mounts (``service_app.OPTIONAL_ROUTE_MODULES``).
ROUTES = _hub_routes()

__all__ = ["ROUTES", "MetricsMixin", "UsageExportMixin", "UsagePageMixin", "usage_routes"]

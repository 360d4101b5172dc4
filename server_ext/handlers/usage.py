"""``GET /berth/api/usage``: the user's own usage and what is left of their quota;
``GET /berth/api/budget``: the user's budgets per period and what is left of them.

Always the authenticated user's records (identity from the server, never from the
request); there is no parameter that names another user. Query parameters:
``since`` / ``until`` (see ``jupyter_berth.usage.window``; default the last 30
days) and ``by`` (default ``day``; ``image``, ``day``, ``image,day``...).
"""

from __future__ import annotations

from jupyter_berth.errors import RequestError

from .base import BerthHandler, authorized, web

#: Groupings a user may ask for about themselves (``user`` would be one row; ``group`` is the admin's view).
USER_GROUPINGS = ("day", "image")


def named_parameters(handler) -> list[str]:
    """The query's parameter names, without a cache-buster: a bare number with no value, which JupyterLab's
    ``ServerConnection`` appends to every GET (``?1796669598876``)."""
    return [
        name
        for name, values in handler.request.query_arguments.items()
        if not (name.isdigit() and all(v == b"" for v in values))
    ]


class UsageHandler(BerthHandler):
    @web.authenticated
    @authorized
    async def get(self):
        for name in named_parameters(self):
            if name not in ("since", "until", "by"):
                raise RequestError(
                    name,
                    "unknown parameter; this endpoint takes since, until and by (and always reports your own usage)",
                )
        by = self.get_query_argument("by", "day")
        for key in filter(None, (k.strip() for k in by.split(","))):
            if key not in USER_GROUPINGS:
                raise RequestError("by", f"{key!r} is not a grouping here; expected day, image or image,day")
        service = await self.berth.service()
        self.write_json(
            await service.my_usage(
                self.berth.user,
                self.get_query_argument("since", None),
                self.get_query_argument("until", None),
                groups=self.berth.groups,
                by=by,
            )
        )


class BudgetHandler(BerthHandler):
    """``GET /berth/api/budget``: the user's budgets (own and their groups'), use, what is left,
    when each resets, and the warnings and stops their kernels got. No parameters."""

    @web.authenticated
    @authorized
    async def get(self):
        for name in named_parameters(self):
            raise RequestError(name, "unknown parameter; this endpoint takes none (it always reports your own budget)")
        service = await self.berth.service()
        self.write_json(await service.fair.my_budget(self.berth.user, groups=self.berth.groups))


class QueueHandler(BerthHandler):
    """``GET /berth/api/queue``: the user's kernel starts waiting for room, with how many wait ahead."""

    @web.authenticated
    @authorized
    async def get(self):
        service = await self.berth.service()
        self.write_json(await service.fair.my_queue(self.berth.user))


class QueuedStartHandler(BerthHandler):
    """``DELETE /berth/api/queue/<kernel_id>``: cancel a waiting start (the start then fails, saying so)."""

    @web.authenticated
    @authorized
    async def delete(self, kernel_id):
        service = await self.berth.service()
        await service.fair.cancel_queued_start(self.berth.user, kernel_id)
        self.set_status(204)
        self.finish()


ROUTES = [
    (r"/berth/api/usage", UsageHandler),
    (r"/berth/api/budget", BudgetHandler),
    (r"/berth/api/queue", QueueHandler),
    (r"/berth/api/queue/(?P<kernel_id>[\w-]+)", QueuedStartHandler),
]

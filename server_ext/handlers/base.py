"""The base of every Berth REST handler: authenticated, authorised, JSON in and out.

The handlers of ``berth/api/…`` are written once, against :class:`BerthHandler`, and
served by two front ends that bind them to their own tornado base class:

* the user's jupyter_server (``jupyter_berth.server.server_handler``): jupyter_server's
  authentication and its authorizer (resource ``berth``); identity and service from the
  server's :class:`~jupyter_berth.server.context.BerthContext`;
* the hub's Berth service (``jupyter_berth.hub.service_user_api``), for servers in hub
  mode: identity (name, groups, admin) from the JupyterHub token, never from the body.

So nothing here imports jupyter_server. A binding provides ``self.berth`` (the context),
``berth_authorize()`` (called by :func:`authorized`) and tornado's ``current_user``.

Errors are JSON ``{"message": ...}`` with the right status: a :class:`BerthError` raised by
the core keeps its own message and status; malformed JSON is a 400 naming the body. A
refused request changes no state (the core checks before it writes).
"""

from __future__ import annotations

import functools
import json
from typing import Any

from tornado import web

from jupyter_berth.errors import BerthError

from ..json_io import JSONIOMixin

#: The jupyter_server authorization resource every Berth handler is checked against.
AUTH_RESOURCE = "berth"
#: The HTTP methods a handler may implement.
HTTP_METHODS = ("get", "post", "put", "patch", "delete")


def authorized(method):
    """Decorate a handler method (under ``@web.authenticated``): the binding's authorization check first.

    jupyter_server: its authorizer, for resource ``berth`` and the method's action (read for
    GET, write otherwise), 403 when refused. The hub's service: a user's token with the
    scope to use the service (401/403 otherwise).
    """

    @functools.wraps(method)
    async def inner(self, *args, **kwargs):
        await self.berth_authorize()
        return await method(self, *args, **kwargs)

    return inner


class BerthHandler(JSONIOMixin):
    """Base of the request logic. Subclasses decorate their methods with ``@web.authenticated``
    and ``@authorized`` (both imported here), and reach the core through ``self.berth``."""

    auth_resource = AUTH_RESOURCE
    #: Methods the user's own server answers itself, also in hub mode (they act on its kernel
    #: manager or describe the server); the hub's service does not serve them.
    server_methods: frozenset[str] = frozenset()

    # The binding's base class provides ``berth`` (the request's BerthContext) and
    # ``async berth_authorize()``; they are not declared here, where they would shadow it.

    @classmethod
    def implemented_methods(cls) -> tuple[str, ...]:
        """The HTTP methods this handler answers (upper case)."""
        return tuple(m.upper() for m in HTTP_METHODS if callable(getattr(cls, m, None)))

    def get_json_body(self) -> Any:  # type: ignore[override]
        return self.json_body()

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, BerthError):
            self.set_status(exc.status)
            self.set_header("Content-Type", "application/json")
            if exc.log_message != exc.message:
                self.log.warning("Berth: %s", exc.log_message)
            self.finish(json.dumps(exc.to_json()))
            return
        super().write_error(status_code, **kwargs)

    def log_exception(self, typ, value, tb):  # a BerthError is an answer, not a server fault
        if isinstance(value, BerthError):
            self.log.info("Berth %s %s: %s %s", self.request.method, self.request.path, value.status, value.message)
            return
        super().log_exception(typ, value, tb)


__all__ = ["AUTH_RESOURCE", "BerthHandler", "HTTP_METHODS", "authorized", "web"]

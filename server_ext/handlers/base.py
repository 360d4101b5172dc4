"""The base of every Berth REST handler: authenticated, authorised, JSON in and out.

Errors are JSON ``{"message": ...}`` with the right status: a :class:`BerthError` raised by
the core keeps its own message and status; malformed JSON is a 400 naming the body. A
refused request changes no state (the core checks before it writes).
"""

from __future__ import annotations

import json
from typing import Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from tornado import web

from jupyter_berth.errors import BerthError

from ..json_io import JSONIOMixin

#: The jupyter_server authorization resource every Berth handler is checked against.
AUTH_RESOURCE = "berth"


class BerthHandler(JSONIOMixin, APIHandler):
    """Base handler. Subclasses decorate their methods with ``@web.authenticated`` and
    ``@authorized`` (both imported here), and reach the core through ``self.berth``."""

    auth_resource = AUTH_RESOURCE

    @property
    def berth(self):
        """The :class:`~jupyter_berth.server.context.BerthContext` of this server."""
        return self.settings["berth"]

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


__all__ = ["BerthHandler", "authorized", "web", "AUTH_RESOURCE"]

"""The Berth REST handlers bound to jupyter_server: ``{base_url}berth/api/…`` of the user's server.

The handlers' logic (``handlers/*``) knows nothing of jupyter_server; :func:`bind` makes each
one a jupyter_server ``APIHandler`` with the server's context and authorizer. In hub mode
the methods the hub's service answers are replaced by :func:`~.forwarding.forwarded`; the
``server_methods`` (OpenAPI document, kernel start and stop) stay here.
"""

from __future__ import annotations

from jupyter_core.utils import ensure_async
from jupyter_server.auth.utils import HTTP_METHOD_TO_AUTH_ACTION
from jupyter_server.base.handlers import APIHandler
from tornado.web import HTTPError

from .forwarding import forwarded


class ServerBinding:
    """jupyter_server's side of a Berth handler (first in the bound class's bases)."""

    @property
    def berth(self):
        """The :class:`~jupyter_berth.server.context.BerthContext` of this server."""
        return self.settings["berth"]

    async def berth_authorize(self) -> None:
        """jupyter_server's check (as its ``@authorized``): the authorizer, resource ``berth``, the
        request's action (read for GET, write otherwise); 403 when refused."""
        action = HTTP_METHOD_TO_AUTH_ACTION[self.request.method.upper()]
        message = f"User is not authorized to {action} on resource: {self.auth_resource}."
        user = self.current_user
        if not user or not await ensure_async(self.authorizer.is_authorized(self, user, action, self.auth_resource)):
            raise HTTPError(403, log_message=message)


def bind(handler: type, *, hub_mode: bool = False) -> type:
    """``handler`` (a :class:`~.handlers.base.BerthHandler`) as a jupyter_server API handler."""
    namespace = {"__module__": handler.__module__, "__doc__": handler.__doc__}
    if hub_mode:
        for method in set(handler.implemented_methods()) - set(handler.server_methods):
            namespace[method.lower()] = forwarded
    return type(handler.__name__, (ServerBinding, handler, APIHandler), namespace)


__all__ = ["ServerBinding", "bind"]

"""The server extension's REST API, served by the hub's Berth service to users' servers in hub mode.

A user's server in hub mode (``BERTH_SERVICE_URL`` set) forwards ``{base_url}berth/api/<route>``
to ``{prefix}berth/api/<route>`` here, with its owner's hub token
(``jupyter_berth.server.forwarding``). The handlers are the server extension's own
(``jupyter_berth.server.handlers``: one set of request logic), bound to the hub's
authentication: the caller must be a hub *user* whose token may use this service, and the
identity the core sees — name, groups, admin (a hub admin or the ``custom:berth:admin``
scope) — comes from the hub's answer about the token, never from the request.

Served: info, presets, profile, policy, GPUs, the user's kernels (list), images (with the
admin routes: image admins are ``c.ImageCatalog.admin_users`` / ``admin_groups`` and, unless
``c.BerthHubService.hub_admins_are_image_admins`` is off, hub admins),
folders and their shares, usage. Not served: what acts on one server's kernel manager
(starting and stopping a kernel through ``berth/api/kernels``; the provisioner uses
``api/kernels``) and the OpenAPI document (each server serves its own). Errors are those of
the service's other routes: ``{"message", "error", ...}``.
"""

from __future__ import annotations

from jupyter_berth import server_scope
from jupyter_berth.server.context import BerthContext
from jupyter_berth.server.routes import api_routes

from .service_base import BerthAPIHandler, BerthServiceHandler


class UserAPIBinding:
    """The hub's side of a server-extension handler (first in the bound class's bases)."""

    _berth_context: BerthContext | None = None

    @property
    def berth(self) -> BerthContext:
        """This request's context: the service of this process and the identity from the token."""
        if self._berth_context is None:
            who = self.require_user()
            service = self.settings["berth_service"]
            if self.settings.get("berth_hub_admins_are_image_admins", True):
                service.images.note_hub_admin(who["name"], bool(who["admin"]))

            async def get_service():
                return service

            self._berth_context = BerthContext(
                get_service=get_service,
                user=who["name"],
                groups=tuple(who["groups"]),
                # kernelspecs belong to users' servers (from their image), never to this process
                extra={
                    "admin": who["admin"],
                    "hub": True,
                    "sync_kernelspecs": False,
                    # the caller's hub server (named servers: its sidebar lists its own kernels)
                    "server": server_scope.from_header(self.request.headers.get(server_scope.HEADER)),
                },
            )
        return self._berth_context

    async def berth_authorize(self) -> None:
        self.require_user()  # a user's token (services own no folders or kernels); 401/403 otherwise

    @property
    def base_url(self) -> str:
        """Where this API lives here (a ``Location`` is re-based onto the user's server by the forwarder)."""
        return self.settings.get("berth_prefix", "/services/berth/")

    # errors as on every route of the service (with the error class), not the server extension's
    write_error = BerthServiceHandler.write_error
    log_exception = BerthServiceHandler.log_exception


def bind(handler: type) -> type | None:
    """``handler`` as a handler of this service, without its ``server_methods``; None when nothing is left."""
    methods = tuple(m for m in handler.implemented_methods() if m not in handler.server_methods)
    if not methods:
        return None
    return type(
        handler.__name__,
        (UserAPIBinding, handler, BerthAPIHandler),
        {"__module__": __name__, "__doc__": handler.__doc__, "SUPPORTED_METHODS": methods},
    )


def user_api_routes() -> list[tuple[str, type]]:
    """``(pattern relative to the service prefix, handler)``: ``berth/api/…``, as on a user's server."""
    routes = []
    for pattern, handler in api_routes():
        bound = bind(handler)
        if bound is not None:
            routes.append((pattern.lstrip("/"), bound))
    return routes


ROUTES = user_api_routes()

__all__ = ["ROUTES", "UserAPIBinding", "bind", "user_api_routes"]

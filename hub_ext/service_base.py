"""The base of every handler of the hub's Berth service: the caller comes from a JupyterHub token.

:class:`BerthServiceHandler` authenticates with JupyterHub's own machinery
(:class:`~jupyterhub.services.auth.HubAuthenticated` with :class:`HubOAuth`): a token in
the ``Authorization: token …`` header (provisioners, the server extension, scripts), or
the HubOAuth cookie a browser gets by logging in through the hub (the admin pages).
The hub answers who owns the token; **identity never comes from a request body.**
The check is asynchronous (``prepare``), so a slow hub never blocks the service's loop.

A caller must hold the scope the hub gives to reach this service
(``access:services!service=<name>``, see docs/hub-service.md). Admin-only handlers
call :meth:`require_admin`: a hub admin, or a token with the ``custom:berth:admin``
scope (for automation without full hub admin rights).

Errors are JSON ``{"message": ..., "error": <class>, ...}`` with the :class:`BerthError`'s
status; a request without a valid token is a 401, a token without the access scope 403.

For other modules (the admin usage pages): subclass :class:`BerthServiceHandler`, use
``self.settings["berth_service"]`` (or ``self.service``) and ``self.berth_identity()``;
decorate browser pages with ``@web.authenticated`` to be sent to the hub's login. A
subclass that overrides ``prepare`` must ``await super().prepare()`` first.
"""

from __future__ import annotations

import json
from typing import Any

from jupyterhub.services.auth import HubOAuth, HubOAuthCallbackHandler, HubOAuthenticated, UserNotAllowed
from tornado import web

from jupyter_berth.errors import BerthError
from jupyter_berth.server.json_io import JSONIOMixin, check_size
from jupyter_berth.wire import error_to_json

#: A scope (declared in ``c.JupyterHub.custom_scopes``) that grants the admin routes without hub admin rights.
ADMIN_SCOPE = "custom:berth:admin"


class BerthServiceHandler(JSONIOMixin, HubOAuthenticated, web.RequestHandler):
    """Authenticated by the hub; JSON errors; reaches the core as ``self.service``."""

    @property
    def hub_auth(self) -> HubOAuth:  # the app's configured instance, not a bare singleton
        return self.settings["hub_auth"]

    @hub_auth.setter
    def hub_auth(self, value):  # HubAuthenticated has a setter; the app's instance always wins
        pass

    @property
    def service(self):
        """The :class:`~jupyter_berth.service.BerthService` of this process."""
        return self.settings["berth_service"]

    async def prepare(self):
        """Refuse a body over the size limit, then ask the hub who owns the token (or cookie), without
        blocking the loop."""
        check_size(len(self.request.body or b""))
        self._hub_auth_user_cache = None
        self._berth_refused = None
        model = await self.hub_auth.get_user(self, sync=False)
        if model:
            try:
                self._hub_auth_user_cache = self.check_hub_user(model)
            except UserNotAllowed:
                self._berth_refused = model

    def berth_identity(self) -> dict:
        """``{"name", "groups", "admin", "kind", "scopes"}`` of the caller, from the hub's answer.

        Raises a 401 :class:`BerthError` when nobody is logged in, 403 when the token may not
        use this service.
        """
        model = self.current_user
        if not model:
            if self._berth_refused is not None:
                raise BerthError(
                    f"{self._berth_refused.get('kind', 'user')} {self._berth_refused.get('name')!r} may not use the Berth "
                    f"service: the token lacks the scope {', '.join(sorted(self.hub_scopes or ()))}; ask the hub's admin "
                    "to grant it (docs/hub-service.md)",
                    status=403,
                )
            raise BerthError(
                'authentication required: send a JupyterHub token (header "Authorization: token <token>") '
                "or log in through the hub",
                status=401,
            )
        scopes = set(model.get("scopes") or ())
        return {
            "name": model["name"],
            "groups": sorted(model.get("groups") or ()),
            "kind": model.get("kind", "user"),
            "admin": bool(model.get("admin")) or ADMIN_SCOPE in scopes,
            "scopes": sorted(scopes),
        }

    def require_user(self) -> dict:
        """The identity of a hub *user* (kernels and servers belong to users, not services)."""
        who = self.berth_identity()
        if who["kind"] != "user":
            raise BerthError(f"{who['kind']} {who['name']!r} owns no kernels; call with a user's token", status=403)
        return who

    def require_admin(self) -> dict:
        who = self.berth_identity()
        if not who["admin"]:
            raise BerthError(
                f"{who['name']!r} is not a hub admin; this needs admin rights or the scope {ADMIN_SCOPE}", status=403
            )
        return who

    # -- JSON in and out: jupyter_berth.server.json_io.JSONIOMixin ---------------------------------
    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, BerthError):
            self.set_status(exc.status)
            body = error_to_json(exc)
        else:
            message = self._reason
            if isinstance(exc, web.HTTPError) and exc.log_message:
                message = exc.log_message % exc.args if exc.args else exc.log_message
            body = {"message": message, "error": "HTTPError"}
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))

    def log_exception(self, typ, value, tb):  # a BerthError is an answer, not a fault of the service
        if isinstance(value, BerthError):
            if value.log_message != value.message:
                self.log.warning("Berth: %s", value.log_message)
            self.log.info("%s %s: %s %s", self.request.method, self.request.path, value.status, value.message)
            return
        if isinstance(value, web.HTTPError):
            super().log_exception(typ, value, tb)
            return
        self.log.error("Uncaught error in %s %s", self.request.method, self.request.path, exc_info=(typ, value, tb))

    @property
    def log(self):
        return self.settings["berth_log"]


class BerthAPIHandler(BerthServiceHandler):
    """A REST handler: refuses anonymous requests with a JSON 401 instead of redirecting to a login page."""

    async def prepare(self):
        await super().prepare()
        self.berth_identity()  # raises 401/403


class OAuthCallbackHandler(BerthServiceHandler, HubOAuthCallbackHandler):
    """Completes the hub's OAuth login for browser pages (at ``{prefix}oauth_callback``)."""

    async def prepare(self):  # nobody is logged in yet: no identity check
        return


__all__ = ["ADMIN_SCOPE", "BerthAPIHandler", "BerthServiceHandler", "OAuthCallbackHandler"]

"""Hub mode: the user's server forwards the Berth REST API to the hub's Berth service.

In hub mode (``BERTH_SERVICE_URL`` set; BerthSpawner sets it for every user server) the
server holds no ledger and no container engine. A ``{base_url}berth/api/<route>`` request
is first checked here like any other (jupyter_server's authentication and authorizer,
resource ``berth``), then sent to ``{BERTH_SERVICE_URL}berth/api/<route>`` with the same
method, query and body and the server's own hub token (``JUPYTERHUB_API_TOKEN``, owned by
the user). The service takes the identity — name, groups, admin — from that token alone
and runs the same handlers (``jupyter_berth.hub.service_user_api``). Its answer comes back
unchanged: the status, the JSON body with its message, and a ``Location`` re-based onto
this server. A service that cannot be reached is a 503 (nothing listens: restarting) or a
502 (no answer) whose message names its URL.

Not forwarded (the handlers' ``server_methods``): the OpenAPI document, and starting and
stopping a kernel, which go through this server's kernel manager; its provisioner then calls
the service (:class:`~jupyter_berth.kernels.remote.RemoteBackend`).
"""

from __future__ import annotations

import json
from urllib.parse import urlparse

from tornado import web

from jupyter_berth.errors import BerthError

from .handlers.base import authorized


async def forward(handler) -> None:
    """Send ``handler``'s request to the hub's Berth service and write its answer."""
    remote = handler.berth.remote
    request = handler.request
    base = handler.base_url
    if not request.path.startswith(base):  # routes are mounted under base_url: a bug if not
        raise BerthError(f"cannot forward {request.path}: it is not under {base}")
    path = request.path[len(base) :]
    body = request.body if request.method in ("POST", "PUT", "PATCH") else None
    response = await remote.fetch(
        request.method,
        path,
        query=request.query,
        body=body,
        content_type=request.headers.get("Content-Type"),
        retry=False,
    )
    handler.log.debug("Berth: %s %s forwarded to %s: %d", request.method, request.path, remote.url, response.code)
    handler.set_status(response.code)
    location = response.headers.get("Location")
    if location:
        prefix = urlparse(remote.url).path
        handler.set_header("Location", base + location[len(prefix) :] if location.startswith(prefix) else location)
    if response.code in (204, 304):
        handler.finish()
        return
    content_type = response.headers.get("Content-Type", "")
    if response.code >= 400 and not content_type.startswith("application/json"):
        # not one of the service's answers (e.g. a service too old for this route): say who answered what
        handler.finish(
            json.dumps(
                {
                    "message": f"the Berth service at {remote.url} answered {response.code} "
                    f"{response.reason} to {request.method} {path}"
                }
            )
        )
        return
    handler.finish(response.body or b"", set_content_type=content_type or "application/json")
    resync = handler.berth.extra.get("resync_kernelspecs")
    if resync is None or response.code >= 300:
        return
    # the offer was listed, or may have changed: keep this server's kernelspecs in line with it
    if path == "berth/api/images" and request.method == "GET":
        await resync(images=json.loads(response.body or b"{}"))  # the listing just forwarded: no second call
    elif request.method != "GET" and path.startswith("berth/api/images/") and not path.endswith("/resolve"):
        await resync()


@web.authenticated
@authorized
async def forwarded(self, *args, **kwargs) -> None:
    """A handler method that forwards (path arguments are the service's to read again)."""
    await forward(self)


__all__ = ["forward", "forwarded"]

"""URL routes of the Berth REST API (all under ``/berth/api/``).

:func:`api_routes` lists the handlers' logic (no web framework bound); :func:`handlers`
binds them to jupyter_server for this server, forwarding to the hub's Berth service in hub
mode. The hub's service binds the same routes to its own authentication
(``jupyter_berth.hub.service_user_api``).
"""

from __future__ import annotations


def api_routes() -> list[tuple[str, type]]:
    """``(pattern, handler)`` of every route; patterns start with ``/berth/api/``."""
    from .handlers import folders, images, jobs, kernels, meta, usage

    routes: list[tuple[str, type]] = []
    for module in (meta, kernels, folders, images, usage, jobs):
        routes.extend(module.ROUTES)
    routes.append(meta.UNKNOWN_ROUTE)  # last: any other berth/api path is a JSON 404
    return routes


def handlers(*, hub_mode: bool = False) -> list[tuple]:
    """The routes bound to jupyter_server; ``hub_mode``: forwarded to the hub's Berth service."""
    from .server_handler import bind

    return [(pattern, bind(handler, hub_mode=hub_mode)) for pattern, handler in api_routes()]

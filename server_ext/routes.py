"""URL routes of the Berth REST API (all under ``/berth/api/``)."""

from __future__ import annotations


def handlers() -> list[tuple]:
    from .handlers import kernels, meta

    routes: list[tuple] = []
    for module in (meta, kernels):
        routes.extend(module.ROUTES)
    return routes

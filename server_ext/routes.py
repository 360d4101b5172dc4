"""URL routes of the Berth REST API (all under ``/berth/api/``)."""

from __future__ import annotations


def handlers() -> list[tuple]:
    from .handlers import folders, images, kernels, meta, usage

    routes: list[tuple] = []
    for module in (meta, kernels, folders, images, usage):
        routes.extend(module.ROUTES)
    return routes

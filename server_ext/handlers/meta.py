"""``info``, ``presets``, ``profile``, ``policy``, ``gpus`` and the OpenAPI document."""

from __future__ import annotations

import json
import pathlib

from jupyter_berth import __version__
from jupyter_berth.errors import NotFoundError, RequestError
from jupyter_berth.resources import kinds_json

from .base import HTTP_METHODS, BerthHandler, authorized, web

OPENAPI_DIR = pathlib.Path(__file__).resolve().parent.parent / "openapi"


def openapi_document(base_url: str = "/") -> dict:
    """The merged OpenAPI document: ``openapi/*.json`` parts, one per area."""
    doc = {
        "openapi": "3.0.3",
        "info": {
            "title": "jupyter-berth server extension",
            "version": __version__,
            "description": "Images, folders, presets, profile, policy, GPUs and the user's kernels. "
            "Every route needs a Jupyter token (Authorization: token …).",
        },
        "servers": [{"url": base_url.rstrip("/") or "/"}],
        "security": [{"token": []}],
        "paths": {},
        "components": {
            "schemas": {},
            "securitySchemes": {"token": {"type": "apiKey", "in": "header", "name": "Authorization"}},
        },
    }
    for part in sorted(OPENAPI_DIR.glob("*.json")):
        data = json.loads(part.read_text())
        doc["paths"].update(data.get("paths", {}))
        doc["components"]["schemas"].update(data.get("components", {}).get("schemas", {}))
    # Hub mode: a route the user's server forwards can meet an unreachable Berth service.
    doc["components"]["responses"] = {
        status: {
            "description": f"hub mode only: {what}; the message names the service's URL",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
        for status, what in (
            ("502", "the hub's Berth service gave no answer (timeout, reset, no route)"),
            ("503", "nothing listens at the hub's Berth service (it may be restarting)"),
        )
    }
    for path, operations in doc["paths"].items():
        if path == "/berth/api/openapi.json":
            continue  # answered by the server itself
        for method, operation in operations.items():
            if method not in HTTP_METHODS:
                continue  # path-level "parameters" and the like
            for status in ("502", "503"):
                operation.setdefault("responses", {}).setdefault(status, {"$ref": f"#/components/responses/{status}"})
    return doc


class OpenAPIHandler(BerthHandler):
    server_methods = frozenset({"GET"})  # describes this server's API, also in hub mode

    @web.authenticated
    @authorized
    async def get(self):
        self.write_json(openapi_document(self.base_url))


class InfoHandler(BerthHandler):
    @web.authenticated
    @authorized
    async def get(self):
        service = await self.berth.service()
        self.write_json(
            {
                "mode": "hub" if self.berth.extra.get("hub") else "standalone",
                "user": self.berth.user,
                "groups": list(self.berth.groups),
                "version": __version__,
                # runtime: "docker", "swarm" or "process"; isolation: "container", or "none" (process kernels)
                **await service.engine_info(),
                "resources": kinds_json(),  # the resource kinds a request may name (jupyter_berth.resources)
            }
        )


class PresetsHandler(BerthHandler):
    @web.authenticated
    @authorized
    async def get(self):
        service = await self.berth.service()
        self.write_json(
            {
                "presets": [
                    {
                        "name": p.name,
                        "display_name": p.display_name,
                        "description": p.description,
                        "image": p.image or service.default_image,
                        "resources": p.resources.to_dict(),
                    }
                    for p in service.preset_list
                    if service.profiles.preset_visible(p.name, self.berth.groups)  # a profile's groups
                ]
            }
        )


class ProfileHandler(BerthHandler):
    @web.authenticated
    @authorized
    async def get(self):
        service = await self.berth.service()
        self.write_json(await service.get_profile(self.berth.user))

    @web.authenticated
    @authorized
    async def put(self):
        body = self.json_object()
        unknown = set(body) - {"request", "image"}
        if unknown:
            raise RequestError(sorted(unknown)[0], "unknown field; a profile has 'request' and 'image'")
        request, image = body.get("request") or {}, body.get("image")
        if not isinstance(request, dict):
            raise RequestError("request", 'expected an object such as {"cpu": 2, "mem": "4G"}')
        if image is not None and not isinstance(image, str):
            raise RequestError("image", "expected an image reference such as berth/python:3.11, or null")
        service = await self.berth.service()
        self.write_json(await service.set_profile(self.berth.user, self.berth.groups, request=request, image=image))


class PolicyHandler(BerthHandler):
    @web.authenticated
    @authorized
    async def get(self):
        service = await self.berth.service()
        self.write_json(await service.policy_summary(self.berth.user, self.berth.groups))


class GpusHandler(BerthHandler):
    @web.authenticated
    @authorized
    async def get(self):
        service = await self.berth.service()
        self.write_json(await service.gpus.gpu_summary())


class UnknownRouteHandler(BerthHandler):
    """Any other path under ``berth/api/``: a JSON 404 after the usual checks (not the server's HTML page)."""

    server_methods = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})  # answered here, never forwarded

    @web.authenticated
    @authorized
    async def get(self, path):
        raise NotFoundError(
            f"no route {self.request.method} berth/api/{path}; the routes are listed in berth/api/openapi.json"
        )

    post = put = patch = delete = get


ROUTES = [
    (r"/berth/api/openapi.json", OpenAPIHandler),
    (r"/berth/api/info", InfoHandler),
    (r"/berth/api/presets", PresetsHandler),
    (r"/berth/api/profile", ProfileHandler),
    (r"/berth/api/policy", PolicyHandler),
    (r"/berth/api/gpus", GpusHandler),
]
#: Mounted after every other route of the API.
UNKNOWN_ROUTE = (r"/berth/api/(?P<path>.*)", UnknownRouteHandler)

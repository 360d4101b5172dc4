"""The image catalog: what users may start, what an admin changes, what a notebook's environment gets.

Every route needs an authenticated user; the admin routes (offer, hide, retire, default,
alias, unalias, pull, build, gc, operations, history, ``?all=1``) also need an image admin
(``c.ImageCatalog.admin_users`` / ``admin_groups``): the core refuses others with 403 before
it changes anything. Pull and build answer ``202`` with an operation to poll; the rest answer
at once. After a change (and on every listing) the server's Berth kernelspecs follow the
offered images, standalone.
"""

from __future__ import annotations

import asyncio

from jupyter_berth.errors import RequestError
from jupyter_berth.kernelspecs import kernelspec_for_answer

from .base import BerthHandler, authorized, web


def _fields(body: dict, allowed: dict[str, type], required: tuple[str, ...] = ()) -> dict:
    """The body's fields, checked: known names, the right JSON types, the required ones present."""
    unknown = set(body) - set(allowed)
    if unknown:
        raise RequestError(sorted(unknown)[0], f"unknown field; expected {', '.join(sorted(allowed))}")
    for name in required:
        if body.get(name) is None:
            raise RequestError(name, "required")
    out = {}
    for name, kind in allowed.items():
        value = body.get(name)
        if value is None:
            continue
        if kind is bool:
            if not isinstance(value, bool):
                raise RequestError(name, "expected true or false")
            out[name] = value
        elif not isinstance(value, kind) or isinstance(value, bool):
            raise RequestError(name, f"expected a {'string' if kind is str else kind.__name__}")
        else:
            out[name] = value
    return out


class ImagesBase(BerthHandler):
    async def sync_kernelspecs(self, service, images=None) -> None:
        """Standalone: bring this server's Berth kernelspecs in line with the offered images."""
        from jupyter_berth.kernelspecs import plan, sync
        from jupyter_berth.service import BerthService

        if not isinstance(service, BerthService) or not self.berth.extra.get("sync_kernelspecs", True):
            return
        specs = plan(
            images if images is not None else await service.images.catalog_view(),
            service.preset_list,
            service.default_image,
        )
        await asyncio.to_thread(sync, specs)


class ImagesHandler(ImagesBase):
    @web.authenticated
    @authorized
    async def get(self):
        include_all = self.get_query_argument("all", "0")
        if include_all not in ("0", "1", "true", "false"):
            raise RequestError(
                "all", "expected 1 or true (admins: also hidden, retired and removed versions), or 0 or false"
            )
        service = await self.berth.service()
        images = await service.images.image_catalog(
            self.berth.user, self.berth.groups, include_all=include_all in ("1", "true")
        )
        await self.sync_kernelspecs(service, await service.images.catalog_view())
        self.write_json(
            {
                "images": images,
                "default": service.default_image,
                "admin": service.images.is_image_admin(self.berth.user, self.berth.groups),
            }
        )


#: action → (service method, body fields, required fields)
ACTIONS = {
    "offer": ("offer_image", {"image": str}, ("image",)),
    "hide": ("hide_image", {"image": str}, ("image",)),
    "retire": ("retire_image", {"image": str, "replacement": str, "note": str}, ("image",)),
    "default": ("set_default_image", {"image": str}, ("image",)),
    "alias": ("alias_image", {"alias": str, "target": str}, ("alias", "target")),
    "unalias": ("unalias_image", {"alias": str}, ("alias",)),
}


class ImageActionHandler(ImagesBase):
    """``POST images/{offer,hide,retire,default,alias,unalias}``: one admin decision."""

    @web.authenticated
    @authorized
    async def post(self, action):
        method, allowed, required = ACTIONS[action]
        service = await self.berth.service()
        user, groups = self.berth.user, self.berth.groups
        service.images.require_image_admin(
            user, groups, f"{action} (image catalog)"
        )  # before the body: refused is refused
        body = _fields(self.json_object(), allowed, required)
        if action == "alias":
            result = await service.images.alias_image(user, groups, body["alias"], body["target"])
        elif action == "unalias":
            result = await service.images.unalias_image(user, groups, body["alias"])
        elif action == "retire":
            result = await service.images.retire_image(
                user, groups, body["image"], replacement=body.get("replacement"), note=body.get("note")
            )
        else:
            result = await getattr(service.images, method)(user, groups, body["image"])
        await self.sync_kernelspecs(service)
        self.write_json(result)


class ImageOperationStartHandler(ImagesBase):
    """``POST images/pull`` and ``POST images/build``: checked now, run in the background (202 + operation)."""

    FIELDS = {
        "pull": ({"source": str, "tag": str, "offer": bool}, ("source",)),
        "build": (
            {
                "base": str,
                "tag": str,
                "dockerfile": str,
                "requirements": str,
                "environment": str,
                "display_name": str,
                "offer": bool,
                "replace": bool,
            },
            ("base", "tag"),
        ),
    }

    @web.authenticated
    @authorized
    async def post(self, kind):
        allowed, required = self.FIELDS[kind]
        service = await self.berth.service()
        # The admin check comes before the body is read, so a refused request learns nothing else.
        service.images.require_image_admin(self.berth.user, self.berth.groups, f"image {kind}")
        body = _fields(self.json_object(), allowed, required)
        op = await service.images.versions.start_image_operation(self.berth.user, self.berth.groups, kind, body)
        self.set_header("Location", f"{self.base_url}berth/api/images/operations/{op.id}")
        self.write_json(op.to_json(), status=202)


class ImageOperationsHandler(ImagesBase):
    @web.authenticated
    @authorized
    async def get(self):
        service = await self.berth.service()
        ops = service.images.versions.image_operations(self.berth.user, self.berth.groups)
        self.write_json({"operations": [{k: v for k, v in op.to_json().items() if k != "log"} for op in ops]})


class ImageOperationHandler(ImagesBase):
    @web.authenticated
    @authorized
    async def get(self, op_id):
        since = self.get_query_argument("since", "0")
        if not (since.isascii() and since.isdigit()) or len(since) > 9:
            raise RequestError("since", "expected the number of log lines already read (0 or more)")
        service = await self.berth.service()
        op = service.images.versions.image_operation(self.berth.user, self.berth.groups, op_id)
        if op.done and op.state == "succeeded":
            await self.sync_kernelspecs(service)
        self.write_json(op.to_json(int(since)))


class ImageGcHandler(ImagesBase):
    @web.authenticated
    @authorized
    async def post(self):
        service = await self.berth.service()
        service.images.require_image_admin(self.berth.user, self.berth.groups, "removing unused images")
        body = _fields(self.json_object(), {"dry_run": bool, "include_hidden": bool})
        results = await service.images.gc_images(
            self.berth.user,
            self.berth.groups,
            dry_run=body.get("dry_run", False),
            include_hidden=body.get("include_hidden", False),
        )
        self.write_json({"results": results})


class ImageResolveHandler(ImagesBase):
    """``POST images/resolve``: what a notebook's stored environment ``{image, digest}`` gets here."""

    @web.authenticated
    @authorized
    async def post(self):
        body = _fields(self.json_object(), {"image": str, "digest": str, "kernel": str, "language": str}, ("image",))
        service = await self.berth.service()
        answer = await service.images.resolve_environment(body["image"], body.get("digest"))
        if "kernel" in body or "language" in body:  # which kernelspec runs that kernel (or one in its language)
            view = await service.images.catalog_view()
            answer["kernelspec"] = kernelspec_for_answer(view, answer, body.get("kernel"), body.get("language"))
        self.write_json(answer)


class KernelEnvironmentHandler(ImagesBase):
    """``GET images/environment/{kernel_id}``: the environment a notebook records from one of my kernels."""

    @web.authenticated
    @authorized
    async def get(self, kernel_id):
        service = await self.berth.service()
        self.write_json(await service.kernel_environment(self.berth.user, kernel_id))


class ImageHistoryHandler(ImagesBase):
    @web.authenticated
    @authorized
    async def get(self):
        image = self.get_query_argument("image", None)
        service = await self.berth.service()
        self.write_json({"events": await service.images.image_events(self.berth.user, self.berth.groups, image)})


ROUTES = [
    (r"/berth/api/images", ImagesHandler),
    (r"/berth/api/images/(?P<action>offer|hide|retire|default|alias|unalias)", ImageActionHandler),
    (r"/berth/api/images/(?P<kind>pull|build)", ImageOperationStartHandler),
    (r"/berth/api/images/operations", ImageOperationsHandler),
    (r"/berth/api/images/operations/(?P<op_id>[^/]+)", ImageOperationHandler),  # unknown ids: a JSON 404
    (r"/berth/api/images/gc", ImageGcHandler),
    (r"/berth/api/images/resolve", ImageResolveHandler),
    (r"/berth/api/images/environment/(?P<kernel_id>[^/]+)", KernelEnvironmentHandler),
    (r"/berth/api/images/history", ImageHistoryHandler),
]

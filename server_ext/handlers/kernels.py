"""The user's Berth kernels: list with live usage, the parameterized start, stop.

Start and stop act on this server's kernel manager (its provisioner then calls the Berth
service), so they stay in the user's server in hub mode too; the list is the service's.
"""

from __future__ import annotations

import posixpath
import uuid

from jupyter_client.kernelspec import NoSuchKernel
from jupyter_core.utils import ensure_async

from jupyter_berth.errors import NotFoundError
from jupyter_berth.images import catalog
from jupyter_berth.kernelspecs import image_kernel_name, kernelspec_for, preset_kernel_name
from jupyter_berth.start_request import StartRequest

from .base import BerthHandler, authorized, web


def parse_start(body) -> tuple[StartRequest, str]:
    """The sidebar's start body → the request and the notebook's path (every refusal names the field)."""
    return StartRequest.from_sidebar_json(body)


class KernelsHandler(BerthHandler):
    server_methods = frozenset({"POST"})  # a kernel of this server's kernel manager, also in hub mode

    @web.authenticated
    @authorized
    async def get(self):
        service = await self.berth.service()
        server = (self.berth.extra or {}).get("server")  # hub mode: the calling server's own kernels
        self.write_json({"kernels": await service.my_kernels(self.berth.user, server)})

    @web.authenticated
    @authorized
    async def post(self):
        start, path = parse_start(self.json_object())
        kernel_name = await self.kernel_name(start)
        env = start.to_env()  # the provisioner reads it back with StartRequest.from_env
        km = self.berth.kernel_manager
        directory = posixpath.dirname(path) if path.endswith(".ipynb") else path
        kernel_id = str(uuid.uuid4())
        try:
            await ensure_async(km.start_kernel(kernel_id=kernel_id, kernel_name=kernel_name, path=directory, env=env))
        except Exception:
            # jupyter_client 8 keeps a failed start among its pending kernels, and the server's
            # shutdown_all then fails on it (404): a refused start must leave nothing behind
            getattr(km, "_pending_kernels", {}).pop(kernel_id, None)
            raise
        model = await ensure_async(km.kernel_model(kernel_id))
        provisioner = getattr(km.get_kernel(kernel_id), "provisioner", None)
        launch = getattr(provisioner, "launch", None)
        if launch is not None:
            model["berth"] = {
                "image": launch.image,
                "image_digest": launch.image_digest,
                "resources": launch.resources.to_dict(),
                "limits": launch.resources.describe(),
            }
        self.set_header("Location", f"{self.base_url}api/kernels/{kernel_id}")
        self.write_json(model, status=201)

    async def kernel_name(self, start: StartRequest) -> str:
        """The kernelspec a start runs under: the preset's, else the image's (the default image's when none).

        Standalone the embedded service checks the names first (404 naming what is offered); in
        hub mode the hub's service checks them when the provisioner starts the kernel.
        """
        remote, image, info = self.berth.remote, None, None
        if start.preset is not None:
            name, what = preset_kernel_name(start.preset), f"preset {start.preset!r}"
            if remote is None:
                service = await self.berth.service()
                preset = service.preset(start.preset)  # 404 naming the known presets
                info = next(
                    (
                        i
                        for i in await service.images.catalog_view()
                        if i.ref == (preset.image or service.default_image)
                    ),
                    None,
                )
                if info is not None:
                    name = kernelspec_for(name, info.labels, start.kernel)
        else:
            image = start.image
            if remote is None:
                service = await self.berth.service()
                image = image or service.default_image
                info = catalog.find(await service.images.catalog_view(), image)  # 404 naming the offered images
            elif image is None:
                image = (await remote.call("GET", "berth/api/images", retry=False))["default"]
            name, what = image_kernel_name(image), f"image {image}"
            if info is not None:
                name = kernelspec_for(name, info.labels, start.kernel)
        ksm = self.berth.kernel_manager.kernel_spec_manager
        if remote is not None and info is None:  # hub mode: an image with several kernels, from this server's specs
            name = await self.kernel_inside(ksm, name, start.kernel)
        try:
            await ensure_async(ksm.get_kernel_spec(name))
        except NoSuchKernel:
            if remote is not None:
                await self.check_with_hub(remote, start.preset, image)
            raise NotFoundError(
                f"this server has no kernelspec {name!r} for {what}; "
                + (
                    "a hub user's server gets its kernelspecs with its image: restart your server to "
                    "get those of images offered since it started"
                    if remote is not None
                    else "it writes them on start and on every image listing unless "
                    "c.BerthExtensionApp.sync_kernelspecs is off"
                )
            ) from None
        return name

    @staticmethod
    async def kernel_inside(ksm, name: str, kernel: str | None) -> str:
        """``name`` itself, or the kernelspec ``<name>-<kernel>`` of an image inspected when offered (its
        ``python3``, else its first kernel when none is asked), as the synced kernelspecs say."""
        specs = await ensure_async(ksm.get_all_specs())
        if name in specs:
            return name
        inside = {
            (spec.get("spec", {}).get("metadata") or {}).get("jupyter_berth", {}).get("kernel"): n
            for n, spec in sorted(specs.items())
            if n.startswith(name + "-")
        }
        inside.pop(None, None)
        if kernel:
            if kernel not in inside:
                raise NotFoundError(f"the image has no kernel {kernel!r}; it offers: {', '.join(inside) or 'none'}")
            return inside[kernel]
        return inside.get("python3") or next(iter(inside.values()), name)

    @staticmethod
    async def check_with_hub(remote, preset: str | None, image: str | None) -> None:
        """Hub mode, no kernelspec here: the service's word when the name itself is wrong (404)."""
        if preset is not None:
            known = sorted(p["name"] for p in (await remote.call("GET", "berth/api/presets", retry=False))["presets"])
            if preset not in known:
                raise NotFoundError(
                    f"unknown preset {preset!r}; known presets: {', '.join(known) or 'none are configured'}"
                )
        elif image is not None:
            answer = await remote.call("POST", "berth/api/images/resolve", {"image": image}, retry=False)
            if answer.get("status") not in ("available", "replaced"):
                raise NotFoundError(answer.get("message") or f"the image {image!r} is not offered")


class KernelHandler(BerthHandler):
    server_methods = frozenset({"DELETE"})  # a kernel of this server's kernel manager, also in hub mode

    @web.authenticated
    @authorized
    async def delete(self, kernel_id):
        if self.berth.remote is not None:  # hub mode: the hub's service knows which kernels are mine
            listed = (await self.berth.remote.call("GET", "berth/api/kernels", retry=False))["kernels"]
        else:
            listed = await (await self.berth.service()).my_kernels(self.berth.user)
        mine = {k["kernel_id"] for k in listed}
        km = self.berth.kernel_manager
        if kernel_id not in mine or kernel_id not in km:
            raise NotFoundError(f"no running kernel {kernel_id!r} of yours")
        await ensure_async(km.shutdown_kernel(kernel_id))
        self.set_status(204)
        self.finish()


ROUTES = [
    (r"/berth/api/kernels", KernelsHandler),
    (r"/berth/api/kernels/(?P<kernel_id>[\w-]+)", KernelHandler),
]

"""The user's Berth kernels: list with live usage, the parameterized start, stop."""

from __future__ import annotations

import json
import posixpath

from jupyter_core.utils import ensure_async

from jupyter_berth import catalog
from jupyter_berth.errors import NotFoundError, RequestError
from jupyter_berth.kernels.kernelspecs import image_kernel_name, preset_kernel_name
from jupyter_berth.resources import Resources

from .base import BerthHandler, authorized, web

START_FIELDS = {"image", "resources", "folders", "preset", "path"}


def parse_start(body: dict) -> dict:
    """Validate a start request; every refusal names the field and the accepted form."""
    unknown = set(body) - START_FIELDS
    if unknown:
        raise RequestError(sorted(unknown)[0], f"unknown field; a start request has {', '.join(sorted(START_FIELDS))}")
    out = {}
    image = body.get("image")
    if image is not None:
        out["image"] = catalog.validate_ref(image)
    resources = body.get("resources")
    if resources is not None:
        if not isinstance(resources, dict):
            raise RequestError("resources", "expected an object such as {\"cpu\": 2, \"mem\": \"4G\", \"gpu\": 0.25}")
        Resources.parse(resources)  # 400 naming the field, before anything starts
        out["resources"] = resources
    folders = body.get("folders")
    if folders is not None:
        if not isinstance(folders, list) or not all(isinstance(f, str) and f for f in folders):
            raise RequestError("folders", "expected a list of folder names")
        out["folders"] = folders
    preset = body.get("preset")
    if preset is not None:
        if not isinstance(preset, str) or not preset:
            raise RequestError("preset", "expected a preset name")
        out["preset"] = preset
    path = body.get("path", "")
    if not isinstance(path, str) or "\x00" in path or any(part == ".." for part in path.split("/")):
        raise RequestError("path", "expected a path inside the server's root such as 'project/analysis.ipynb'")
    out["path"] = path
    return out


class KernelsHandler(BerthHandler):
    @web.authenticated
    @authorized
    async def get(self):
        service = await self.berth.service()
        self.write_json({"kernels": await service.my_kernels(self.berth.user)})

    @web.authenticated
    @authorized
    async def post(self):
        start = parse_start(self.json_object())
        service = await self.berth.service()
        if "preset" in start:
            service.preset(start["preset"])  # 404 naming the known presets
            kernel_name = preset_kernel_name(start["preset"])
        else:
            image = start.get("image") or service.default_image
            catalog.find(await service.images(), image)  # 404 naming the offered images
            kernel_name = image_kernel_name(image)
        env = {}
        if "resources" in start:
            env["BERTH_REQUEST"] = json.dumps(start["resources"])
        if "image" in start:
            env["BERTH_IMAGE"] = start["image"]
        if "preset" in start:
            env["BERTH_PRESET"] = start["preset"]
        if "folders" in start:
            env["BERTH_FOLDERS"] = json.dumps(start["folders"])
        km = self.berth.kernel_manager
        directory = posixpath.dirname(start["path"]) if start["path"].endswith(".ipynb") else start["path"]
        kernel_id = await ensure_async(km.start_kernel(kernel_name=kernel_name, path=directory, env=env))
        model = await ensure_async(km.kernel_model(kernel_id))
        provisioner = getattr(km.get_kernel(kernel_id), "provisioner", None)
        launch = getattr(provisioner, "launch", None)
        if launch is not None:
            model["berth"] = {"image": launch.image, "image_digest": launch.image_digest,
                              "resources": launch.resources.to_dict(), "limits": launch.resources.describe()}
        self.set_header("Location", f"{self.base_url}api/kernels/{kernel_id}")
        self.write_json(model, status=201)


class KernelHandler(BerthHandler):
    @web.authenticated
    @authorized
    async def delete(self, kernel_id):
        service = await self.berth.service()
        mine = {k["kernel_id"] for k in await service.my_kernels(self.berth.user)}
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

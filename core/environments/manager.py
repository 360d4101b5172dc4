"""``EnvironmentManager``: any image with a Jupyter kernel as a Berth environment.

Composed into the service (``service.environments``) like the other area managers
(:class:`~jupyter_berth.area.AreaManager`), with its own ``c.EnvironmentManager.*`` section. It inspects an image when an admin offers it (:mod:`.inspection`), keeps what it found
(:mod:`.store`), lets the catalog list offered images that carry no Berth labels (with labels made
from what was found), and points a kernel's container spec at the image's own kernel (:mod:`.launch`).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterable

from traitlets import Callable, Float, Integer, Unicode, observe

from ..area import AreaManager
from ..errors import EngineError, NotFoundError
from ..runtime.base import ContainerSpec
from ..runtime.labels import PREFIX
from . import launch
from .inspection import inspect_image
from .model import ImageEnvironment, KernelEnvironment
from .store import EnvironmentStore


class EnvironmentManager(AreaManager):
    """Finds what an image offers Jupyter at offer time and starts its kernels through Berth's launcher."""

    data_dir = Unicode(help="The service's data_dir (linked): found environments are kept under it.")
    site_id = Unicode(help="The service's site_id (linked): labels the inspection container.")
    engine_call = Callable(help="Runs a docker-py call off the loop (the image catalog's engine_call).")

    smoke_seconds = Integer(
        60,
        config=True,
        help="Seconds a kernel found in an image has to start (listen on its port) when the image is offered; "
        "a kernel that does not is not offered, with its last output in the message.",
    )
    inspect_memory = Integer(
        1 << 30, config=True, help="Memory limit (bytes) of the short-lived container that inspects an image."
    )
    listing_ttl = Float(1.0, config=True, help="Seconds the engine's answer about an offered foreign image is reused.")

    def __init__(self, **kw):
        super().__init__(**kw)
        self.store = EnvironmentStore(store_dir(self.data_dir))
        self._seen: dict[str, tuple[float, dict | None]] = {}

    @observe("data_dir")
    def _data_dir_changed(self, change):
        self.store = EnvironmentStore(store_dir(change["new"]))

    # ---- offer ----------------------------------------------------------------------------
    async def discover(self, ref: str) -> ImageEnvironment:
        """Inspect ``ref`` (refusing, with the reason, an image that cannot serve) and keep the result."""
        env = await self.engine_call(
            inspect_image, ref, site=self.site_id, smoke_seconds=self.smoke_seconds, mem=self.inspect_memory
        )
        await asyncio.to_thread(self.store.put, env)
        self._seen.pop(ref, None)
        for name, why in env.skipped.items():
            self.log.warning("Image %s: kernel %s is not offered: %s", ref, name, why)
        self.log.info(
            "Image %s offers %s (inspected in %.2f s)", ref, "; ".join(k.describe() for k in env.kernels), env.seconds
        )
        return env

    async def environment(self, image_id: str) -> ImageEnvironment | None:
        return await asyncio.to_thread(self.store.get, image_id)

    # ---- catalog --------------------------------------------------------------------------
    async def _attrs(self, ref: str) -> dict | None:
        from ..images.engine_ops import inspect as inspect_ref

        now = time.monotonic()
        hit = self._seen.get(ref)
        if hit is not None and now - hit[0] < self.listing_ttl:
            return hit[1]
        attrs = await self.engine_call(inspect_ref, ref)
        self._seen[ref] = (now, attrs)
        return attrs

    async def with_foreign(self, found: list[tuple[str, dict]], refs: Iterable[str]) -> list[tuple[str, dict]]:
        """``found`` (the engine's Berth kernel images) plus the images among ``refs`` (those the catalog has
        decisions about) that carry no Berth labels but were inspected: with catalog labels made from what
        was found in them."""
        have = {ref for ref, _ in found}
        out = list(found)
        for ref in refs:
            if ref in have:
                continue
            try:
                attrs = await self._attrs(ref)
            except EngineError:
                return out  # no Docker engine (process runtime): nothing foreign to list
            if not attrs:
                continue
            env = await self.environment(attrs.get("Id", ""))
            if env is None:
                continue
            config = dict(attrs.get("Config") or {})
            config["Labels"] = {
                **(config.get("Labels") or {}),
                **{PREFIX + k: v for k, v in env.catalog_labels().items()},
            }
            out.append((ref, {**attrs, "Config": config}))
        return out

    # ---- start ----------------------------------------------------------------------------
    async def prepare(
        self, spec: ContainerSpec, image_id: str, labels: dict, kernel: str | None
    ) -> KernelEnvironment | None:
        """Point ``spec`` at the image's kernel ``kernel`` (or its default) when the image runs through the
        mounted launcher; ``None`` (spec unchanged) for an image built FROM Berth's base (it has ``berth-kernel``)."""
        env = await self.environment(image_id) if image_id else None
        if env is None:
            if labels.get("launcher") != "mounted" and not _no_berth_kernel(labels):
                return None
            env = await self.discover(spec.image)
        chosen = env.kernel(kernel)
        if chosen is None:
            names = ", ".join(k.name for k in env.kernels)
            raise NotFoundError(f"{spec.image} has no kernel {kernel!r}; it offers: {names}")
        launch.apply(spec, chosen)
        return chosen


def _no_berth_kernel(labels: dict) -> bool:
    """Berth's own recipes for other languages label themselves ``kind=environment``: no berth-kernel inside."""
    return labels.get("kind") == "environment"


def store_dir(data_dir: str) -> str:
    return os.path.join(data_dir, "environments")

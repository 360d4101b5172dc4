"""What every BerthSpawner of one hub shares: the Berth facade (ledger, admission, policies,
folders, GPUs, the engine, opened but never started) and the spawn queue.

The hub process opens the same ledger as the hub's Berth service (``c.BerthService.db_url``
or ``data_dir`` from the hub's own config, where the demo and docs/admin-hub.md put them):
a server's allocation is reserved in the same transaction-safe way as a kernel's, so a
user's servers and kernels count toward one set of totals and the host is never
oversubscribed, whichever process reserves. It does not *start* a :class:`BerthService`
(no reconcile, no sampling: the service does those); it opens one
(:meth:`BerthService.open_for_servers`) and calls its public methods, so the policy, the
folder mounts, the GPU assignment, the user's network and the site label are decided
exactly as the service decides them (``jupyter_berth.servers``).
"""

from __future__ import annotations

import asyncio
import time

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from jupyter_berth.errors import BerthError, EngineError
from jupyter_berth.resources import Resources
from jupyter_berth.servers import NOTICE_REASONS, SERVER_KIND_LABEL
from jupyter_berth.service import BerthService

from . import queue_metrics
from .spawn_form import FolderChoice, FormContext, ImageChoice
from .spawn_form_gpu import GpuOffer
from .spawn_queue import SpawnQueue


class HubCore:
    """The Berth core as the hub process uses it (one per process, shared by every spawner)."""

    def __init__(self, config, log, *, max_starting: int, retry_interval: float):
        self.log = log
        self.service = BerthService(config=config, log=log)  # configured, never started (see module doc)
        self.queue = SpawnQueue(max_starting=max_starting, retry_interval=retry_interval, log=log)
        queue_metrics.export(self.queue)  # on JupyterHub's /hub/metrics
        self._opened = False
        self._lock = asyncio.Lock()

    async def open(self) -> BerthService:
        """Open the ledger and the engine on first use; register this host if the service has not yet."""
        if self._opened:
            return self.service
        async with self._lock:
            if self._opened:
                return self.service
            await self.service.open_for_servers()
            self._opened = True
            return self.service

    # -- what the form shows ---------------------------------------------------------------------
    async def server_images(self, patterns: list[str], default: str) -> list[ImageChoice]:
        """Server images on the engine (``kind=server``) matching ``patterns``; the default first."""
        found = await self.service.server_images(patterns)
        choices = [ImageChoice(ref, display_name) for ref, display_name in found]
        return sorted(choices, key=lambda c: (c.ref != default, c.ref))

    async def folder_choices(self, user: str, groups) -> list[FolderChoice]:
        try:
            views = await self.service.folders.list_folders(user, groups, usage=False)
        except BerthError as e:
            self.log.warning("Berth: cannot list %s's folders: %s", user, e.message)
            return []
        return [FolderChoice(v.folder.reference, v.folder.name, v.access.mode) for v in views]

    async def last_notice(self, user: str, subject: str) -> str | None:
        """Why the user's previous server went away, if it ended abnormally in the last day."""
        return await self.service.server_notice(user, subject)

    async def gpu_offer(self) -> GpuOffer:
        """This host's GPUs and their free shares, as the service reports them (``gpu_summary``)."""
        s = await self.open()
        inventory = s.gpus.gpu_inventory
        if inventory is None or not inventory.devices:  # no GPU: nothing to ask (and NVML is not asked again)
            return GpuOffer(message=inventory.message) if inventory is not None else GpuOffer()
        return GpuOffer.from_summary(await s.gpus.gpu_summary(), shareable=s.gpus.gpu_shareable, node=s.node_name)

    async def form_context(
        self,
        user: str,
        groups,
        subject: str,
        *,
        patterns: list[str],
        images: list[tuple[str, str]] | None = None,
        default_image: str,
        default_request: dict,
        hide_missing_gpu: bool = False,
    ) -> FormContext:
        s = await self.open()
        policy = await s.policy_for(user, groups)
        summary = await s.policy_summary(user, groups)  # what is left, narrowed by the groups' totals
        if images is not None:  # DockerSpawner's allowed_images: exactly those, the default first if offered
            offered = [ImageChoice(ref, name) for ref, name in images]
            if not any(i.ref == default_image for i in offered):
                default_image = offered[0].ref
            images = sorted(offered, key=lambda c: c.ref != default_image)
        else:
            images = await self.server_images(patterns, default_image)
            if not any(i.ref == default_image for i in images):
                images = [ImageChoice(default_image, "")] + list(images)
        if default_request.get("gpu") == -1:  # a device request for every GPU: this host's count
            inventory = s.gpus.gpu_inventory
            default_request = {**default_request, "gpu": float(len(inventory.devices)) if inventory else 0.0}
        return FormContext(
            policy=policy,
            images=images,
            default_image=default_image,
            defaults=Resources.parse(default_request),
            remaining=summary["remaining"],
            group_totals=summary["group_totals"],
            budgets=(await s.fair.my_budget(user, groups))["budgets"],
            folders=await self.folder_choices(user, groups),
            gpu=await self.gpu_offer(),
            hide_missing_gpu=hide_missing_gpu,
            notice=await self.last_notice(user, subject),
            profiles=tuple(s.profiles.for_user(groups, "server")),
            disk=(await s.engine_info())["disk"],
        )


async def wait_for_http(url: str, timeout: float, *, alive=None, interval: float = 0.05) -> float:
    """Poll ``url`` until it answers below 500; returns the seconds waited.

    Polls every ``interval`` seconds (growing to 0.25 s), far finer than the hub's own
    backoff, so a server is handed over the moment it listens. ``alive()`` (a coroutine
    returning a false value once the container has died) is asked about once a second,
    so a crashing server fails at once instead of at the timeout.
    """
    client = AsyncHTTPClient()
    started = time.monotonic()
    next_check = started + 1.0
    while True:
        try:
            response = await client.fetch(
                HTTPRequest(url, method="GET", follow_redirects=False, connect_timeout=2, request_timeout=5),
                raise_error=False,
            )
            if response.code and response.code < 500 and response.code != 599:
                return time.monotonic() - started
        except (HTTPClientError, OSError):
            pass
        now = time.monotonic()
        if now - started > timeout:
            raise EngineError(f"the server did not answer at {url} within {timeout:.0f} s")
        if alive is not None and now >= next_check:
            next_check = now + 1.0
            verdict = await alive()
            if verdict is not True:
                raise EngineError(f"the server's container stopped before it answered: {verdict}")
        await asyncio.sleep(interval)
        interval = min(interval * 1.5, 0.25)


__all__ = ["HubCore", "NOTICE_REASONS", "SERVER_KIND_LABEL", "wait_for_http"]

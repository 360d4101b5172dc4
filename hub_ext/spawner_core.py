"""What every BerthSpawner of one hub shares: the Berth core (ledger, admission, policies,
folders, GPUs, the engine) and the spawn queue.

The hub process opens the same ledger as the hub's Berth service (``c.BerthService.db_url``
or ``data_dir`` from the hub's own config, where the demo and docs/admin-hub.md put them):
a server's allocation is reserved in the same transaction-safe way as a kernel's, so a
user's servers and kernels count toward one set of totals and the host is never
oversubscribed, whichever process reserves. It does not *start* a :class:`BerthService`
(no reconcile, no sampling: the service does those); it uses one as a configured facade
for what must be decided exactly as the service decides it: ``policy_for`` (config
policies overlaid with those stored in the ledger), ``folder_mounts``, the GPU assigner and
``gpu_summary`` (the devices and their free shares, which the form offers), the per-user
network and the site label.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from datetime import datetime, timedelta, timezone

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from jupyter_berth.admission import Admission
from jupyter_berth.errors import BerthError, EngineError
from jupyter_berth.ledger import Ledger
from jupyter_berth.resources import Resources
from jupyter_berth.service import BerthService

from . import queue_metrics
from .spawn_form import FolderChoice, FormContext, ImageChoice
from .spawn_form_gpu import GpuOffer
from .spawn_queue import SpawnQueue

#: Image label that marks single-user server images (``kind=server``).
SERVER_KIND_LABEL = "io.jupyter.berth.kind=server"
#: End reasons worth telling the user about on the next spawn form, and for how long.
NOTICE_REASONS = ("culled", "lifetime", "oom", "lost", "exited", "failed")
NOTICE_FOR = timedelta(hours=24)


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
            s = self.service
            if s.runtime is None:
                from jupyter_berth.runtime.docker import DockerRuntime

                s.runtime = DockerRuntime()
            if s.ledger is None:
                s.ledger = await s._db(Ledger, s.db_url, data_dir=s.data_dir)
            s.admission = Admission(s.ledger)
            if not s.site_id:  # the same id BerthService.start computes, so its reconcile owns our servers
                s.site_id = hashlib.sha256(s.ledger.url.encode()).hexdigest()[:12]
            await s.gpus.discover_gpus()
            if await s._db(s.ledger.get_node, s.node_name) is None:
                capacity = await s.refresh_capacity()
                self.log.info(
                    "Berth: registered host %s (%s CPU, %s bytes) before the service did",
                    capacity["node"],
                    capacity["cpu"],
                    capacity["mem"],
                )
            self.log.info("Berth spawner: ledger %s, site %s, host %s", s.ledger.url, s.site_id, s.node_name)
            self._opened = True
            return s

    # -- what the form shows ---------------------------------------------------------------------
    async def server_images(self, patterns: list[str], default: str) -> list[ImageChoice]:
        """Server images on the engine (``kind=server``) matching ``patterns``; the default first."""
        import fnmatch

        found = await self.service.runtime.list_images(label=SERVER_KIND_LABEL)
        choices = {}
        for ref, attrs in found:
            if any(fnmatch.fnmatchcase(ref, p) for p in patterns):
                labels = (attrs.get("Config") or {}).get("Labels") or {}
                choices[ref] = ImageChoice(ref, labels.get("io.jupyter.berth.display_name", ""))
        ordered = sorted(choices.values(), key=lambda c: (c.ref != default, c.ref))
        return ordered

    async def folder_choices(self, user: str, groups) -> list[FolderChoice]:
        try:
            views = await self.service.folders.list_folders(user, groups, usage=False)
        except BerthError as e:
            self.log.warning("Berth: cannot list %s's folders: %s", user, e.message)
            return []
        return [FolderChoice(v.folder.reference, v.folder.name, v.access.mode) for v in views]

    async def last_notice(self, user: str, subject: str) -> str | None:
        """Why the user's previous server went away, if it ended abnormally in the last day."""
        since = datetime.now(timezone.utc) - NOTICE_FOR
        records = await self.service._db(self.service.ledger.usage_records, since=since, owner=user)
        mine = [r for r in records if r.kind == "server" and r.subject == subject]
        if not mine or mine[-1].end_reason not in NOTICE_REASONS:
            return None
        last = mine[-1]
        ended = last.ended_at if last.ended_at.tzinfo else last.ended_at.replace(tzinfo=timezone.utc)
        when = ended.astimezone(timezone.utc).strftime("%H:%M UTC")
        return f"Your previous server was stopped at {when}: {last.message or last.end_reason}."

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
        default_image: str,
        default_request: dict,
        hide_missing_gpu: bool = False,
    ) -> FormContext:
        s = await self.open()
        policy = await s.policy_for(user, groups)
        summary_usage = await s._db(s.ledger.user_usage, user)
        remaining = {}
        for name in ("cpu", "mem", "gpu"):
            total = getattr(policy, f"total_{name}")
            remaining[name] = (
                None if total is None or total == float("inf") else max(0, total - getattr(summary_usage, name))
            )
        images = await self.server_images(patterns, default_image)
        if not any(i.ref == default_image for i in images):
            images = [ImageChoice(default_image, "")] + list(images)
        return FormContext(
            policy=policy,
            images=images,
            default_image=default_image,
            defaults=Resources.parse(default_request),
            remaining=remaining,
            folders=await self.folder_choices(user, groups),
            gpu=await self.gpu_offer(),
            hide_missing_gpu=hide_missing_gpu,
            notice=await self.last_notice(user, subject),
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

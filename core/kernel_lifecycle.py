"""A kernel's life in a container: reserve and start, finish (stop, account, release), list.

Functions of a :class:`~jupyter_berth.service.BerthService` (``s``); the facade's ``start_kernel``,
``stop_kernel``, ``kernel_ended``, ``my_kernels`` and ``kernel_environment`` call them, and reconcile and a stopped
server's orphans go through :func:`finish` too, so a kernel is released the same way whatever ended it.
"""

from __future__ import annotations

import contextlib
import secrets
from datetime import datetime, timedelta, timezone

from . import allocation_plan, server_scope, start_queue
from .environments import launch
from .environments.launch import KERNEL_ENV
from .errors import BerthError, NotFoundError
from .images import catalog
from .kernel_launch import KernelConnection, KernelLaunch, exit_message, kernel_spec
from .resources import Resources
from .runtime import labels as label_keys
from .runtime.base import Mount

#: End reasons whose usage-record message tells the user why their kernel is gone.
RULE_END_REASONS = ("lost", "budget", "culled", "disk")


async def start_kernel(
    s,
    user: str,
    groups=(),
    *,
    kernel_id: str,
    request: dict | None = None,
    preset: str | None = None,
    image: str | None = None,
    cwd: str | None = None,
    mounts: list[Mount] | None = None,
    env: dict | None = None,
    resources: Resources | None = None,
    ip: str | None = None,
    key: str | None = None,
    folders: list[str] | None = None,
    server: str | None = None,
) -> KernelLaunch:
    """Reserve, then start one kernel container (see :meth:`BerthService.start_kernel`); ``server``: the hub
    server it belongs to (its name, "" the default one), recorded on the allocation and labelled."""
    # The policy is checked once, by admission (EffectivePolicy.check), when the allocation is reserved.
    if resources is None:
        resources, image, policy = await s.resolve_request(user, groups, request=request, preset=preset, image=image)
    else:
        policy = await s.policy_for(user, groups)
    view = await s.images.catalog_view()
    restart = ip is not None  # a restart of a running kernel: a retired image keeps serving it
    entry = view.get(catalog.normalise_ref(image)) if restart and isinstance(view, catalog.CatalogView) else None
    info = entry if entry is not None and entry.state == "retired" else catalog.find(view, image)
    mounts = list(mounts or [])
    if folders:
        mounts += await s.folders.folder_mounts(user, groups, folders)  # refuses folders the user may not mount
    reserve = allocation_plan.reserve_call(
        s,
        owner=user,
        groups=groups,
        policy=policy,
        request=resources,
        kind="kernel",
        subject=kernel_id,
        image=image,
        server=server,
    )
    alloc = await start_queue.reserve_in_turn(  # waits in line when the policy says so (on_full: queue)
        s, policy, lambda queue_id: reserve(queue_id=queue_id), owner=user, subject=kernel_id, request=resources,
        log=s.log,
    )  # fmt: skip
    container = None
    try:
        connection = KernelConnection(key=key or secrets.token_hex(32))
        network = await s._user_network(user)
        spec = kernel_spec(
            owner=user,
            kernel_id=kernel_id,
            allocation_id=alloc.id,
            image=image,
            resources=resources,
            connection=connection,
            network=network,
            cwd=cwd,
            mounts=mounts,
            env=env,
            site=s.site_id,
        )
        spec.ip = ip
        if server:  # a named server's kernel (the default server's carry none, as its container)
            spec.labels[label_keys.key("server_name")] = label_keys.sanitize_value(server)
        allocation_plan.place(s, spec, alloc)
        await s.environments.prepare(spec, info.id, info.labels, (env or {}).get(KERNEL_ENV))
        container = await s._pool.adopt(spec, image_id=info.id) if s._pool is not None else None
        try:
            container = container or await s.runtime.run(spec)
        except BerthError as e:
            if not ip or e.status == 404:
                raise
            s.log.warning(
                "Kernel %s could not keep its address %s (%s); starting on a new one", kernel_id, ip, e.message
            )
            spec.ip = None
            container = await s.runtime.run(spec)
        await s._db(s.ledger.mark_running, alloc.id, container.id, image_digest=info.digest)
    except BaseException as e:
        reason = "failed" if isinstance(e, Exception) else "cancelled"
        if container is not None:  # e.g. stopped by its user while starting: no container without a grant
            with contextlib.suppress(BerthError):
                await s.runtime.remove(container.id)
        await s._db(s.ledger.release, alloc.id, reason, message=getattr(e, "message", str(e))[:500])
        raise
    s.log.info("Started kernel %s for %s: %s on %s (%s)", kernel_id, user, image, container.ip, resources.describe())
    return KernelLaunch(
        kernel_id=kernel_id,
        allocation_id=alloc.id,
        container_id=container.id,
        image=image,
        image_digest=info.digest,
        resources=resources,
        connection=connection.for_client(container.ip, getattr(container, "ports", None)),
    )


async def ended_message(s, user: str, kernel_id: str) -> str:
    """Why ``kernel_id`` is not running: its latest usage record's message (e.g. its host left), if any."""
    since = datetime.now(timezone.utc) - timedelta(days=1)
    records = [r for r in await s._db(s.ledger.usage_records, since=since, owner=user) if r.subject == kernel_id]
    if records and records[-1].end_reason in RULE_END_REASONS and records[-1].message:
        return f"kernel {kernel_id} is no longer running: {records[-1].message}"
    if records and records[-1].message:  # e.g. released on the engine's word before the server asked
        return f"no running kernel {kernel_id!r} of yours; it ended: {records[-1].message}"
    return f"no running kernel {kernel_id!r} of yours"


async def kernel_ended(s, user: str, kernel_id: str) -> tuple[str, str]:
    """The kernel's container exited or vanished on its own: finish it, or, if the engine's events already
    released it, the reason and message recorded then (see :meth:`BerthService.kernel_ended`)."""
    try:
        alloc = await s._own_allocation(user, kernel_id)
    except NotFoundError:
        ended = await recently_ended(s, user, kernel_id)
        if ended is None:
            raise
        return ended
    return await s._finish(alloc, "exited", stop=False)


async def recently_ended(s, user: str, kernel_id: str) -> tuple[str, str] | None:
    """``(reason, message)`` of a kernel released in the last minutes (e.g. on the engine's word,
    core/engine_events.py, before its server noticed), or None."""
    since = datetime.now(timezone.utc) - timedelta(minutes=10)
    records = await s._db(s.ledger.usage_records, since=since, owner=user)
    ended = [r for r in records if r.subject == kernel_id and r.kind == "kernel"]
    if not ended:
        return None
    return ended[-1].end_reason, ended[-1].message or f"the kernel ended ({ended[-1].end_reason})"


async def finish(s, alloc, reason: str, *, stop: bool, now: bool = False, why: str | None = None) -> tuple[str, str]:
    """Stop (if ``stop``) and remove a kernel's container, then release its allocation with a usage record."""
    info = await s.runtime.inspect(alloc.container_id) if alloc.container_id else None
    usage = await s.usage.sample_one(alloc, info)
    if info is not None and info.running and stop:
        await s.runtime.stop(info.id, timeout=0 if now else s.stop_timeout)
        info = await s.runtime.inspect(info.id)
    end_reason, message = exit_message(info, alloc.resources)
    if info is not None and not info.oom_killed and reason != "exited":
        end_reason, message = reason, why or f"the kernel was stopped ({reason})"
    if info is not None:
        await s.runtime.remove(info.id)
        if s._pool is not None:  # an adopted pool container: unmount the files handed over to it
            await s._pool.released(info.id)
    await s._db(
        s.ledger.release,
        alloc.id,
        end_reason,
        exit_code=info.exit_code if info else None,
        message=message,
        cpu_seconds=usage.cpu_seconds if usage else None,
        mem_peak_bytes=usage.mem_peak_bytes if usage else None,
    )
    return end_reason, message


async def my_kernels(s, user: str, server: str | None = None) -> list[dict]:
    """The user's live kernels with a fresh usage sample each (for the sidebar); ``server``: only that hub
    server's (see :func:`.server_scope.belongs`), ``None``: all."""
    out = []
    allocs = [a for a in await s.list_kernels(user) if server_scope.belongs(a, server)]
    gpu_memory = await s.gpus.gpu_memory_of(allocs)  # NVML's per-process memory, where there is NVML
    for alloc in allocs:
        usage = await s.runtime.usage(alloc.container_id) if alloc.container_id else None
        out.append(
            {
                "kernel_id": alloc.subject,
                "image": alloc.image,
                "image_digest": alloc.image_digest,
                "state": alloc.state,
                "resources": alloc.resources.to_dict(),
                "limits": alloc.resources.describe(),
                "started_at": alloc.started_at,
                "gpu_devices": list(alloc.gpu_devices or ()),
                "server": alloc.server,
                "usage": None
                if usage is None
                else {
                    "cpu_seconds": usage.cpu_seconds,
                    "mem_bytes": usage.mem_bytes,
                    "mem_peak_bytes": usage.mem_peak_bytes,
                    "pids": usage.pids,
                    "gpu_mem_bytes": gpu_memory.get(alloc.container_id),
                    "at": usage.at,
                },
            }
        )
    return out


async def kernel_environment(s, user: str, kernel_id: str) -> dict:
    """The environment a notebook records from one of ``user``'s running kernels: image, digest, resources,
    language, the kernel inside the image and its Berth kernelspec."""
    alloc = await s._own_allocation(user, kernel_id)
    entry = (await s.images.catalog_view()).get(alloc.image)
    container = await s.runtime.inspect(alloc.container_id) if alloc.container_id else None
    return {
        "image": alloc.image,
        "digest": alloc.image_digest,
        "resources": alloc.resources.to_dict(),
        "display_name": entry.display_name if entry is not None else alloc.image,
        **launch.identity(container.labels if container else {}, alloc.image, entry.labels if entry else None),
    }

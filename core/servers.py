"""A user's single-user server as a quota-bounded container: the lifecycle the hub's spawner asks for.

:class:`~jupyter_berth.service.BerthService` offers these as its ``*_server`` methods; the spawner
keeps only the spawn form, the queue and the progress it shows, and never touches the ledger,
admission or the engine itself. A server is admitted like a kernel (an allocation of kind
``server``, subject ``user/server-name``, reserved in the same transaction-safe way, counted in
the same totals), runs with the same isolation on the user's own network, and is released once,
with a last usage sample and a reason the user reads on the next spawn form.

The hub process opens the service with :func:`open_for_servers` (the ledger, the local engine or
the swarm, this host's GPUs) but never *starts* it: reconcile and sampling are the hub's Berth
service's job. On Swarm a server is placed like a kernel (admission picks the node, the service
is pinned to it) and the hub reaches it over the user's overlay network
(:mod:`.runtime.swarm_access`).
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from . import allocation_plan
from .errors import BerthError, EngineError
from .kernel_launch import user_network as user_network_name
from .kernel_launch import user_subnets
from .pool.server_pool import ServerPool
from .runtime import choice as runtime_choice
from .runtime import site_scope
from .runtime.base import ContainerInfo, ContainerSpec, Mount
from .runtime.labels import make_labels
from .runtime.swarm_spec import NODE_LABEL

#: Image label that marks single-user server images (``kind=server``).
SERVER_KIND_LABEL = "io.jupyter.berth.kind=server"
#: Label of a server image's display name.
DISPLAY_NAME_LABEL = "io.jupyter.berth.display_name"
#: End reasons worth telling the user about on the next spawn form, and for how long.
NOTICE_REASONS = ("culled", "lifetime", "oom", "lost", "exited", "failed", "disk")
NOTICE_FOR = timedelta(hours=24)


@dataclass
class ServerContainer:
    """What the spawner decides about a server's container (the rest is the allocation's)."""

    name: str  #: container name (DockerSpawner's ``object_name``; BerthService.server_container_name)
    image: str
    command: list[str]
    env: dict[str, str]
    mounts: list[Mount] = field(default_factory=list)  #: the user's volume
    user: str = "1000:100"  #: numeric uid:gid (never root)
    folders: list[str] = field(default_factory=list)  #: virtual folders to mount (refused if not the user's)
    boot_cpu: float = 0.0  #: CPU quota while the server boots (0: the allocation's from the start)
    gpu_device_request: bool = True  #: hand granted GPUs over as a device request (else environment only)
    server_name: str | None = None  #: a named server's name
    #: DockerSpawner's extra_host_config / extra_create_kwargs, merged after the hardening (runtime/extra_config.py)
    extra_host_config: dict = field(default_factory=dict)
    extra_create: dict = field(default_factory=dict)
    networks: list[str] = field(default_factory=list)  #: networks joined besides the user's (network_name)
    post_start_cmd: list[str] | str | None = None  #: run in the container once it started (DockerSpawner's)


async def user_network(s, user: str, ports: list[int] | None = None) -> str:
    """The user's network on this site, shared by their server, kernels and jobs: made if missing and put
    under the egress policy, letting ``ports`` on the host through (default: the hub API's and the service's)."""
    name = user_network_name(s.network_prefix, user, s.site_id)
    subnets = user_subnets(user, s.user_subnets, s.user_subnet_prefix)
    net = await s.runtime.ensure_network(name, {"owner": user, "site": s.site_id}, subnets=subnets)
    if s.runtime.name == "docker":
        await s.egress.apply(net, s.site_id, s.egress.default_ports() if ports is None else ports)
    return name


async def open_for_servers(s) -> None:
    """Open the ledger and the engine (``runtime_kind`` "swarm": the swarm, whose nodes are recorded now);
    register this host if the service has not yet."""
    if s.runtime is None:
        from .runtime.docker import DockerRuntime

        s.runtime = await runtime_choice.choose(s) if s.runtime_kind == "swarm" else DockerRuntime()
    await s.open()
    await s.gpus.discover_gpus()
    if s.server_pool is None and s.runtime.name == "docker":  # servers started ahead, adopted by spawns
        image = (s.config.get("BerthSpawner") or {}).get("image")  # the hub's config: its spawner's default
        s.server_pool = ServerPool(
            s.runtime, s.site_id, s.data_dir, **({"default_image": image} if image else {}), parent=s
        )
        await s.server_pool.start()
    if s._multi_node or await s._db(s.ledger.get_node, s.node_name) is None:
        capacity = await s.refresh_capacity()
        s.log.info(
            "Berth: registered host %s (%s CPU, %s bytes) before the service did",
            capacity["node"],
            capacity["cpu"],
            capacity["mem"],
        )
    s.log.info("Berth spawner: ledger %s, site %s, host %s", s.ledger.url, s.site_id, s.node_name)


async def server_images(s, patterns: list[str]) -> list[tuple[str, str]]:
    """``(ref, display name)`` of the server images (``kind=server``) on the engine matching ``patterns``."""
    found = await s.runtime.list_images(label=SERVER_KIND_LABEL)
    out = {}
    for ref, attrs in found:
        if any(fnmatch.fnmatchcase(ref, p) for p in patterns):
            labels = (attrs.get("Config") or {}).get("Labels") or {}
            out[ref] = labels.get(DISPLAY_NAME_LABEL, "")
    return sorted(out.items())


async def server_notice(s, user: str, subject: str) -> str | None:
    """Why the user's previous server went away, if it ended abnormally in the last day."""
    since = datetime.now(timezone.utc) - NOTICE_FOR
    records = await s._db(s.ledger.usage_records, since=since, owner=user)
    mine = [r for r in records if r.kind == "server" and r.subject == subject]
    if not mine or mine[-1].end_reason not in NOTICE_REASONS:
        return None
    last = mine[-1]
    ended = last.ended_at if last.ended_at.tzinfo else last.ended_at.replace(tzinfo=timezone.utc)
    when = ended.astimezone(timezone.utc).strftime("%H:%M UTC")
    return f"Your previous server was stopped at {when}: {last.message or last.end_reason}."


async def reserve_server(s, user: str, groups, *, policy, subject: str, resources, image: str):
    """Check the policy and reserve the server's allocation (atomically, as a kernel's): on this host, or on
    the node admission picks on a multi-node site (Swarm), like a kernel."""
    return await allocation_plan.reserve(
        s,
        owner=user,
        groups=groups,
        policy=policy,
        request=resources,
        kind="server",
        subject=subject,
        image=image,
        this_host=False,
    )


async def start_server(s, user: str, groups, alloc, container: ServerContainer, network: str) -> ContainerInfo:
    """Run the admitted server's container (a leftover of the same name is removed first); mark it running."""
    leftover = await s.runtime.inspect(container.name)
    if leftover is not None:
        if not site_scope.belongs_to(leftover.labels, s.site_id):  # another site's, or nobody's: keep it
            raise EngineError(site_scope.foreign_message("container", container.name, leftover.labels, s.site_id))
        s.log.warning("Berth: removing leftover container %s before starting %s", leftover.id[:12], alloc.subject)
        await s.runtime.remove(leftover.id)
    mounts = []
    for m in container.mounts:  # the user's named volume: made with this site's label (refused if another's)
        source = m.source
        if not source.startswith("/"):
            source = await s.runtime.ensure_volume(source, {"owner": user, "site": s.site_id})
        mounts.append(Mount(source=source, target=m.target, read_only=m.read_only))
    if container.folders:
        mounts += await s.folders.folder_mounts(user, groups, list(container.folders))
    # Not allocation_plan.place: a server passes its GPU devices only when its container asks for them
    # (gpu_device_request); on a multi-node site it is pinned to admission's node below, like a kernel.
    devices, gpu_env, gpu_mounts, gpu_plan = s.gpus.gpu_container(alloc.gpu_devices)
    labels = make_labels(
        owner=user,
        kind="server",
        subject=alloc.subject,
        allocation=alloc.id,
        site=s.site_id,
        image_ref=container.image,
        server_name=container.server_name,
    )
    if s._multi_node:
        labels[NODE_LABEL] = alloc.node
    spec = ContainerSpec(
        name=container.name,
        image=container.image,
        command=list(container.command),
        resources=alloc.resources.replace(cpu=max(alloc.resources.cpu, _boot_cpu(s, container))),
        labels=labels,
        env={**container.env, **gpu_env},
        mounts=mounts + gpu_mounts,
        network=network,
        user=container.user,
        hostname=container.name[:63],
        gpu_device_ids=list(devices) if container.gpu_device_request else [],
        ipc_mode=gpu_plan.ipc_mode,
        extra_host_config=dict(container.extra_host_config),
        extra_create=dict(container.extra_create),
    )
    info = await s.server_pool.adopt(spec) if s.server_pool is not None else None  # None: a cold start
    if info is None:
        info = await s.runtime.run(spec)
    await s._db(s.ledger.mark_running, alloc.id, info.id, image_digest=info.image_id)
    for extra in container.networks:  # an admin's network (DockerSpawner's network_name), besides the user's
        await s.runtime.connect_network(info.id, extra)
    if container.post_start_cmd:
        await _post_start(s, info.id, container)
    return info


async def _post_start(s, container_id: str, container: ServerContainer) -> None:
    """DockerSpawner's ``post_start_cmd``: run in the started container as its user; its output is logged."""
    try:
        exec_id = await s.runtime.docker("exec_create", container_id, container.post_start_cmd, user=container.user)
        out = await s.runtime.docker("exec_start", exec_id)
        s.log.info("Berth: post_start_cmd in %s: %s", container.name, (out or b"").decode(errors="replace")[-400:])
    except BerthError as e:
        s.log.warning("Berth: post_start_cmd in %s failed: %s", container.name, e.log_message or e.message)


async def server_state(s, container: str) -> ContainerInfo | None:
    """The server container's state (``container``: its name or id), ``None`` when it is gone."""
    return await s.runtime.inspect(container) if s.runtime is not None else None


def _boot_cpu(s, container: ServerContainer) -> float:
    """The boot boost: none on a multi-node site (Swarm reserves a task's limits and would replace the task to
    lower them, restarting the server)."""
    return 0.0 if s._multi_node else container.boot_cpu


async def end_server_boost(s, alloc, container_id: str) -> None:
    """The server answers: its CPU quota drops from the boot boost to its allocation's (none given on Swarm)."""
    if not s._multi_node:
        await s.runtime.update_resources(container_id, alloc.resources)


async def server_alive(s, container_id: str | None) -> bool | str:
    """``True`` while the server's container runs, else why it stopped (exit code, OOM, its last log lines)."""
    info = await s.runtime.inspect(container_id) if container_id else None
    if info is None:
        return "the container is gone"
    if info.running:
        return True
    logs = await s.runtime.logs(info.id, tail=5)
    return f"exit code {info.exit_code}{' (out of memory)' if info.oom_killed else ''}: {logs.strip()[-400:]}"


async def release_server(
    s, alloc, container_id: str | None, reason: str, message: str, *, remove: bool, now: bool = True
) -> None:
    """Stop and remove the container (with a last usage sample), then release the allocation (if any)."""
    usage = None
    if container_id and s.runtime is not None:
        usage = await s.runtime.usage(container_id)
        await s.runtime.stop(container_id, timeout=0 if now else 5)
        if remove:  # else kept, stopped, until the server starts again (DockerSpawner's remove=False)
            await s.runtime.remove(container_id)
        if s.server_pool is not None:  # an adopted server: unmount the user's files handed over to it
            await s.server_pool.release(container_id)
    if alloc is not None:
        await s._db(
            s.ledger.release,
            alloc.id,
            reason,
            message=message[:500],
            cpu_seconds=usage.cpu_seconds if usage else None,
            mem_peak_bytes=usage.mem_peak_bytes if usage else None,
        )


async def stop_orphan_kernels(s, user: str, server: str | None = None) -> list[str]:
    """Stop the kernels of ``user``'s stopped hub server ``server`` ("" the default one) on this host.

    The server shuts its kernels down itself when it gets SIGTERM, through the Berth service; this
    catches what remains (a server killed at the timeout, a service that was down). A kernel belongs
    to the server that started it (``server_scope``); kernels recorded without a server are stopped
    only once the user has no server left. ``server=None``: every kernel, once no server is left.
    """
    if s.ledger is None:
        return []
    live = await s._db(s.ledger.live_allocations, owner=user)
    none_left = not any(a.kind == "server" for a in live)
    stopped = []
    for alloc in (a for a in live if a.kind == "kernel" and (s._multi_node or a.node == s.node_name)):
        if not (
            (server is not None and alloc.server is not None and alloc.server == server)
            or (none_left and (server is None or alloc.server is None))
        ):
            continue
        try:
            await s._finish(alloc, "server_stopped", stop=True, now=True)
            stopped.append(alloc.subject)
            s.log.info("Berth: stopped %s's kernel %s with the server", user, alloc.subject)
        except BerthError as e:
            s.log.warning("Berth: could not stop %s's kernel %s: %s", user, alloc.subject, e.message)
    return stopped


async def live_server_allocation(s, alloc_id: str):
    """The allocation ``alloc_id`` (from a spawner's saved state) if it is still live, else ``None``."""
    alloc = await s._db(s.ledger.get_allocation, alloc_id)
    return alloc if alloc is not None and alloc.live else None


__all__ = ["NOTICE_REASONS", "SERVER_KIND_LABEL", "ServerContainer"]

"""The facade's server methods: what the hub's spawner calls (the form, the queue and progress are the
spawner's; the rest is here). A mixin of :class:`~jupyter_berth.service.BerthService`, which it is
only part of: each method hands the service to :mod:`jupyter_berth.servers`.
"""

from __future__ import annotations

from . import servers
from .resources import Resources
from .runtime import site_scope
from .runtime.base import ContainerInfo
from .runtime.egress import ports_of


class ServerFacade:
    """Server lifecycle methods of the facade (needs the service's ``site_id`` and ``_user_network``)."""

    async def open_for_servers(self) -> None:
        """Open the ledger and this host's engine without starting (no reconcile, no sampling)."""
        await servers.open_for_servers(self)

    async def server_images(self, patterns: list[str]) -> list[tuple[str, str]]:
        """``(ref, display name)`` of the single-user server images matching ``patterns``."""
        return await servers.server_images(self, patterns)

    async def server_notice(self, user: str, subject: str) -> str | None:
        """Why the user's previous server ``subject`` went away, if abnormally in the last day."""
        return await servers.server_notice(self, user, subject)

    async def server_network(self, user: str, reach: list[str | None] = ()) -> str:
        """The user's network (shared with their kernels), made if missing; its name. ``reach``: the URLs
        (the hub's API, the Berth service) whose host ports the egress policy lets a server through to."""
        return await self._user_network(user, ports_of(*reach) if reach else None)

    def server_container_name(self, user: str, subject: str) -> str:
        """The name of ``user``'s server container ``subject`` on this site (site-scoped, at most 63 chars)."""
        return site_scope.container_name(self.site_id, "server", user, subject)

    async def reserve_server(self, user: str, groups=(), *, policy, subject: str, resources: Resources, image: str):
        """Check ``policy`` and reserve a server's allocation (this host, or the Swarm node admission picks); the allocation."""
        return await servers.reserve_server(
            self, user, groups, policy=policy, subject=subject, resources=resources, image=image
        )

    async def start_server(self, user: str, groups, alloc, container: servers.ServerContainer, network: str):
        """Run an admitted server's container and mark its allocation running; its ``ContainerInfo``."""
        return await servers.start_server(self, user, groups, alloc, container, network)

    async def end_server_boost(self, alloc, container_id: str) -> None:
        """Lower a booted server's CPU quota to its allocation."""
        await servers.end_server_boost(self, alloc, container_id)

    async def server_state(self, container: str) -> ContainerInfo | None:
        return await servers.server_state(self, container)

    async def server_alive(self, container_id: str | None) -> bool | str:
        """``True`` while the server's container runs, else why it stopped."""
        return await servers.server_alive(self, container_id)

    async def release_server(self, alloc, container_id, reason: str, message: str, *, remove: bool, now=True):
        """Stop and remove a server's container (last usage sample), then release its allocation once."""
        await servers.release_server(self, alloc, container_id, reason, message, remove=remove, now=now)

    async def live_server_allocation(self, alloc_id: str):
        """The allocation ``alloc_id`` if still live (a spawner's state after a hub restart), else ``None``."""
        return await servers.live_server_allocation(self, alloc_id)

    async def stop_orphan_kernels(self, user: str, server: str | None = None) -> list[str]:
        """Stop the kernels of ``user``'s stopped hub server ``server`` (on this host, or anywhere on Swarm); the kernel ids stopped."""
        return await servers.stop_orphan_kernels(self, user, server)


__all__ = ["ServerFacade"]

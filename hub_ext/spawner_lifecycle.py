"""How a Berth server ends: poll, stop, lifetime, release, and the state kept across hub restarts.

A mixin of :class:`~jupyter_berth.hub.spawner.BerthSpawner` (it uses ``core``, ``user``,
``object_id``/``object_name``, ``_allocation``, ``_policy``). Every way a server ends —
stopped by its user or an admin, culled by the idle culler, past its policy's
``max_lifetime``, crashed, out of memory, its container removed — goes through
:meth:`_release`, which takes a last usage sample, removes the container and releases the
allocation once, with a reason and a sentence the user reads on the next spawn form.
"""

from __future__ import annotations

import inspect
import math
from datetime import datetime, timezone


def duration(seconds: float) -> str:
    """``4 h``, ``1.5 h``, ``20 min``, ``45 s``."""
    if seconds >= 3600:
        return f"{seconds / 3600:.3g} h"
    if seconds >= 60:
        return f"{seconds / 60:.3g} min"
    return f"{seconds:.0f} s"


class ServerLifecycleMixin:
    """poll / stop / release for BerthSpawner (see the module doc)."""

    # ---- poll, stop, release -------------------------------------------------------------------
    async def _server_status(self):
        """DockerSpawner.poll's answer from Berth's view of the server (a container on one host, a one-replica
        service on Swarm, which DockerSpawner's own engine client cannot see): ``None`` while it runs, 0 when it
        is gone, else how it ended; and the server's state."""
        s = await self.core.open()
        info = await s.server_state(self.object_id or self.object_name)
        if info is None and self.object_id:
            info = await s.server_state(self.object_name)
        if info is None:
            self.log.warning("Berth: the server container %s is gone", self.object_name)
            self.object_id = ""
            return 0, None
        if info.running:
            return None, info
        ended = info.finished_at.isoformat() if info.finished_at else ""
        return f"ExitCode={info.exit_code}, Error='{'OOMKilled' if info.oom_killed else ''}', FinishedAt={ended}", info

    async def poll(self):
        await self._restore()
        status, info = await self._server_status()
        if status is not None:
            if self._allocation is not None:
                reason, message = (
                    ("oom", "it used more than its memory limit")
                    if info and info.oom_killed
                    else (
                        ("exited", f"its process exited ({status})") if info else ("lost", "its container disappeared")
                    )
                )
                await self._release(reason, f"your server stopped because {message}", remove=True)
            return status
        lifetime = getattr(getattr(self, "_policy", None), "max_lifetime", 0) or 0
        alloc = self._allocation
        if lifetime and not math.isinf(lifetime) and alloc is not None and alloc.created_at is not None:
            created = alloc.created_at if alloc.created_at.tzinfo else alloc.created_at.replace(tzinfo=timezone.utc)
            age = (datetime.now(timezone.utc) - created).total_seconds()
            if age > lifetime:
                self._stop_reason = (
                    "lifetime",
                    f"your server reached the maximum lifetime of your policy "
                    f"({duration(lifetime)}, max_lifetime set by "
                    f"{self._policy.sources.get('max_lifetime', 'policy')})",
                )
                await self.stop(now=True)
                return "stopped: reached its maximum lifetime"
        return None

    def _why_stopped(self) -> tuple[str, str]:
        if self._stop_reason:
            return self._stop_reason
        last = getattr(self.orm_spawner, "last_activity", None) if getattr(self, "orm_spawner", None) else None
        if self.server_idle_timeout > 0 and last is not None:
            last = last if last.tzinfo else last.replace(tzinfo=timezone.utc)
            idle = (datetime.now(timezone.utc) - last).total_seconds()
            if idle >= 0.9 * self.server_idle_timeout:
                return (
                    "culled",
                    f"your server was stopped after {duration(idle)} without activity (the hub's idle timeout)",
                )
        return "shutdown", "your server was stopped"

    async def stop(self, now=False):
        await self._restore()
        reason, message = self._why_stopped()
        await self._release(reason, message, remove=self.remove, now=now)
        await self._stop_orphan_kernels()
        self.object_id = ""
        self.clear_state()

    async def _stop_orphan_kernels(self) -> None:
        """Kernels outlive a stopped server only as orphans nobody can reach or cull: the service stops them."""
        await self.core.service.stop_orphan_kernels(self.user.name, self.name or "")

    async def _release(self, reason: str, message: str, *, remove: bool, now: bool = True) -> None:
        """Stop and remove the container (with a last usage sample), then release the allocation once."""
        alloc, self._allocation = self._allocation, None
        cid = self.object_id or (alloc.container_id if alloc is not None else None)
        await self.core.service.release_server(alloc, cid, reason, message, remove=remove, now=now)
        if alloc is not None:
            self.core.queue.wake()
        self._stop_reason = None

    async def run_post_stop_hook(self):
        if self._allocation is not None:  # stop() was skipped (the hub saw the container gone): release now
            await self._release("lost", "your server's container was gone", remove=True)
        await self._stop_orphan_kernels()  # also when stop() was skipped: this server's kernels end with it
        result = super().run_post_stop_hook()
        if inspect.isawaitable(result):
            await result

    # ---- state across hub restarts ---------------------------------------------------------------
    def get_state(self):
        state = super().get_state()
        if self._allocation is not None:
            state["berth_allocation"] = self._allocation.id
        return state

    def load_state(self, state):
        super().load_state(state)
        alloc_id = state.get("berth_allocation")
        if alloc_id and self._allocation is None:
            self._pending_allocation = alloc_id

    async def _restore(self) -> None:
        """After a hub restart: find the allocation named in the saved state."""
        alloc_id = self._pending_allocation
        if alloc_id:
            s = await self.core.open()
            self._pending_allocation = None
            alloc = await s.live_server_allocation(alloc_id)
            if alloc is not None:
                self._allocation = alloc
                self._policy = await s.policy_for(self.user.name, self.groups)

    def clear_state(self):
        super().clear_state()
        if self._allocation is None:
            self.berth_options = None
            self._ticket = None
            self._network = None
            self._phase = ""


__all__ = ["ServerLifecycleMixin", "duration"]

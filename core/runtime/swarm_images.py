"""Kernel images on a Docker Swarm: which node has which version, and getting them there.

Every node must hold the image version a kernel asks for. Berth distributes through the
site's registry (``c.SwarmRuntime.registry``): kernels run ``<registry>/<image>@<digest>``
so a node without it pulls exactly that version when the kernel starts;
:meth:`SwarmImagesMixin.distribute_image` pulls ahead on every ready node; :meth:`nodes`
reports per node the kernel images present (through each node's engine). Users keep
seeing the plain names (``berth/python:3.11``).

A mixin of :class:`~jupyter_berth.runtime.swarm.SwarmRuntime` (it uses the runtime's
manager engine, node engines and node list).
"""

from __future__ import annotations

import asyncio

import docker.errors

from ..errors import BerthError, EngineError
from .swarm_spec import registry_ref, user_facing_ref
from .swarm_topology import SwarmNode

#: Label of Berth kernel images (what the per-node report lists).
KERNEL_IMAGE_LABEL = "io.jupyter.berth.kind=kernel"


class SwarmImagesMixin:
    """Image reports and distribution for the Swarm runtime."""

    async def nodes(self, images: bool = True) -> list[SwarmNode]:
        """Every node with labels, state and (``images``) the kernel images present on it."""
        found = await self._refresh_nodes()
        if images:
            await asyncio.gather(*(self._node_images(n) for n in found))
        return found

    async def _node_images(self, node: SwarmNode) -> None:
        engine = self._engine(node.id)
        if engine is None:
            node.images_error = (
                ("node is " + node.state)
                if node.state != "ready"
                else (f"no engine address for {node.hostname} in c.SwarmRuntime.node_engines")
            )
            return
        try:
            found = await engine.list_images(label=KERNEL_IMAGE_LABEL)
        except BerthError as e:
            node.images_error = e.message
            return
        seen = {}
        for ref, attrs in found:
            seen.setdefault(
                user_facing_ref(ref, self.registry),
                {
                    "ref": user_facing_ref(ref, self.registry),
                    "id": attrs.get("Id"),
                    "digests": sorted(attrs.get("RepoDigests") or []),
                },
            )
        node.images = sorted(seen.values(), key=lambda i: i["ref"])

    async def distribute_image(self, image: str) -> dict[str, str]:
        """Make sure every ready node holds ``image``: pull it from the registry where missing.

        Returns ``{node name: "present" | "pulled" | why not}``. Swarm would pull on first
        use anyway; doing it ahead keeps a kernel's first start fast and shows what is where.
        """
        if not self.registry:
            raise EngineError(
                "distributing images needs a registry every node pulls from (c.SwarmRuntime.registry); "
                f"without one, load {image} on every node yourself (docker save | docker load)"
            )
        ref = registry_ref(image, self.registry)
        found = await self.nodes(images=True)

        async def one(node: SwarmNode) -> tuple[str, str]:
            if node.ledger_state == "down":
                return node.name, f"not pulled: node is {node.state}"
            if node.images is not None and any(i["ref"] == image for i in node.images):
                return node.name, "present"
            engine = self._engine(node.id)
            if engine is None:
                return node.name, f"not pulled: {node.images_error or 'engine not reachable'}"
            try:
                await engine.docker(_pull_sync, ref)
            except BerthError as e:
                return node.name, f"pull of {ref} failed: {e.message}"
            return node.name, "pulled"

        return dict(await asyncio.gather(*(one(n) for n in found)))

    async def _image_for_nodes(self, image: str) -> str:
        """``<registry>/<image>@<digest>`` (digest from the manager's copy or the registry), or ``image``."""
        ref = registry_ref(image, self.registry or None)
        if "@" in ref or not self.registry:
            return ref
        repo = ref.rsplit(":", 1)[0] if ":" in ref.rsplit("/", 1)[-1] else ref

        def digest(api):
            try:
                for d in api.inspect_image(ref).get("RepoDigests") or []:
                    if d.startswith(repo + "@"):
                        return d.split("@", 1)[1]
            except docker.errors.NotFound:
                pass
            try:
                return (api.inspect_distribution(ref).get("Descriptor") or {}).get("digest")
            except docker.errors.APIError as e:
                self.log.warning("Swarm: cannot resolve %s to a digest (%s); nodes pull the tag", ref, e)
                return None

        found = await self.docker(digest)
        return f"{ref}@{found}" if found else ref

    async def list_images(self, label: str | None = None) -> list[tuple[str, dict]]:
        """The manager's images, named as users name them (the berth registry's prefix removed)."""
        out, seen = [], set()
        for ref, attrs in await self._mgr.list_images(label=label):
            name = user_facing_ref(ref, self.registry)
            if name not in seen:
                seen.add(name)
                out.append((name, attrs))
        return out


def _pull_sync(api, ref: str) -> None:
    """``docker pull ref``, raising ``EngineError`` with the registry's complaint."""
    repo, tag = ref.rsplit(":", 1) if ":" in ref.rsplit("/", 1)[-1] and "@" not in ref else (ref, None)
    for event in api.pull(repo, tag=tag, stream=True, decode=True):
        if isinstance(event, dict) and event.get("error"):
            raise EngineError(f"pull of {ref} failed: {event['error']}")

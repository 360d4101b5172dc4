"""The image catalog: the service's image manager (offer, hide, default, alias, retire, GC).

:class:`ImageCatalog` is composed into :class:`~jupyter_berth.service.BerthService` as
``service.images`` (settings: ``c.ImageCatalog.*``); it is given the ledger and the runtime,
and follows the service's ``default_image`` and ``offered_images``. Users see the offered
images; admins (``admin_users``, ``admin_groups``) change what is offered. Every admin method
checks the caller first, so a refused request changes nothing.

The catalog is the engine's kernel images joined with the admin's decisions in the ledger
(:mod:`jupyter_berth.images.state`); :meth:`ImageCatalog.catalog_view` builds it. Pull, push
and build are its ``versions`` (:class:`~jupyter_berth.images.versions.ImageVersions`).
"""

from __future__ import annotations

import time
from typing import Any

from traitlets import Bool, Instance, List, Set, Unicode, directional_link

from ..area import AreaManager
from ..errors import ConflictError, EngineError, NotFoundError, PolicyError, RequestError
from ..runtime.labels import PREFIX
from . import build as image_build
from . import catalog
from . import engine_ops as image_ops
from . import state as catalog_state
from .catalog import CatalogView, ImageInfo
from .versions import ImageVersions

#: Engine calls that change no image.
_READ_ONLY = (image_ops.inspect, image_ops.containers_by_image, image_build.probe_versions)


class ImageCatalog(AreaManager):
    """The image catalog (``service.images``): what is offered, the default, aliases, retirement, GC."""

    default_image = Unicode(
        help="The image of kernels that name none: BerthService.default_image, kept in step both ways "
        "(the catalog sets it to the admin's choice)."
    )
    offered_images = List(Unicode(), help="Glob patterns of offered references: BerthService.offered_images.")
    environments = Instance(
        "jupyter_berth.environments.manager.EnvironmentManager",
        allow_none=True,
        help="What images with no Berth labels offer (the service's environments manager): "
        "inspected at offer, listed with the offered images.",
    )

    admin_users = Set(
        Unicode(),
        config=True,
        help="Users who may change the image catalog (offer, hide, retire, default, alias, pull, build, "
        "garbage-collect). Standalone, the server's own user is an admin only when listed here.",
    )
    admin_groups = Set(
        Unicode(), config=True, help="Groups whose members may change the image catalog (see admin_users)."
    )
    offer_new_images = Bool(
        True,
        config=True,
        help="Offer kernel images that appear on the engine with no admin decision yet (e.g. after "
        "`berth images bootstrap`). False: they stay hidden until `berth images offer REF`. "
        "Pulled and built versions are hidden until offered either way, unless asked otherwise.",
    )

    #: Seconds a listing of the engine's kernel images is reused; changes made through this service
    #: refresh it at once, changes made behind its back (``docker tag``) are seen this much later. While the
    #: service follows the engine's image events (engine_events.py), it is longer: an event drops the listing.
    engine_list_ttl = 1.0

    def __init__(self, **kw):
        super().__init__(**kw)
        self.versions = ImageVersions(parent=self, catalog=self, executor=self.executor)
        for name in ("ledger", "runtime"):
            directional_link((self, name), (self.versions, name))
        self._engine_images = None
        self._hub_image_admins: set[str] = set()
        self._synced_default_image: str | None = None  # the default_image the last catalog_view set
        self._configured_default_image = self.default_image
        self._aliases_gone: set[tuple[str, str]] = set()  # (alias, digest) that cannot be re-pinned: told once

    # ---- plumbing ------------------------------------------------------------------------
    async def engine_call(self, fn, *args, **kw):
        """Run ``fn(api, ...)`` (docker-py's low-level client) off the loop, through the runtime."""
        if not self.runtime.has_docker_api:
            raise EngineError(f"image operations need the Docker runtime; this service runs on {self.runtime.name}")
        try:
            return await self.runtime.docker(fn, *args, **kw)
        finally:
            if fn not in _READ_ONLY:
                self._engine_images = None  # the engine's images may have changed: list them again

    def forget_engine_images(self) -> None:
        """The engine's images changed (an image event): the next catalog lists them again."""
        self._engine_images = None

    async def _kernel_images(self) -> list[tuple[str, dict]]:
        """The engine's kernel images, listed at most every ``engine_list_ttl`` seconds (the admin's
        decisions are read from the ledger every time, so retiring takes effect at once)."""
        cached = self._engine_images
        now = time.monotonic()
        if cached is not None and now - cached[0] < self.engine_list_ttl:
            return cached[1]
        found = await self.runtime.list_images(label=f"{PREFIX}kind=kernel")
        self._engine_images = (now, found)
        return found

    def is_image_admin(self, user: str, groups=()) -> bool:
        return user in self.admin_users or bool(set(groups) & set(self.admin_groups)) or user in self._hub_image_admins

    def note_hub_admin(self, user: str, is_admin: bool) -> None:
        """A front end that knows who administers it (the hub's service, from the token) says so per request:
        while ``is_admin`` holds, ``user`` is an image admin too (``BerthHubService.hub_admins_are_image_admins``)."""
        (self._hub_image_admins.add if is_admin else self._hub_image_admins.discard)(user)

    def require_image_admin(self, user: str, groups, action: str) -> None:
        if not self.is_image_admin(user, groups):
            action = action if len(action) <= 120 else action[:117] + "..."
            raise PolicyError(
                f"{action} needs an image admin, and {user} is not one; ask an admin, who is listed in "
                "c.ImageCatalog.admin_users or admin_groups (on a hub, hub admins are image admins too)",
                limit="admin_users",
            )

    async def catalog_view(self) -> CatalogView:
        """The engine's kernel images joined with the admin's decisions; aliases that drifted are re-pinned."""
        if self._synced_default_image != self.default_image:
            self._configured_default_image = self.default_image  # from config, or set by hand since the last sync
        states, aliases = await self._db(catalog_state.load, self.ledger)
        found = await self._kernel_images()
        ids = {ref: attrs.get("Id") for ref, attrs in found}
        gone = self._aliases_gone
        drifted = [a for a in aliases.values() if ids.get(a.alias) != a.digest and (a.alias, a.digest) not in gone]
        repaired = False
        for alias in drifted:
            try:
                await self.engine_call(image_ops.tag, alias.digest, alias.alias)
                self.log.warning("Image alias %s was not on %s; re-pinned", alias.alias, alias.digest[:19])
                repaired = True
            except (NotFoundError, EngineError) as e:
                gone.add((alias.alias, alias.digest))
                self.log.warning(
                    "Image alias %s: its pinned image %s is gone (%s); pin it again with `berth images alias`",
                    alias.alias,
                    alias.digest[:19],
                    e.message,
                )
        if repaired:
            found = await self._kernel_images()
        found = await self.environments.with_foreign(found, [*states, *aliases])  # offered images with no Berth labels
        view = catalog.build_view(
            found,
            list(self.offered_images),
            states,
            aliases,
            offer_new=self.offer_new_images,
            configured_default=self._configured_default_image,
        )
        self.default_image = self._synced_default_image = view.default_ref or self._configured_default_image
        return view

    async def default_image_ref(self) -> str:
        """The image of kernels that name none: the admin's default, else ``default_image`` from config."""
        view = await self.catalog_view()
        return view.default_ref or self._configured_default_image

    async def _live_use(self) -> list[tuple[str, str | None]]:
        """(image reference, image digest) of every live allocation, over every node."""
        return [(a.image, a.image_digest) for a in await self._db(self.ledger.live_allocations)]

    @staticmethod
    def _users_of(entry: ImageInfo, live: list[tuple[str, str | None]]) -> int:
        """How many live allocations run ``entry``: by reference, or by digest under any name."""
        return sum(1 for ref, digest in live if ref == entry.ref or (digest and entry.has_digest(digest)))

    # ---- what users see ------------------------------------------------------------------
    async def image_catalog(self, user: str, groups=(), *, include_all: bool = False) -> list[dict]:
        """The offered images as JSON; ``include_all`` (admins only) adds hidden, retired and absent ones and use counts."""
        if include_all:
            self.require_image_admin(user, groups, "listing every image")
        view = await self.catalog_view()
        if not include_all:
            return [i.to_json() for i in view]
        live = await self._live_use()
        return [{**i.to_json(), "kernels": self._users_of(i, live)} for i in view.entries.values()]

    async def resolve_environment(self, image: str, digest: str | None = None) -> dict:
        """What a notebook's stored environment ``{image, digest}`` gets here (see :func:`catalog.resolve_environment`)."""
        return catalog.resolve_environment(await self.catalog_view(), image, digest)

    # ---- admin: decisions ----------------------------------------------------------------
    async def _known(self, view: CatalogView, ref: str, field_name: str = "image") -> ImageInfo:
        catalog.validate_ref(ref, field_name, tag_required=True)
        entry = view.get(ref)
        if entry is None:
            if not catalog.matches(ref, self.offered_images):
                raise RequestError(
                    field_name,
                    f"{ref} does not match the offered_images patterns "
                    f"({', '.join(self.offered_images)}); add a pattern to c.BerthService.offered_images",
                )
            raise NotFoundError(
                f"no kernel image {ref} on this host (kernel images carry the label {PREFIX}kind=kernel); "
                "see `berth images list`"
            )
        return entry

    async def offer_image(self, user: str, groups, ref: str) -> dict:
        """Offer ``ref`` to users (also brings a hidden or retired version back).

        An image Berth did not build (no ``io.jupyter.berth.kind=kernel`` label) is inspected first: it
        must hold a Jupyter kernel that starts as uid 1000, else it is refused with the reason and nothing
        is recorded (see :mod:`jupyter_berth.environments`)."""
        self.require_image_admin(user, groups, f"offering {ref}")
        view = await self.catalog_view()
        entry = view.get(ref)
        if (entry is None or not entry.present) and catalog.matches(ref, self.offered_images):
            catalog.validate_ref(ref, "image", tag_required=True)
            try:
                digest = (await self.environments.discover(ref)).image_id
            except NotFoundError:
                if entry is not None:  # the catalog knew it: say so
                    raise NotFoundError(f"{ref} is no longer on this host; pull or build it again first") from None
                raise
        else:
            entry = await self._known(view, ref)
            if not entry.present:
                raise NotFoundError(f"{ref} is no longer on this host; pull or build it again first")
            digest = entry.id
        await self._db(catalog_state.set_state, self.ledger, ref, "offered", by=user, digest=digest, action="offer")
        return (await self.catalog_view()).entries[ref].to_json()

    def _not_default(self, view: CatalogView, ref: str, action: str) -> None:
        if view.default_ref == ref:
            others = [i.ref for i in view if i.ref != ref]
            hint = f"`berth images default {others[0]}`" if others else "offering another version first"
            raise ConflictError(f"{ref} is the default image; make another one the default before {action} it ({hint})")

    async def hide_image(self, user: str, groups, ref: str) -> dict:
        """Stop listing ``ref`` and starting new kernels on it (reversible with offer). Running kernels keep going."""
        self.require_image_admin(user, groups, f"hiding {ref}")
        view = await self.catalog_view()
        entry = await self._known(view, ref)
        self._not_default(view, ref, "hiding")
        await self._db(
            catalog_state.set_state, self.ledger, ref, "hidden", by=user, digest=entry.id or None, action="hide"
        )
        return (await self.catalog_view()).entries[ref].to_json()

    async def retire_image(
        self, user: str, groups, ref: str, *, replacement: str | None = None, note: str | None = None
    ) -> dict:
        """No new kernels on ``ref``; running ones keep going; notebooks asking for it get ``replacement``
        (or the nearest offered version)."""
        self.require_image_admin(user, groups, f"retiring {ref}")
        view = await self.catalog_view()
        entry = await self._known(view, ref)
        self._not_default(view, ref, "retiring")
        if replacement is not None:
            catalog.validate_ref(replacement, "replacement", tag_required=True)
            if replacement == ref:
                raise RequestError("replacement", f"{ref} cannot replace itself; name another offered version")
            catalog.find(view, replacement)  # offered, or 404 naming the offered ones
        if note is not None and (not isinstance(note, str) or len(note) > 1000):
            raise RequestError("note", "expected a short text (at most 1000 characters)")
        await self._db(
            catalog_state.set_state,
            self.ledger,
            ref,
            "retired",
            by=user,
            digest=entry.id or entry.digest,
            replacement=replacement,
            note=note,
            action="retire",
        )
        return (await self.catalog_view()).entries[ref].to_json()

    async def set_default_image(self, user: str, groups, ref: str) -> dict:
        """Make the offered ``ref`` the image of kernels that name none."""
        self.require_image_admin(user, groups, f"making {ref} the default")
        view = await self.catalog_view()
        catalog.validate_ref(ref, tag_required=True)
        entry = catalog.find(view, ref)  # must be offered
        await self._db(catalog_state.set_default, self.ledger, ref, by=user, digest=entry.id)
        return (await self.catalog_view()).entries[ref].to_json()

    async def alias_image(self, user: str, groups, alias: str, target: str) -> dict:
        """Pin ``alias`` (``berth/python:latest``) to exactly one image: ``target`` is an offered
        reference (pinned to the image it holds now) or a digest."""
        self.require_image_admin(user, groups, f"pinning {alias}")
        catalog.validate_ref(alias, "alias", tag_required=True)
        if not catalog.matches(alias, self.offered_images):
            raise RequestError(
                "alias", f"{alias} does not match the offered_images patterns ({', '.join(self.offered_images)})"
            )
        view = await self.catalog_view()
        current = view.get(alias)
        if current is not None and current.alias_of is None and current.present:
            raise ConflictError(f"{alias} is an image version, not an alias; pick another alias name")
        if not isinstance(target, str):
            raise RequestError("target", "expected an offered image reference or a digest")
        if target.startswith("sha256:") or "@" in target:
            catalog.validate_digest(target, "target")
        else:
            catalog.validate_ref(target, "target", tag_required=True)
            catalog.find(view, target)  # an alias of something not offered would offer it by the back door
        attrs = await self.engine_call(image_ops.inspect, target)
        if attrs is None:
            raise NotFoundError(f"no image {target} on this host")
        labels = (attrs.get("Config") or {}).get("Labels") or {}
        if labels.get(f"{PREFIX}kind") != "kernel":
            raise RequestError("target", f"{target} is not a kernel image (no {PREFIX}kind=kernel label)")
        image_id = attrs["Id"]
        await self.engine_call(image_ops.tag, image_id, alias)
        await self._db(
            catalog_state.set_alias,
            self.ledger,
            alias,
            image_id,
            target=target if ":" in target and "@" not in target and not target.startswith("sha256:") else None,
            by=user,
        )
        return (await self.catalog_view()).entries[alias].to_json()

    async def unalias_image(self, user: str, groups, alias: str) -> dict:
        """Forget a pinned alias and remove its tag (kernels running on it keep going)."""
        self.require_image_admin(user, groups, f"removing the alias {alias}")
        catalog.validate_ref(alias, "alias", tag_required=True)
        view = await self.catalog_view()
        entry = view.get(alias)
        if entry is None or entry.alias_of is None:
            raise NotFoundError(f"{alias} is not an alias")
        self._not_default(view, alias, "removing")
        if entry.present:
            await self.engine_call(image_ops.remove, alias)
        await self._db(catalog_state.delete_alias, self.ledger, alias, by=user)
        return {"alias": alias, "removed": True}

    async def image_events(self, user: str, groups, ref: str | None = None, limit: int = 100) -> list[dict]:
        self.require_image_admin(user, groups, "reading the catalog's history")
        if ref is not None:
            catalog.validate_ref(ref)
        return [e.to_json() for e in await self._db(catalog_state.events, self.ledger, ref, limit)]

    # ---- admin: garbage collection ---------------------------------------------------------
    async def gc_images(self, user: str, groups, *, dry_run: bool = False, include_hidden: bool = False) -> list[dict]:
        """Remove retired (and, with ``include_hidden``, hidden) versions from the engine, except those a live
        allocation or any container uses. The catalog keeps their decision, so notebooks still learn they
        are retired. Returns one line per candidate: removed, untagged (other tags keep the image), kept, or
        would-remove (``dry_run``)."""
        self.require_image_admin(user, groups, "removing unused images")
        view = await self.catalog_view()
        states = ("retired", "hidden") if include_hidden else ("retired",)
        candidates = [
            e
            for e in view.entries.values()
            if e.present and e.state in states and e.ref != view.default_ref and not e.alias_of
        ]  # aliases: unalias
        live = await self._live_use()
        containers = await self.engine_call(image_ops.containers_by_image)
        out: list[dict[str, Any]] = []
        for e in candidates:
            line: dict[str, Any] = {"ref": e.ref, "state": e.state, "id": e.id, "size": e.size}
            users = self._users_of(e, live)
            if users:
                out.append({**line, "action": "kept", "reason": f"{users} running kernel(s) use it"})
                continue
            if containers.get(e.id):
                names = ", ".join(containers[e.id][:3])
                out.append({**line, "action": "kept", "reason": f"containers use it: {names}"})
                continue
            if dry_run:
                out.append({**line, "action": "would-remove", "reason": f"{e.state} and unused"})
                continue
            try:
                answer = await self.engine_call(image_ops.remove, e.ref)
                if (
                    e.source
                    and e.source != e.ref
                    and (await self.engine_call(image_ops.inspect, e.source) or {}).get("Id") == e.id
                ):
                    answer += await self.engine_call(image_ops.remove, e.source)
            except ConflictError as err:
                out.append({**line, "action": "kept", "reason": err.message})
                continue
            deleted = any("Deleted" in a for a in answer)
            out.append(
                {
                    **line,
                    "action": "removed" if deleted else "untagged",
                    "reason": f"{e.state} and unused" + ("" if deleted else "; other tags keep the image"),
                }
            )
            await self._db(catalog_state.record_event, self.ledger, "remove", e.ref, by=user, id=e.id, deleted=deleted)
        return out

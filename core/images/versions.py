"""New image versions: pull from a registry, push to one, build on an offered base.

:class:`ImageVersions` is composed into the image catalog as ``service.images.versions``
(settings: ``c.ImageVersions.*``); it is given the catalog it adds versions to (which
checks admins, lists what is offered and runs engine calls). Each operation is checked
first (admin, names, patterns, conflicts: fast, nothing changed), then run
(slow: the engine works, ``progress`` gets its lines). A pulled or built version
is hidden until an admin offers it, unless ``offer=True``.

``start_image_operation`` runs the slow part in the background and returns an
:class:`~jupyter_berth.images.operations.Operation` to poll (the REST API).
"""

from __future__ import annotations

import io
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from traitlets import Bool, Instance, List, Unicode

from ..area import AreaManager
from ..errors import ConflictError, EngineError, PolicyError, RequestError
from ..imagebuild.bootstrap import DEFAULT_EXTRA_CA_DIR
from ..runtime.labels import PREFIX
from . import build as image_build
from . import catalog
from . import engine_ops as image_ops
from . import state as catalog_state
from .catalog import Ref
from .operations import Operation, Operations

Progress = Callable[[str], None]


def _quiet(_line: str) -> None:
    pass


@dataclass
class _Checked:
    """A checked pull or build: what to run once the slow part starts."""

    kind: str
    ref: str
    run: Callable[[Progress], Awaitable[dict]]


def _label_image(api, image_id: str, tag: str, labels: dict[str, str]) -> str:
    """Add labels to an image (a one-line build FROM it) and tag the result; returns the new id."""
    image_id_out = None
    dockerfile = f"FROM {image_id}\n{image_build.label_line(labels)}"
    for chunk in api.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, pull=False, rm=True, decode=True):
        if "error" in chunk:
            raise EngineError(f"could not label {tag}: {chunk['error'].strip()}")
        if "aux" in chunk and "ID" in (chunk["aux"] or {}):
            image_id_out = chunk["aux"]["ID"]
    return image_id_out or image_id


class ImageVersions(AreaManager):
    """New image versions (``service.images.versions``): pull, push and build (see module doc)."""

    catalog = Instance(
        "jupyter_berth.images.manager.ImageCatalog", help="The catalog the new versions join (it checks admins)."
    )

    build_extra_ca_dir = Unicode(
        DEFAULT_EXTRA_CA_DIR,
        config=True,
        help="Folder of PEM *.crt CA certificates the builds of `berth images build` trust (a proxy's or a "
        "company's), so that pip reaches the index; for the build only, not copied into the image. Empty for none.",
    )
    build_network = Bool(
        True,
        config=True,
        help="Build new image versions on the host network (pip reaches the package index as the host "
        "does). False: builds get no network at all (Dockerfile steps that need none).",
    )

    pull_registries = List(
        Unicode(),
        config=True,
        help="Registries image versions may be pulled from, as host[:port] (127.0.0.1:5000, "
        "registry.example.org; Docker Hub is docker.io). Empty: any registry.",
    )

    def __init__(self, **kw):
        super().__init__(**kw)
        #: The pulls and builds started in the background (:meth:`start_image_operation`).
        self.operations = Operations()

    async def _local_target(self, ref: str, field_name: str, *, replace: bool = False) -> str | None:
        """Check a new version's name; returns the image id it holds now (None: free)."""
        catalog.validate_ref(ref, field_name, tag_required=True)
        if not catalog.matches(ref, self.catalog.offered_images):
            raise RequestError(
                field_name,
                f"{ref} does not match the offered_images patterns ({', '.join(self.catalog.offered_images)}), "
                "so it could never be offered; pick a name such as berth/python:3.11-extra",
            )
        entry = (await self.catalog.catalog_view()).get(ref)
        if entry is not None and entry.state == "retired":
            raise ConflictError(
                f"{ref} is retired and its name is not reused (notebooks that ran it are told it is retired); "
                "pick a new tag"
            )
        if entry is not None and entry.alias_of is not None:
            raise ConflictError(f"{ref} is an alias; pick another name for a new version")
        attrs = await self.catalog.engine_call(image_ops.inspect, ref)
        if attrs is not None and not replace:
            raise ConflictError(
                f"{ref} already exists ({attrs['Id'][:19]}); versions are not overwritten: pick a new tag, "
                "or ask to replace it"
            )
        return attrs["Id"] if attrs else None

    async def _record_new_version(
        self, ref: str, image_id: str, *, by: str, offer: bool, action: str, **detail
    ) -> dict:
        view = await self.catalog.catalog_view()
        entry = view.get(ref)
        state = "offered" if offer else (entry.state if entry is not None and entry.updated_by else "hidden")
        await self._db(
            catalog_state.set_state, self.ledger, ref, state, by=by, digest=image_id, action=action, **detail
        )
        return (await self.catalog.catalog_view()).entries[ref].to_json()

    # ---- pull and push ---------------------------------------------------------------------
    async def _check_pull(self, user: str, groups, source: str, tag: str | None, offer: bool) -> _Checked:
        self.catalog.require_image_admin(user, groups, f"pulling {source}")
        src: Ref = catalog.parse_ref(source, "source")
        registry = src.domain or "docker.io"
        if self.pull_registries and registry not in self.pull_registries:
            raise PolicyError(
                f"pulling from {registry} is not allowed on this host; allowed registries: "
                f"{', '.join(self.pull_registries)} (c.ImageVersions.pull_registries)",
                limit="pull_registries",
            )
        local = tag or src.local
        previous = await self._local_target(local, "tag", replace=True)

        async def run(progress: Progress) -> dict:
            started = time.monotonic()
            had = await self.catalog.engine_call(image_ops.inspect, str(src))
            attrs = await self.catalog.engine_call(image_ops.pull, src, progress)
            labels = (attrs.get("Config") or {}).get("Labels") or {}
            if labels.get(f"{PREFIX}kind") != "kernel":
                if had is None:  # leave nothing behind that nobody asked for
                    await self.catalog.engine_call(image_ops.remove, str(src))
                raise RequestError(
                    "source",
                    f"{source} is not a Berth kernel image (no {PREFIX}kind=kernel label); "
                    "build kernel images FROM an offered Berth image",
                )
            if previous and previous != attrs["Id"]:
                raise ConflictError(
                    f"{local} already names another image ({previous[:19]}); pull it under another "
                    "tag, or remove the old one first"
                )
            await self.catalog.engine_call(image_ops.tag, attrs["Id"], local)
            progress(f"tagged {local}")
            out = await self._record_new_version(
                local, attrs["Id"], by=user, offer=offer, action="pull", source=str(src)
            )
            return {**out, "seconds": round(time.monotonic() - started, 2)}

        return _Checked("pull", local, run)

    async def pull_image(
        self,
        user: str,
        groups,
        source: str,
        *,
        tag: str | None = None,
        offer: bool = False,
        progress: Progress = _quiet,
    ) -> dict:
        """Pull ``source`` (``registry/name:tag``) and keep it as ``tag`` (default: the name without the registry)."""
        checked = await self._check_pull(user, groups, source, tag, offer)
        return await checked.run(progress)

    async def push_image(self, user: str, groups, ref: str, to: str, *, progress: Progress = _quiet) -> dict:
        """Push the catalog's ``ref`` to the registry reference ``to`` (``127.0.0.1:5000/berth/python:3.11``)."""
        self.catalog.require_image_admin(user, groups, f"pushing {ref}")
        catalog.validate_ref(ref, "image", tag_required=True)
        dest = catalog.parse_ref(to, "to")
        if dest.domain is None or dest.digest is not None:
            raise RequestError(
                "to", f"{to!r} names no registry; expected REGISTRY/NAME:TAG such as 127.0.0.1:5000/{ref}"
            )
        entry = (await self.catalog.catalog_view()).get(ref)
        if entry is None or not entry.present:
            raise RequestError("image", f"{ref} is not a kernel image on this host; see `berth images list`")
        await self.catalog.engine_call(image_ops.tag, entry.id, to)
        digest = await self.catalog.engine_call(image_ops.push, to, progress)
        await self._db(catalog_state.record_event, self.ledger, "push", ref, by=user, to=to, digest=digest)
        return {"image": ref, "to": to, "digest": digest, "id": entry.id}

    # ---- build -------------------------------------------------------------------------------
    async def _check_build(
        self,
        user: str,
        groups,
        *,
        base: str,
        tag: str,
        dockerfile: str | None = None,
        requirements: str | None = None,
        environment: str | None = None,
        display_name: str | None = None,
        offer: bool = False,
        replace: bool = False,
    ) -> _Checked:
        self.catalog.require_image_admin(user, groups, f"building {tag}")
        catalog.validate_ref(base, "base", tag_required=True)
        base_info = catalog.find(await self.catalog.catalog_view(), base)  # offered (a retired base names the nearest)
        await self._local_target(tag, "tag", replace=replace)
        if display_name is not None and (
            not isinstance(display_name, str)
            or not display_name.strip()
            or len(display_name) > 100
            or not display_name.isprintable()
        ):
            raise RequestError("display_name", "expected a short printable name (at most 100 characters)")
        plan = image_build.plan_build(
            base_ref=base_info.ref,
            base_id=base_info.id,
            base_python=base_info.labels.get("python_version"),
            dockerfile=dockerfile,
            requirements=requirements,
            environment=environment,
        )
        version = catalog.parse_ref(tag).tag
        labels = {
            f"{PREFIX}version": version,
            f"{PREFIX}display_name": display_name or f"{base_info.display_name} ({version})",
            f"{PREFIX}base": base_info.ref,
            f"{PREFIX}base_digest": base_info.id,
            f"{PREFIX}build_source": plan.source,
            f"{PREFIX}built_by": user,
            f"{PREFIX}recipe_hash": plan.digest(base_info.id),
        }

        async def run(progress: Progress) -> dict:
            started = time.monotonic()
            progress(f"building {tag} on {base_info.ref} ({base_info.id[:19]}) from {plan.source}, no registry")
            for note in plan.notes:
                progress(f"note: {note}")
            image_id = await self.catalog.engine_call(
                image_build.run_build,
                plan,
                tag=tag,
                labels=labels,
                progress=progress,
                network=self.build_network,
                extra_ca_dir=self.build_extra_ca_dir or None,
            )
            if plan.dists:
                versions = await self.catalog.engine_call(image_build.probe_versions, image_id, plan.dists)
                frameworks = image_build.frameworks_label(base_info.labels.get("frameworks", ""), versions)
                image_id = await self.catalog.engine_call(
                    _label_image, image_id, tag, {**labels, f"{PREFIX}frameworks": frameworks}
                )
                progress(f"frameworks: {frameworks}")
            progress(f"built {tag} ({image_id[:19]}) in {time.monotonic() - started:.1f} s")
            out = await self._record_new_version(
                tag, image_id, by=user, offer=offer, action="build", note=f"built on {base_info.ref} from {plan.source}"
            )
            return {**out, "seconds": round(time.monotonic() - started, 2)}

        return _Checked("build", tag, run)

    async def build_image(
        self,
        user: str,
        groups,
        *,
        base: str,
        tag: str,
        dockerfile: str | None = None,
        requirements: str | None = None,
        environment: str | None = None,
        display_name: str | None = None,
        offer: bool = False,
        replace: bool = False,
        progress: Progress = _quiet,
    ) -> dict:
        """Build ``tag`` on the offered ``base`` from a Dockerfile, requirements or environment file (one of them)."""
        checked = await self._check_build(
            user,
            groups,
            base=base,
            tag=tag,
            dockerfile=dockerfile,
            requirements=requirements,
            environment=environment,
            display_name=display_name,
            offer=offer,
            replace=replace,
        )
        return await checked.run(progress)

    # ---- background operations ------------------------------------------------------------------
    async def start_image_operation(self, user: str, groups, kind: str, params: dict[str, Any]) -> Operation:
        """Check a ``pull`` or ``build`` now (errors are raised here), run it in the background."""
        if kind == "pull":
            checked = await self._check_pull(
                user, groups, params["source"], params.get("tag"), params.get("offer", False)
            )
        elif kind == "build":
            checked = await self._check_build(user, groups, **params)
        else:
            raise RequestError("kind", f"{kind!r} is not an image operation; expected pull or build")
        return self.operations.start(checked.kind, checked.ref, user, checked.run)

    def image_operation(self, user: str, groups, op_id: str) -> Operation:
        self.catalog.require_image_admin(user, groups, "reading an image operation")
        return self.operations.get(op_id)

    def image_operations(self, user: str, groups) -> list[Operation]:
        self.catalog.require_image_admin(user, groups, "listing image operations")
        return self.operations.list()

"""``berth images offer|hide|default|alias|unalias|retire|pull|push|build|gc|check|history``: the catalog, for admins.

Each subcommand opens the ledger and the engine the Berth service uses (same
config files, ``jupyter_berth_config.py`` in the Jupyter config path, ``$BERTH_CONFIG`` or
``--config``, see :mod:`jupyter_berth.cli.command`; ``--db-url``, ``--data-dir``) and calls the service's
image methods as the local operator: whoever can run this with access to the
engine is the host's admin, so the current user is added to ``admin_users``.
Running servers see the change at once (kernel starts read the catalog); their
kernelspecs follow at the next sync (server start, or any call of the images API).
"""

from __future__ import annotations

import asyncio
import getpass
import json
import os

from traitlets import Bool, Unicode

from .._version import __version__
from ..environments.model import kernels_from_labels
from ..errors import RequestError
from ..runtime.docker import DockerRuntime
from ..service import BerthService
from .command import BerthCommand


def _print(line: str) -> None:
    print(line, flush=True)


def _summary(entry: dict) -> str:
    flags = [entry.get("state", "?")]
    if entry.get("default"):
        flags.append("default")
    if entry.get("alias_of"):
        flags.append(f"alias of {entry['alias_of']}")
    if entry.get("replacement"):
        flags.append(f"replaced by {entry['replacement']}")
    digest = (entry.get("id") or entry.get("digest") or "")[:19]
    lines = [f"{entry['ref']}: {', '.join(flags)} ({digest})"]
    for k in kernels_from_labels(entry.get("labels") or {}):  # what was found inside an inspected image
        frameworks = ", ".join(f"{n} {v}" for n, v in sorted((k.get("frameworks") or {}).items()))
        lines.append(
            f"  kernel {k['name']}: {k.get('language', '?')} {k.get('language_version', '')}".rstrip()
            + (f" ({frameworks})" if frameworks else "")
        )
    return "\n".join(lines)


class CatalogCommand(BerthCommand):
    """Shared plumbing: a service on the configured ledger and engine, the operator as admin."""

    version = __version__
    classes = [BerthService]
    aliases = {"db-url": "BerthService.db_url", "data-dir": "BerthService.data_dir"}
    flags: dict = {}
    #: positional arguments: names shown in the usage line
    arguments: tuple[str, ...] = ()

    def args(self, minimum: int | None = None) -> list[str]:
        need = len(self.arguments) if minimum is None else minimum
        if not (need <= len(self.extra_args) <= len(self.arguments)):
            raise RequestError("arguments", f"usage: {self.name} {' '.join(self.arguments)}")
        return list(self.extra_args)

    def run(self, work):
        """Run ``work(service, user)`` on a service that has the ledger and engine but runs nothing."""
        user = os.environ.get("BERTH_USER") or getpass.getuser()

        async def go():
            service = BerthService(parent=self, runtime=DockerRuntime())
            service.images.admin_users = set(service.images.admin_users) | {user}
            await service.open()
            try:
                return await work(service, user)
            finally:
                await service.close()

        return asyncio.run(go())


class OfferApp(CatalogCommand):
    name = "berth images offer"
    description = "Offer an image version to users (also brings back a hidden or retired one)."
    arguments = ("REF",)

    def start(self):
        (ref,) = self.args()
        print(_summary(self.run(lambda s, u: s.images.offer_image(u, (), ref))))


class HideApp(CatalogCommand):
    name = "berth images hide"
    description = (
        "Stop listing an image version and starting kernels on it (reversible with offer); running kernels keep going."
    )
    arguments = ("REF",)

    def start(self):
        (ref,) = self.args()
        print(_summary(self.run(lambda s, u: s.images.hide_image(u, (), ref))))


class DefaultApp(CatalogCommand):
    name = "berth images default"
    description = "Make an offered image version the default (kernels that name no image get it)."
    arguments = ("REF",)

    def start(self):
        (ref,) = self.args()
        print(_summary(self.run(lambda s, u: s.images.set_default_image(u, (), ref))))


class AliasApp(CatalogCommand):
    name = "berth images alias"
    description = (
        "Pin an alias (berth/python:latest) to exactly one image: an offered reference's current image, or a digest."
    )
    arguments = ("ALIAS", "TARGET")
    examples = (
        "berth images alias berth/python:latest berth/python:3.11\nberth images alias berth/python:stable sha256:0c22…"
    )

    def start(self):
        alias, target = self.args()
        print(_summary(self.run(lambda s, u: s.images.alias_image(u, (), alias, target))))


class UnaliasApp(CatalogCommand):
    name = "berth images unalias"
    description = "Forget a pinned alias and remove its tag (kernels running on it keep going)."
    arguments = ("ALIAS",)

    def start(self):
        (alias,) = self.args()
        self.run(lambda s, u: s.images.unalias_image(u, (), alias))
        print(f"{alias}: alias removed")


class RetireApp(CatalogCommand):
    name = "berth images retire"
    description = (
        "Retire an image version: no new kernels (running ones keep going); notebooks that ask for it "
        "are told so and offered the replacement or the nearest offered version."
    )
    arguments = ("REF",)
    replacement = Unicode(
        None, allow_none=True, config=True, help="The offered version to use instead (default: the nearest)."
    )
    note = Unicode(None, allow_none=True, config=True, help="Why it was retired (shown to admins).")
    aliases = {**CatalogCommand.aliases, "replacement": "RetireApp.replacement", "note": "RetireApp.note"}

    def start(self):
        (ref,) = self.args()
        print(
            _summary(
                self.run(lambda s, u: s.images.retire_image(u, (), ref, replacement=self.replacement, note=self.note))
            )
        )


class PullApp(CatalogCommand):
    name = "berth images pull"
    description = (
        "Pull a kernel image version from a registry and keep it under its name without the registry "
        "(or --tag); it stays hidden until offered (or --offer)."
    )
    arguments = ("SOURCE",)
    examples = "berth images pull 127.0.0.1:5000/berth/python:3.11-extra --offer"
    tag = Unicode(None, allow_none=True, config=True, help="Local name (default: SOURCE without the registry).")
    offer = Bool(False, config=True, help="Offer it at once.")
    aliases = {**CatalogCommand.aliases, "tag": "PullApp.tag"}
    flags = {"offer": ({"PullApp": {"offer": True}}, "Offer the pulled version at once.")}

    def start(self):
        (source,) = self.args()
        out = self.run(
            lambda s, u: s.images.versions.pull_image(u, (), source, tag=self.tag, offer=self.offer, progress=_print)
        )
        print(f"{_summary(out)} in {out['seconds']} s")


class PushApp(CatalogCommand):
    name = "berth images push"
    description = "Push an image version to a registry (e.g. to seed an air-gapped site's registry)."
    arguments = ("REF", "TO")
    examples = "berth images push berth/python:3.11 127.0.0.1:5000/berth/python:3.11"

    def start(self):
        ref, to = self.args()
        out = self.run(lambda s, u: s.images.versions.push_image(u, (), ref, to, progress=_print))
        print(f"{ref} → {out['to']} ({out['digest']})")


class BuildApp(CatalogCommand):
    name = "berth images build"
    description = (
        "Build a new image version on an offered base from a Dockerfile, a requirements.txt or an "
        "environment.yml, with `docker build` and no registry; hidden until offered (or --offer)."
    )
    examples = (
        "berth images build --base=berth/python:3.11 --tag=berth/python:3.11-sci --requirements=requirements.txt\n"
        "berth images build --base=berth/python:3.11 --tag=berth/python:3.11-extra --dockerfile=Dockerfile --offer"
    )
    base = Unicode("", config=True, help="The offered image to build on.")
    tag = Unicode("", config=True, help="The new version's name:tag.")
    dockerfile = Unicode("", config=True, help="Path of a Dockerfile (steps on the base; FROM may be left out).")
    requirements = Unicode("", config=True, help="Path of a pip requirements.txt.")
    environment = Unicode("", config=True, help="Path of a conda-style environment.yml (installed with pip).")
    display_name = Unicode(
        None, allow_none=True, config=True, help="Name users see (default: the base's with the tag)."
    )
    offer = Bool(False, config=True, help="Offer it at once.")
    replace = Bool(
        False, config=True, help="Replace an existing image of that name (versions are otherwise never overwritten)."
    )
    aliases = {
        **CatalogCommand.aliases,
        **{
            k: f"BuildApp.{k.replace('-', '_')}"
            for k in ("base", "tag", "dockerfile", "requirements", "environment", "display-name")
        },
    }
    flags = {
        "offer": ({"BuildApp": {"offer": True}}, "Offer the new version at once."),
        "replace": ({"BuildApp": {"replace": True}}, "Replace an existing image of that name."),
    }

    def start(self):
        sources = {}
        for key in ("dockerfile", "requirements", "environment"):
            path = getattr(self, key)
            if path:
                try:
                    with open(path) as f:
                        sources[key] = f.read()
                except OSError as e:
                    raise RequestError(key, f"cannot read {path}: {e.strerror}") from None
        out = self.run(
            lambda s, u: s.images.versions.build_image(
                u,
                (),
                base=self.base,
                tag=self.tag,
                display_name=self.display_name,
                offer=self.offer,
                replace=self.replace,
                progress=_print,
                **sources,
            )
        )
        print(f"{_summary(out)} in {out['seconds']} s")


class GcApp(CatalogCommand):
    name = "berth images gc"
    description = (
        "Remove retired (and with --include-hidden, hidden) versions no running kernel and no container "
        "uses. The catalog remembers them, so notebooks still learn they are retired."
    )
    dry_run = Bool(False, config=True, help="Only say what would be removed.")
    include_hidden = Bool(False, config=True, help="Also remove hidden versions.")
    flags = {
        "dry-run": ({"GcApp": {"dry_run": True}}, "Only say what would be removed."),
        "include-hidden": ({"GcApp": {"include_hidden": True}}, "Also remove hidden versions."),
    }

    def start(self):
        self.args(0)
        lines = self.run(
            lambda s, u: s.images.gc_images(u, (), dry_run=self.dry_run, include_hidden=self.include_hidden)
        )
        for line in lines:
            print(f"{line['action']:>12}  {line['ref']}  ({line['size'] / 2**20:.0f} MiB): {line['reason']}")
        if not lines:
            print("nothing to remove: no retired version is on this host")


class CheckApp(CatalogCommand):
    name = "berth images check"
    description = "Say what a notebook's environment (image and digest in its metadata) gets on this host."
    arguments = ("IMAGE", "DIGEST")

    def start(self):
        args = self.args(1)
        out = self.run(lambda s, u: s.images.resolve_environment(args[0], args[1] if len(args) > 1 else None))
        print(json.dumps(out, indent=2))


class HistoryApp(CatalogCommand):
    name = "berth images history"
    description = "Who changed what in the image catalog, newest first."
    arguments = ("REF",)

    def start(self):
        args = self.args(0)
        for e in self.run(lambda s, u: s.images.image_events(u, (), args[0] if args else None)):
            detail = ", ".join(f"{k}={v}" for k, v in e["detail"].items())
            print(f"{e['at'][:19]}  {e['by'] or '?':<12} {e['action']:<8} {e['ref']}  {detail}".rstrip())


SUBCOMMANDS = {
    "offer": (OfferApp, OfferApp.description),
    "hide": (HideApp, HideApp.description),
    "default": (DefaultApp, DefaultApp.description),
    "alias": (AliasApp, AliasApp.description),
    "unalias": (UnaliasApp, UnaliasApp.description),
    "retire": (RetireApp, RetireApp.description),
    "pull": (PullApp, PullApp.description),
    "push": (PushApp, PushApp.description),
    "build": (BuildApp, BuildApp.description),
    "gc": (GcApp, GcApp.description),
    "check": (CheckApp, CheckApp.description),
    "history": (HistoryApp, HistoryApp.description),
}

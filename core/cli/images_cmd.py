"""``berth images bootstrap``, ``berth images list`` and the catalog's admin subcommands.

``bootstrap`` builds the default kernel image (``berth/python:3.11``) from
Debian packages and PyPI with no container registry; see
:func:`jupyter_berth.imagebuild.bootstrap.bootstrap_image`. ``list`` shows the
images that carry berth's labels and the catalog's decision about each. The
admin subcommands (offer, hide, default, alias, retire, pull, push, build, gc,
check, history) live in :mod:`.images_admin_cmd`.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

from traitlets import Bool, Enum, Unicode

from .._version import __version__
from ..engine import engine_client
from ..imagebuild.baseimage import LABEL_PREFIX
from ..imagebuild.bootstrap import DEFAULT_EXTRA_CA_DIR, DEFAULT_KERNEL_REPOSITORY, DEFAULT_KERNEL_TAG
from ..imagebuild.by_recipe import bootstrap
from ..imagebuild.environments import ALL as ALL_ENVIRONMENTS
from ..imagebuild.environments import RECIPES as ENVIRONMENT_RECIPES
from ..imagebuild.environments import bootstrap_environment
from .command import BerthCommand
from .engine_cmd import BerthCommandApp
from .images_admin_cmd import SUBCOMMANDS, CatalogCommand


class ImagesBootstrapApp(BerthCommand):
    """Build the default kernel image without a registry."""

    name = "berth images bootstrap"
    version = __version__
    description = """Build the default kernel image without any container registry.

    The base comes from Debian packages (mmdebstrap piped into docker import),
    the kernel layer from `docker build` with pip through the host's network.
    A re-run with an unchanged recipe does nothing; --force rebuilds.
    """
    examples = """berth images bootstrap
berth images bootstrap --force
berth images bootstrap --recipe=singleuser   # the hub's user-server image
berth images bootstrap --recipe=r            # an R environment (berth/r:4.2), offered with `berth images offer`
berth images bootstrap --all                 # the kernel and server images and the test environments
berth images bootstrap --extra-ca-dir=/etc/company/certs   # the build trusts these
berth images bootstrap --extra-ca-dir=''     # the build trusts no extra CA
berth images bootstrap --image-pip-conf=/etc/berth/kernel-pip.conf --image-ca-dir=/etc/berth/kernel-ca
                                             # what kernels use at run time (in the image)"""

    force = Bool(False, help="Rebuild the base and the image even when the recipe is unchanged.").tag(config=True)
    extra_ca_dir = Unicode(
        DEFAULT_EXTRA_CA_DIR,
        help="Folder of PEM *.crt CA certificates the build trusts (a proxy's or a company's), so that "
        "pip reaches the index while building; like the host's /etc/pip.conf, they serve the build "
        "only and are in no layer of the image. Empty for none.",
    ).tag(config=True)
    image_pip_conf = Unicode(
        "",
        help="A pip configuration to install as the image's /etc/pip.conf, for `%%pip install` in "
        "kernels (a site's package mirror). Every user of the image can read it: no credentials. "
        "Empty (the default): the image has none; the host's /etc/pip.conf never goes in.",
    ).tag(config=True)
    image_ca_dir = Unicode(
        "",
        help="Folder of PEM *.crt CA certificates the image trusts at run time (added to its system "
        "trust store). Empty (the default): only Debian's.",
    ).tag(config=True)
    if_missing = Bool(
        False,
        help="Do nothing when the image exists at all, whatever recipe built it (for images "
        "brought in with `docker load` on an air-gapped host).",
    ).tag(config=True)
    repository = Unicode(DEFAULT_KERNEL_REPOSITORY, help="Repository name of the built image.").tag(config=True)
    tag = Unicode(DEFAULT_KERNEL_TAG, help="Tag of the built image.").tag(config=True)
    recipe = Enum(
        ["python", "singleuser", *ENVIRONMENT_RECIPES],
        "python",
        help="What to build: 'python', the kernel image (berth/python:3.11), 'singleuser', the "
        "image of a user's server in a hub (berth/singleuser:3.11, built on the kernel image), or an "
        "environment in another language or with an ML stack (plain images, offered with `berth images "
        "offer`): " + ", ".join(f"'{r.name}' ({r.reference})" for r in ENVIRONMENT_RECIPES.values()) + ".",
    ).tag(config=True)
    all = Bool(
        False,
        help="Build the kernel image, the single-user server image and the environments the tests use: "
        + ", ".join(ALL_ENVIRONMENTS)
        + ".",
    ).tag(config=True)

    aliases = {
        "extra-ca-dir": "ImagesBootstrapApp.extra_ca_dir",
        "image-pip-conf": "ImagesBootstrapApp.image_pip_conf",
        "image-ca-dir": "ImagesBootstrapApp.image_ca_dir",
        "repository": "ImagesBootstrapApp.repository",
        "tag": "ImagesBootstrapApp.tag",
        "recipe": "ImagesBootstrapApp.recipe",
    }
    flags = {
        "force": ({"ImagesBootstrapApp": {"force": True}}, "Rebuild even when up to date."),
        "if-missing": (
            {"ImagesBootstrapApp": {"if_missing": True}},
            "Build only when no image exists under that name (any recipe).",
        ),
        "all": (
            {"ImagesBootstrapApp": {"all": True}},
            "Build the kernel image, the single-user server image and the environments the tests use.",
        ),
    }

    def start(self):
        recipes = ["python", "singleuser", *ALL_ENVIRONMENTS] if self.all else [self.recipe]
        for recipe in recipes:
            if recipe in ENVIRONMENT_RECIPES:
                result = bootstrap_environment(
                    recipe,
                    force=self.force,
                    progress=lambda line: print(line, flush=True),
                    extra_ca_dir=self.extra_ca_dir or None,
                    image_pip_conf=self.image_pip_conf or None,
                    image_ca_dir=self.image_ca_dir or None,
                )
                print(f"{result.reference}: {'cached' if result.cached else 'built'} in {result.seconds:.1f} s")
                continue
            # --all builds the default names; otherwise the singleuser recipe maps the default
            # kernel name to berth/singleuser:3.11 by itself
            result = bootstrap(
                recipe,
                name=DEFAULT_KERNEL_REPOSITORY if self.all else self.repository,
                tag=DEFAULT_KERNEL_TAG if self.all else self.tag,
                force=self.force,
                progress=lambda line: print(line, flush=True),
                extra_ca_dir=self.extra_ca_dir or None,
                if_missing=self.if_missing,
                image_pip_conf=self.image_pip_conf or None,
                image_ca_dir=self.image_ca_dir or None,
            )
            state = "cached" if result.cached else "built"
            print(f"{result.reference}: {state} in {result.seconds:.1f} s ({result.image_id[:19]})")


def _image_rows(client) -> list[dict]:
    rows = []
    for image in client.images.list(filters={"label": LABEL_PREFIX + "kind", "dangling": False}):
        labels = image.labels or {}
        meta = {k[len(LABEL_PREFIX) :]: v for k, v in labels.items() if k.startswith(LABEL_PREFIX)}
        created = image.attrs.get("Created", "")
        for ref in image.tags or ["<none>:<none>"]:
            rows.append(
                {
                    "reference": ref,
                    "id": image.id,
                    "kind": meta.get("kind", ""),
                    "display_name": meta.get("display_name", ""),
                    "frameworks": meta.get("frameworks", ""),
                    "size": image.attrs.get("Size", 0),
                    "created": created,
                    "labels": meta,
                }
            )
    return sorted(rows, key=lambda r: (r["kind"] != "kernel", r["reference"]))


def _age(created: str) -> str:
    try:
        when = datetime.fromisoformat(created[:26].rstrip("Z") + "+00:00")
    except ValueError:
        return created
    seconds = (datetime.now(timezone.utc) - when).total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size:.0f} {unit} ago"
    return "just now"


def _state(entry: dict | None) -> str:
    if entry is None:
        return "-"
    flags = (
        [entry["state"]]
        + (["default"] if entry.get("default") else [])
        + ([f"→{entry['alias_of']}"] if entry.get("alias_of") else [])
    )
    return ",".join(flags) + ("" if entry.get("present", True) else " (removed)")


class ImagesListApp(CatalogCommand):
    """List the images that carry berth's labels, with the catalog's decision about each."""

    name = "berth images list"
    version = __version__
    description = (
        "List kernel (and base) images that carry berth's io.jupyter.berth.* labels, with their state in the "
        "catalog (offered, hidden, retired; default; alias) and retired versions no longer on this host."
    )

    as_json = Bool(False, help="Print JSON instead of a table.").tag(config=True)
    flags = {"json": ({"ImagesListApp": {"as_json": True}}, "Print JSON instead of a table.")}

    def start(self):
        rows = _image_rows(engine_client(timeout=30))
        catalog = {e["ref"]: e for e in self.run(lambda s, u: s.images.image_catalog(u, (), include_all=True))}
        for r in rows:
            r["catalog"] = catalog.get(r["reference"])
        rows += [
            {
                "reference": ref,
                "id": e.get("digest") or "",
                "kind": "kernel",
                "display_name": e["display_name"],
                "frameworks": "",
                "size": 0,
                "created": "",
                "labels": {},
                "catalog": e,
            }
            for ref, e in catalog.items()
            if not e["present"]
        ]
        if self.as_json:
            print(json.dumps(rows, indent=2))
            return
        if not rows:
            print("no berth images; build the default one with `berth images bootstrap`")
            return
        header = ("IMAGE", "KIND", "STATE", "NAME", "FRAMEWORKS", "SIZE", "CREATED")
        table = [header] + [
            (
                r["reference"],
                r["kind"],
                _state(r["catalog"]),
                r["display_name"],
                r["frameworks"],
                f"{r['size'] / 2**20:.0f} MiB",
                _age(r["created"]),
            )
            for r in rows
        ]
        widths = [max(len(row[i]) for row in table) for i in range(len(header))]
        for row in table:
            print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())


class ImagesApp(BerthCommandApp):
    """``berth images``: parent of ``bootstrap``, ``list`` and the catalog's admin subcommands."""

    name = "berth images"
    description = (
        "Build (offline), list and manage kernel image versions: offer, hide, default, alias, retire, pull, build, gc."
    )
    subcommands = {
        "bootstrap": (ImagesBootstrapApp, "Build the default kernel image without a registry."),
        "list": (ImagesListApp, "List the images that carry berth's labels, with their state in the catalog."),
        **SUBCOMMANDS,
    }

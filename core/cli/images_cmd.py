"""``berth images bootstrap`` and ``berth images list``: kernel images.

``bootstrap`` builds the default kernel image (``berth/python:3.11``) from
Debian packages and PyPI with no container registry; see
:func:`jupyter_berth.imagebuild.bootstrap.bootstrap_image`. ``list`` shows the
images that carry berth's labels.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

from traitlets import Bool, Unicode
from traitlets.config import Application

from .._version import __version__
from ..engine import engine_client
from ..imagebuild.baseimage import LABEL_PREFIX
from ..imagebuild.bootstrap import (
    DEFAULT_EXTRA_CA_DIR,
    DEFAULT_KERNEL_REPOSITORY,
    DEFAULT_KERNEL_TAG,
    bootstrap_image,
)
from .engine_cmd import BerthCommandApp


class ImagesBootstrapApp(Application):
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
berth images bootstrap --extra-ca-dir=/etc/company/certs
berth images bootstrap --extra-ca-dir=''     # trust no extra CA"""

    force = Bool(False, help="Rebuild the base and the image even when the recipe is unchanged.").tag(config=True)
    extra_ca_dir = Unicode(
        DEFAULT_EXTRA_CA_DIR,
        help="Folder of PEM *.crt CA certificates to trust inside the image (a proxy's or a "
        "company's), so pip and apt work there; empty for none.",
    ).tag(config=True)
    if_missing = Bool(
        False,
        help="Do nothing when the image exists at all, whatever recipe built it (for images "
        "brought in with `docker load` on an air-gapped host).",
    ).tag(config=True)
    repository = Unicode(DEFAULT_KERNEL_REPOSITORY, help="Repository name of the built image.").tag(config=True)
    tag = Unicode(DEFAULT_KERNEL_TAG, help="Tag of the built image.").tag(config=True)

    aliases = {
        "extra-ca-dir": "ImagesBootstrapApp.extra_ca_dir",
        "repository": "ImagesBootstrapApp.repository",
        "tag": "ImagesBootstrapApp.tag",
    }
    flags = {
        "force": ({"ImagesBootstrapApp": {"force": True}}, "Rebuild even when up to date."),
        "if-missing": ({"ImagesBootstrapApp": {"if_missing": True}},
                       "Build only when no image exists under that name (any recipe)."),
    }

    def start(self):
        result = bootstrap_image(
            name=self.repository,
            tag=self.tag,
            force=self.force,
            progress=lambda line: print(line, flush=True),
            extra_ca_dir=self.extra_ca_dir or None,
            if_missing=self.if_missing,
        )
        state = "cached" if result.cached else "built"
        print(f"{result.reference}: {state} in {result.seconds:.1f} s ({result.image_id[:19]})")


def _image_rows(client) -> list[dict]:
    rows = []
    for image in client.images.list(filters={"label": LABEL_PREFIX + "kind", "dangling": False}):
        labels = image.labels or {}
        meta = {k[len(LABEL_PREFIX):]: v for k, v in labels.items() if k.startswith(LABEL_PREFIX)}
        created = image.attrs.get("Created", "")
        for ref in image.tags or ["<none>:<none>"]:
            rows.append({
                "reference": ref,
                "id": image.id,
                "kind": meta.get("kind", ""),
                "display_name": meta.get("display_name", ""),
                "frameworks": meta.get("frameworks", ""),
                "size": image.attrs.get("Size", 0),
                "created": created,
                "labels": meta,
            })
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


class ImagesListApp(Application):
    """List the images that carry berth's labels."""

    name = "berth images list"
    version = __version__
    description = "List kernel (and base) images that carry berth's io.jupyter.berth.* labels."

    as_json = Bool(False, help="Print JSON instead of a table.").tag(config=True)
    flags = {"json": ({"ImagesListApp": {"as_json": True}}, "Print JSON instead of a table.")}

    def start(self):
        rows = _image_rows(engine_client(timeout=30))
        if self.as_json:
            print(json.dumps(rows, indent=2))
            return
        if not rows:
            print("no berth images; build the default one with `berth images bootstrap`")
            return
        header = ("IMAGE", "KIND", "NAME", "FRAMEWORKS", "SIZE", "CREATED")
        table = [header] + [
            (r["reference"], r["kind"], r["display_name"], r["frameworks"],
             f"{r['size'] / 2**20:.0f} MiB", _age(r["created"]))
            for r in rows
        ]
        widths = [max(len(row[i]) for row in table) for i in range(len(header))]
        for row in table:
            print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())


class ImagesApp(BerthCommandApp):
    """``berth images``: parent of ``bootstrap`` and ``list``."""

    name = "berth images"
    description = "Build (offline) and list kernel images."
    subcommands = {
        "bootstrap": (ImagesBootstrapApp, "Build the default kernel image without a registry."),
        "list": (ImagesListApp, "List the images that carry berth's labels."),
    }

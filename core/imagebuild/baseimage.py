"""The base image, made from Debian packages without a registry.

``mmdebstrap`` writes a root filesystem as a tar stream, which is fed straight
into the engine's image import (``docker import``): no registry, no pull. The
mirror is the host's own (read from its apt sources), so a site with a local
Debian mirror or proxy works unchanged. ``debootstrap --variant=minbase`` is
the fallback when ``mmdebstrap`` is absent and cannot be installed.

The image is tagged ``berth/base:<suite>-<hash>``, where the hash covers every
parameter of the bootstrap; an image with that tag is reused as it is.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import docker

from ..errors import EngineError

LABEL_PREFIX = "io.jupyter.berth."
BASE_REPOSITORY = "berth/base"
DEFAULT_SUITE = "bookworm"
DEFAULT_PACKAGES = ("python3", "python3-venv", "ca-certificates", "tini")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
#: bump to rebuild every base (changes in how the rootfs is made)
BASE_RECIPE_VERSION = "1"


@dataclass(frozen=True)
class BaseSpec:
    """Everything that decides the content of a base image."""

    suite: str = DEFAULT_SUITE
    packages: tuple[str, ...] = DEFAULT_PACKAGES
    #: ``deb URI SUITE COMPONENTS`` lines handed to the bootstrapper
    sources: tuple[str, ...] = field(default_factory=tuple)

    @property
    def hash(self) -> str:
        """A short digest of the spec: the base image's tag suffix."""
        doc = json.dumps(
            {
                "v": BASE_RECIPE_VERSION,
                "suite": self.suite,
                "packages": sorted(self.packages),
                "sources": list(self.sources),
            },
            sort_keys=True,
        )
        return hashlib.sha256(doc.encode()).hexdigest()[:12]

    @property
    def reference(self) -> str:
        """``berth/base:bookworm-<hash>``."""
        return f"{BASE_REPOSITORY}:{self.suite}-{self.hash}"


def _parse_deb822(text: str) -> list[dict[str, str]]:
    """Stanzas of a deb822 ``.sources`` file as dicts (comments dropped)."""
    stanzas, current = [], {}
    key = None
    for raw in text.splitlines():
        if raw.startswith("#"):
            continue
        if not raw.strip():
            if current:
                stanzas.append(current)
            current, key = {}, None
            continue
        if raw[0] in " \t" and key:
            current[key] += " " + raw.strip()
            continue
        key, _, value = raw.partition(":")
        key = key.strip().lower()
        current[key] = value.strip()
    if current:
        stanzas.append(current)
    return stanzas


def host_apt_sources(suite: str = DEFAULT_SUITE, etc_apt: str = "/etc/apt") -> tuple[str, ...]:
    """The host's Debian mirrors as one-line ``deb`` entries for ``suite``.

    Reads ``sources.list.d/*.sources`` (deb822) and ``sources.list``. The host's
    own codename is replaced by ``suite`` (so ``bookworm-security`` on a
    trixie host becomes ``trixie-security`` if asked). Falls back to
    ``deb.debian.org`` when nothing is found.
    """
    entries: list[tuple[str, str, str]] = []  # (uri, suite, components)
    paths = []
    d = os.path.join(etc_apt, "sources.list.d")
    if os.path.isdir(d):
        paths += [os.path.join(d, n) for n in sorted(os.listdir(d)) if n.endswith(".sources")]
    for path in paths:
        try:
            with open(path, encoding="utf-8") as f:
                stanzas = _parse_deb822(f.read())
        except OSError:
            continue
        for st in stanzas:
            if "deb" not in st.get("types", "").split() or st.get("enabled", "yes") == "no":
                continue
            for uri in st.get("uris", "").split():
                for s in st.get("suites", "").split():
                    entries.append((uri, s, st.get("components", "main")))
    legacy = os.path.join(etc_apt, "sources.list")
    if os.path.isfile(legacy):
        with open(legacy, encoding="utf-8") as f:
            for line in f:
                parts = line.split("#")[0].split()
                if len(parts) >= 3 and parts[0] == "deb":
                    if parts[1].startswith("["):  # options like [arch=amd64]
                        parts = [parts[0]] + [
                            p for p in parts[1:] if not (p.startswith("[") or p.endswith("]") or "=" in p)
                        ]
                    entries.append((parts[1], parts[2], " ".join(parts[3:]) or "main"))
    debian = [e for e in entries if "/debian" in e[0] or "debian" in e[0]]
    if not debian:
        return (f"deb {DEFAULT_MIRROR} {suite} main",)
    host_codenames = {e[1].split("-")[0] for e in debian}
    lines = []
    for uri, s, comps in debian:
        base, dash, rest = s.partition("-")
        if base in host_codenames:
            s = suite + dash + rest
        line = f"deb {uri} {s} {comps}"
        if line not in lines:
            lines.append(line)
    return tuple(lines)


def _find_bootstrapper(progress: Callable[[str], None]) -> str:
    """``mmdebstrap`` (installed with apt when missing and root) or ``debootstrap``."""
    if shutil.which("mmdebstrap"):
        return "mmdebstrap"
    if os.geteuid() == 0 and shutil.which("apt-get"):
        progress("mmdebstrap not found: apt-get install -y mmdebstrap")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        proc = subprocess.run(
            ["apt-get", "install", "-y", "mmdebstrap"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        if proc.returncode != 0:
            subprocess.run(["apt-get", "update"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            proc = subprocess.run(
                ["apt-get", "install", "-y", "mmdebstrap"],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        if proc.returncode == 0 and shutil.which("mmdebstrap"):
            return "mmdebstrap"
    if shutil.which("debootstrap"):
        return "debootstrap"
    raise EngineError(
        "cannot build the base image: neither mmdebstrap nor debootstrap is installed; "
        "install one (`apt-get install mmdebstrap`), or load a prebuilt image with "
        "`docker load` (see docs/engine-and-images.md, offline install)"
    )


def _pump_lines(stream, progress: Callable[[str], None], started: float, sink: list[str]) -> None:
    """Forward a subprocess's stderr lines as progress, with elapsed seconds."""
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", "replace").rstrip()
        if line:
            sink.append(line)
            del sink[:-40]
            progress(f"  [{time.monotonic() - started:5.1f} s] {line}")


def _chunks(stream, size: int = 1 << 20) -> Iterator[bytes]:
    return iter(lambda: stream.read(size), b"")


def _import_stream(client: docker.DockerClient, stream, spec: BaseSpec, how: str) -> None:
    """Import a rootfs tar stream as ``spec.reference`` with berth's labels."""
    repo, tag = spec.reference.split(":")
    changes = [
        f'LABEL {LABEL_PREFIX}kind="base" {LABEL_PREFIX}base_hash="{spec.hash}" '
        f'{LABEL_PREFIX}base_suite="{spec.suite}" {LABEL_PREFIX}base_tool="{how}"',
        "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8",
        'CMD ["/bin/bash"]',
    ]
    client.api.import_image_from_data(_chunks(stream), repository=repo, tag=tag, changes=changes)


def build_base(
    client: docker.DockerClient, spec: BaseSpec, progress: Callable[[str], None], force: bool = False
) -> tuple[str, bool]:
    """Make sure ``spec.reference`` exists; return (reference, cached)."""
    if not force:
        try:
            client.images.get(spec.reference)
            progress(f"base image {spec.reference} is present")
            return spec.reference, True
        except docker.errors.ImageNotFound:
            pass
    tool = _find_bootstrapper(progress)
    started = time.monotonic()
    progress(
        f"building base image {spec.reference} with {tool} ({spec.suite}: "
        f"{', '.join(spec.packages)}) from {spec.sources[0].split()[1]}"
    )
    if tool == "mmdebstrap":
        _run_mmdebstrap(client, spec, progress, started)
    else:
        _run_debootstrap(client, spec, progress, started)
    progress(f"base image {spec.reference} done in {time.monotonic() - started:.1f} s")
    return spec.reference, False


def _run_mmdebstrap(client, spec: BaseSpec, progress, started: float) -> None:
    cmd = [
        "mmdebstrap",
        "--variant=apt",
        f"--include={','.join(spec.packages)}",
        "--format=tar",
        spec.suite,
        "-",
        *spec.sources,
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    errors: list[str] = []
    pump = threading.Thread(target=_pump_lines, args=(proc.stderr, progress, started, errors), daemon=True)
    pump.start()
    import_error = None
    try:
        _import_stream(client, proc.stdout, spec, "mmdebstrap")
    except docker.errors.DockerException as e:
        import_error = e
        proc.kill()
    rc = proc.wait()
    pump.join(timeout=5)
    if import_error is not None:
        raise EngineError(f"the engine refused to import the base image: {import_error}")
    if rc != 0:
        _remove_quietly(client, spec.reference)
        raise EngineError(
            f"mmdebstrap failed (exit {rc}) building {spec.reference}; last lines:\n" + "\n".join(errors[-15:])
        )


def _run_debootstrap(client, spec: BaseSpec, progress, started: float) -> None:
    if os.geteuid() != 0:
        raise EngineError("debootstrap needs root; install mmdebstrap instead (it runs unprivileged)")
    mirror = spec.sources[0].split()[1]
    with tempfile.TemporaryDirectory(prefix="berth-rootfs-") as root:
        cmd = ["debootstrap", "--variant=minbase", f"--include={','.join(spec.packages)}", spec.suite, root, mirror]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        lines: list[str] = []
        _pump_lines(proc.stdout, progress, started, lines)
        if proc.wait() != 0:
            raise EngineError("debootstrap failed building the base image; last lines:\n" + "\n".join(lines[-15:]))
        for sub in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for name in os.listdir(os.path.join(root, sub)):
                path = os.path.join(root, sub, name)
                if os.path.isfile(path):
                    os.unlink(path)
        tar = subprocess.Popen(["tar", "-C", root, "--numeric-owner", "-c", "."], stdout=subprocess.PIPE)
        try:
            _import_stream(client, tar.stdout, spec, "debootstrap")
        finally:
            tar.wait()


def _remove_quietly(client, reference: str) -> None:
    try:
        client.images.remove(reference, force=True)
    except docker.errors.DockerException:
        pass

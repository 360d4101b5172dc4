"""Build a new kernel image version on top of an offered one, with no registry.

Three sources, one of them per build:

``dockerfile``
    Dockerfile steps to run on the base: either no ``FROM`` line at all, or a
    single ``FROM`` that names the base (``FROM berth/python:3.11`` or
    ``FROM ${BASE_IMAGE}``). Multi-stage builds are refused.
``requirements``
    A pip ``requirements.txt``, installed into the base's ``/opt/venv``.
``environment``
    A conda-style ``environment.yml``: its ``pip:`` section and simple
    ``name=version`` dependencies are installed with pip (Berth images have
    no conda); ``python`` and ``pip`` entries are checked, not installed.

The build is ``docker build`` with ``pull=False`` (nothing is fetched from a
registry: the base is already on the host), ``FROM`` the base's image id (the
exact image that was offered), on the host network so that pip reaches the
package index. The extra CA certificates and ``/etc/pip.conf`` serve the build and
stay out of the image, as in ``berth images bootstrap`` (:mod:`.imagebuild.build_files`). Every line the
build prints is passed to ``progress``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field

import docker.errors

from ..errors import EngineError, RequestError
from ..imagebuild import build_files
from ..imagebuild.bootstrap import DEFAULT_EXTRA_CA_DIR, HOST_PIP_CONF, _certificate_files, _stage_context
from ..runtime.labels import PREFIX

#: Largest Dockerfile, requirements or environment file accepted.
MAX_SOURCE_BYTES = 64 * 1024
SOURCES = ("dockerfile", "requirements", "environment")
_FROM_RE = re.compile(r"^\s*FROM\s+(?P<args>.+?)\s*$", re.IGNORECASE)
_DIST_RE = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_CONDA_SPEC_RE = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:(==|>=|<=|>|<|=)\s*([A-Za-z0-9.*+!_-]+))?\s*$")

_PIP_STEPS = """USER root
COPY context/berth-build-files.py /tmp/berth-build-files.py
COPY requirements.txt /tmp/berth-pip/requirements.txt
ARG BERTH_BUILD_FILES=""
RUN set -eux; \\
    python3 /tmp/berth-build-files.py "$BERTH_BUILD_FILES" /tmp/berth-build; \\
    . /tmp/berth-build/env.sh; \\
    /opt/venv/bin/pip install --no-cache-dir -r /tmp/berth-pip/requirements.txt; \\
    /opt/venv/bin/pip freeze > /opt/venv/berth-freeze.txt; \\
    rm -rf /tmp/berth-build /tmp/berth-build-files.py /tmp/berth-pip /root/.cache
USER 1000
"""


@dataclass
class BuildPlan:
    """A checked build: the Dockerfile to run, the files beside it, the packages to report."""

    source: str  #: dockerfile, requirements or environment
    dockerfile: str
    files: dict[str, str] = field(default_factory=dict)
    dists: list[str] = field(default_factory=list)  #: distributions whose versions go into the frameworks label
    notes: list[str] = field(default_factory=list)  #: what the plan changed, told to the admin

    def digest(self, base_id: str) -> str:
        h = hashlib.sha256(f"base={base_id}\nsource={self.source}\n{self.dockerfile}".encode())
        for name in sorted(self.files):
            h.update(f"\nfile={name}\n{self.files[name]}".encode())
        return h.hexdigest()[:16]


def _text(value, field_name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise RequestError(field_name, "expected the file's text (not empty)")
    if len(value.encode()) > MAX_SOURCE_BYTES or "\x00" in value:
        raise RequestError(
            field_name, f"expected text of at most {MAX_SOURCE_BYTES // 1024} KiB without NUL characters"
        )
    return value


def dockerfile_on_base(text: str, base_ref: str, base_id: str) -> str:
    """The admin's Dockerfile steps, ``FROM`` the base's image id (see module doc)."""
    lines = _text(text, "dockerfile").splitlines()
    froms = [i for i, line in enumerate(lines) if _FROM_RE.match(line)]
    allowed = {base_ref, base_id, "${BASE_IMAGE}", "$BASE_IMAGE"}
    if len(froms) > 1:
        raise RequestError(
            "dockerfile",
            "multi-stage builds are not supported; write one stage FROM the base you chose, or no FROM line at all",
        )
    if froms:
        i = froms[0]
        args = _FROM_RE.match(lines[i]).group("args").split()
        if (
            args[0].startswith("--")
            or args[0] not in allowed
            or (len(args) > 1 and not (len(args) == 3 and args[1].upper() == "AS"))
        ):
            raise RequestError(
                "dockerfile",
                f"the FROM line must name the base: 'FROM {base_ref}' (or leave FROM out); got {lines[i].strip()!r}",
            )
        before = [line for line in lines[:i] if line.strip() and not line.lstrip().startswith(("#", "ARG "))]
        if before:
            raise RequestError("dockerfile", f"only comments and ARG may come before FROM; got {before[0].strip()!r}")
        lines[i] = f"FROM {base_id}"
        return "\n".join(lines) + "\n"
    return f"FROM {base_id}\n" + "\n".join(lines) + "\n"


def _requirement_dists(requirements: str) -> list[str]:
    out = []
    for line in requirements.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        m = _DIST_RE.match(line)
        if m and m.group(1).lower() not in out:
            out.append(m.group(1).lower())
    return out


def requirements_plan(requirements: str, base_id: str) -> BuildPlan:
    text = _text(requirements, "requirements")
    return BuildPlan(
        "requirements",
        f"FROM {base_id}\n{_PIP_STEPS}",
        {"requirements.txt": text.rstrip("\n") + "\n"},
        _requirement_dists(text),
    )


def environment_requirements(environment: str, python_version: str | None) -> tuple[str, list[str]]:
    """``environment.yml`` → (pip requirements text, notes). Raises :class:`RequestError` naming what cannot be done."""
    try:
        import yaml
    except ImportError:  # pragma: no cover - PyYAML comes with jupyter_server
        raise RequestError(
            "environment",
            "reading environment.yml needs PyYAML on the server (pip install pyyaml); "
            "or give a requirements file instead",
        ) from None
    try:
        data = yaml.safe_load(_text(environment, "environment"))
    except yaml.YAMLError as e:
        raise RequestError("environment", f"not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict) or not isinstance(data.get("dependencies", []), list):
        raise RequestError("environment", "expected an environment.yml mapping with a 'dependencies' list")
    lines, notes = [], []
    for dep in data.get("dependencies") or []:
        if isinstance(dep, dict) and set(dep) == {"pip"} and isinstance(dep["pip"], list):
            lines += [str(p) for p in dep["pip"]]
            continue
        m = _CONDA_SPEC_RE.match(dep) if isinstance(dep, str) else None
        if not m:
            raise RequestError(
                "environment",
                f"cannot install dependency {dep!r}: Berth images have no conda; "
                "list it under 'pip:' or give a requirements file",
            )
        name, op, version = m.group(1), m.group(2), m.group(3)
        if name.lower() == "python":
            if version and python_version and not python_version.startswith(version.rstrip(".*")):
                raise RequestError(
                    "environment",
                    f"asks for python {version} but the base has Python {python_version}; pick a base with that Python",
                )
            continue
        if name.lower() == "pip":
            continue
        spec = name if not op else f"{name}{'==' if op == '=' else op}{version}"
        notes.append(f"conda dependency {dep!r} is installed with pip as {spec!r}")
        lines.append(spec)
    if not lines:
        raise RequestError(
            "environment", "nothing to install: no pip packages and no dependencies besides python and pip"
        )
    return "\n".join(lines) + "\n", notes


def plan_build(
    *,
    base_ref: str,
    base_id: str,
    base_python: str | None = None,
    dockerfile: str | None = None,
    requirements: str | None = None,
    environment: str | None = None,
) -> BuildPlan:
    """Check the build's source (exactly one of the three) and plan it."""
    given = [
        name
        for name, value in (("dockerfile", dockerfile), ("requirements", requirements), ("environment", environment))
        if value is not None
    ]
    if len(given) != 1:
        raise RequestError("source", f"give exactly one of {', '.join(SOURCES)}; got {', '.join(given) or 'none'}")
    if dockerfile is not None:
        return BuildPlan("dockerfile", dockerfile_on_base(dockerfile, base_ref, base_id))
    if requirements is not None:
        return requirements_plan(requirements, base_id)
    text, notes = environment_requirements(environment, base_python)
    plan = requirements_plan(text, base_id)
    plan.source, plan.notes = "environment", notes
    return plan


def label_line(labels: dict[str, str]) -> str:
    """One ``LABEL`` instruction for all ``labels`` (one build step instead of one per label)."""

    def quote(text: str) -> str:
        return json.dumps(str(text), ensure_ascii=False).replace("$", "\\$")

    return "LABEL " + " ".join(f"{quote(k)}={quote(v)}" for k, v in sorted(labels.items())) + "\n"


def run_build(
    api,
    plan: BuildPlan,
    *,
    tag: str,
    labels: dict[str, str],
    progress: Callable[[str], None],
    network: bool = True,
    extra_ca_dir: str | None = DEFAULT_EXTRA_CA_DIR,
    pip_conf: str | None = HOST_PIP_CONF,
) -> str:
    """Run the planned ``docker build`` (no pull), tag the result ``tag``; return the image id."""
    certs = _certificate_files(extra_ca_dir) if extra_ca_dir and os.path.isdir(extra_ca_dir) else []
    pip_conf = pip_conf if pip_conf and os.path.isfile(pip_conf) else None
    with (
        tempfile.TemporaryDirectory(prefix="berth-version-") as recipe,
        tempfile.TemporaryDirectory(prefix="berth-ctx-") as ctx,
    ):
        with open(os.path.join(recipe, "Dockerfile"), "w") as f:
            f.write(plan.dockerfile + label_line(labels))
        for name, text in plan.files.items():
            with open(os.path.join(recipe, name), "w") as f:
                f.write(text)
        _stage_context(recipe, ctx)
        image_id, last = None, []
        try:
            with build_files.served(certs, extra_ca_dir, pip_conf) as build_args:
                stream = api.build(
                    path=ctx,
                    tag=tag,
                    pull=False,
                    rm=True,
                    forcerm=True,
                    decode=True,
                    network_mode="host" if network else "none",
                    buildargs=build_args,
                )
                for chunk in stream:  # the build runs while the stream is read: inside served()
                    for line in (chunk.get("stream") or "").splitlines():
                        if line.strip():
                            last = (last + [line])[-20:]
                            progress(f"  {line.rstrip()}")
                    if "aux" in chunk and "ID" in (chunk["aux"] or {}):
                        image_id = chunk["aux"]["ID"]
                    if "error" in chunk:
                        raise EngineError(
                            f"docker build of {tag} failed: {chunk['error'].strip()}", log_message="\n".join(last)
                        )
        except docker.errors.APIError as e:
            raise EngineError(f"docker build of {tag} failed: {e.explanation or e}", log_message=str(e)) from e
    if image_id is None:
        raise EngineError(f"docker build of {tag} finished without an image id; last output: " + " / ".join(last[-5:]))
    return image_id


def probe_versions(api, image_id: str, dists: list[str]) -> dict[str, str]:
    """The installed versions of ``dists`` (and ``python``) read from the image, with no network."""
    script = (
        "import json, platform, importlib.metadata as m\n"
        "out = {'python': platform.python_version()}\n"
        f"for d in {json.dumps(dists)}:\n"
        "    try: out[d] = m.version(d)\n"
        "    except m.PackageNotFoundError: pass\n"
        "print(json.dumps(out))\n"
    )
    container = api.create_container(
        image_id,
        ["python", "-c", script],
        entrypoint=[],
        network_disabled=True,
        labels={PREFIX + "purpose": "version-probe"},
    )
    try:
        api.start(container)
        code = api.wait(container, timeout=60).get("StatusCode")
        out = api.logs(container, stdout=True, stderr=False).decode().strip().splitlines()
        if code != 0 or not out:
            raise EngineError(f"could not read the versions installed in {image_id[:19]} (exit {code})")
        return json.loads(out[-1])
    finally:
        api.remove_container(container, force=True)


def frameworks_label(base_frameworks: str, versions: dict[str, str]) -> str:
    """The base's ``frameworks`` label with the probed distributions added or updated."""
    entries = [e.strip() for e in (base_frameworks or "").split(",") if e.strip()]
    by_name = {e.split()[0].lower(): e for e in entries}
    for name, version in versions.items():
        if name != "python":
            by_name[name.lower()] = f"{name} {version}"
    return ", ".join(by_name.values())

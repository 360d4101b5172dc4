"""What an image offers Jupyter: its kernels, their languages, interpreters and frameworks.

An :class:`ImageEnvironment` is found once per image (by its content id) when an admin offers
it: ``berth-discover`` runs inside the image and prints what it finds, :func:`parse_discovery`
reads that, :func:`build_environment` decides each kernel's command the way jupyter_client would
(a kernelspec that says ``python`` runs the interpreter that has ipykernel), and the service keeps
the result (:mod:`jupyter_berth.environments.store`). Everything here is pure: no engine.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field

#: Where Berth's launcher folder is mounted (read-only) in every kernel container it starts.
LAUNCHER_TARGET = "/opt/berth/launcher"
#: The start request's environment variable naming the kernelspec inside the image (a Berth
#: kernelspec sets it; ``KERNEL_*`` variables pass every front end's allowlist, as in Enterprise Gateway).
#: Here, not in :mod:`.launch`, so that :mod:`jupyter_berth.kernelspecs` (which :mod:`.launch` uses) reads it
#: without an import circle.
KERNEL_ENV = "KERNEL_BERTH_KERNELSPEC"
#: Interpreter names that jupyter_client replaces with "the Python that runs the kernel".
_PYTHON_RE = re.compile(r"^python(\d(\.\d+)?)?$")
#: Packages the catalog lists as frameworks (the kernel machinery itself is not one).
_NOT_FRAMEWORKS = {"ipykernel", "bash_kernel"}
#: Which module a kernelspec's language needs in the Python that runs it.
_KERNEL_MODULES = {"python": "ipykernel", "bash": "bash_kernel"}


@dataclass(frozen=True)
class KernelEnvironment:
    """One kernel an image can run: a kernelspec found inside it, with the command resolved."""

    name: str  #: the kernelspec's name inside the image (``python3``, ``ir``, ``bash``)
    display_name: str
    language: str  #: as the kernelspec says (``python``, ``R``, ``bash``)
    argv: tuple[str, ...]  #: with ``{connection_file}`` / ``{resource_dir}`` left for the launcher
    resource_dir: str
    language_version: str = ""  #: ``3.11.2``, ``4.2.2``, ``5.2.15(1)-release``
    frameworks: dict = field(default_factory=dict)  #: name → version (numpy, jax, IRkernel …)
    env: dict = field(default_factory=dict)  #: the kernelspec's own environment
    interrupt_mode: str = "signal"

    @property
    def is_python(self) -> bool:
        return self.language.lower() == "python"

    def describe(self) -> str:
        """``Python 3.11.2 · numpy 1.26.4, pandas 2.2.2``."""
        head = f"{self.language} {self.language_version}".strip()
        tail = ", ".join(f"{k} {v}" for k, v in sorted(self.frameworks.items()))
        return f"{head} · {tail}" if tail else head

    def to_json(self) -> dict:
        out = asdict(self)
        out["argv"] = list(self.argv)
        return out

    @classmethod
    def from_json(cls, data: dict) -> KernelEnvironment:
        return cls(**{**data, "argv": tuple(data["argv"])})


@dataclass(frozen=True)
class ImageEnvironment:
    """What one image (by content id) offers: its kernels, and those that did not start."""

    image_id: str
    kernels: tuple[KernelEnvironment, ...]
    skipped: dict = field(default_factory=dict)  #: kernelspec name → why it is not offered
    image_user: str = ""  #: the image's default user (Berth runs kernels as uid 1000 whatever it is)
    seconds: float = 0.0  #: how long the inspection took

    def kernel(self, name: str | None = None) -> KernelEnvironment | None:
        """The kernel ``name``, or the default one: ``python3`` if present, else the first."""
        if name:
            return next((k for k in self.kernels if k.name == name), None)
        return next((k for k in self.kernels if k.name == "python3"), None) or (
            self.kernels[0] if self.kernels else None
        )

    def catalog_labels(self) -> dict[str, str]:
        """Catalog labels (short names) for an image that carries none of Berth's: from what was found."""
        main = self.kernel()
        frameworks = {}
        for k in self.kernels:
            frameworks.update(k.frameworks)
        labels = {
            "kind": "kernel",
            "language": main.language if main else "",
            "languages": ",".join(sorted({k.language for k in self.kernels})),
            "frameworks": ",".join(f"{n} {v}" for n, v in sorted(frameworks.items())),
            "kernels": json.dumps([_kernel_summary(k) for k in self.kernels], sort_keys=True),
            "launcher": "mounted",
        }
        if main is not None and main.is_python and main.language_version:
            labels["python_version"] = main.language_version
        return labels

    def to_json(self) -> dict:
        return {
            "image_id": self.image_id,
            "kernels": [k.to_json() for k in self.kernels],
            "skipped": dict(self.skipped),
            "image_user": self.image_user,
            "seconds": self.seconds,
        }

    @classmethod
    def from_json(cls, data: dict) -> ImageEnvironment:
        return cls(
            image_id=data["image_id"],
            kernels=tuple(KernelEnvironment.from_json(k) for k in data.get("kernels") or ()),
            skipped=dict(data.get("skipped") or {}),
            image_user=data.get("image_user") or "",
            seconds=float(data.get("seconds") or 0.0),
        )


def _kernel_summary(k: KernelEnvironment) -> dict:
    return {
        "name": k.name,
        "display_name": k.display_name,
        "language": k.language,
        "language_version": k.language_version,
        "frameworks": dict(k.frameworks),
    }


def kernels_from_labels(labels: dict) -> list[dict]:
    """The kernel summaries :meth:`ImageEnvironment.catalog_labels` put in an image's labels (``[]``: none)."""
    try:
        kernels = json.loads(labels.get("kernels") or "[]")
    except ValueError:
        return []
    return [k for k in kernels if isinstance(k, dict) and k.get("name")] if isinstance(kernels, list) else []


@dataclass
class Discovery:
    """What ``berth-discover`` printed, parsed."""

    user: str = ""
    kernelspecs: list = field(default_factory=list)  #: (path, kernel.json as a dict)
    which: dict = field(default_factory=dict)  #: command name → path
    pythons: list = field(default_factory=list)  #: berth_probe.py's answers
    r_version: str = ""
    irkernel_version: str = ""
    bash_version: str = ""
    complete: bool = False  #: the script ran to its end


def parse_discovery(text: str) -> Discovery:
    """Read ``berth-discover``'s sections (unreadable parts are skipped, never fatal)."""
    out = Discovery()
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if line.startswith("@@kernelspec "):
            path, body = line[len("@@kernelspec ") :].strip(), []
            while i < len(lines) and lines[i] != "@@end":
                body.append(lines[i])
                i += 1
            i += 1
            try:
                spec = json.loads("\n".join(body))
            except ValueError:
                continue
            if isinstance(spec, dict):
                out.kernelspecs.append((path, spec))
        elif line.startswith("@@which "):
            parts = line.split(" ", 2)
            if len(parts) == 3:
                out.which[parts[1]] = parts[2].strip()
        elif line.startswith("@@python"):
            if i < len(lines) and lines[i].startswith("{"):
                try:
                    probe = json.loads(lines[i])
                except ValueError:
                    probe = None
                if isinstance(probe, dict) and probe.get("executable"):
                    out.pythons.append(probe)
                    out.kernelspecs.extend(
                        (k["path"], k["spec"])
                        for k in probe.get("kernelspecs") or ()
                        if isinstance(k, dict) and isinstance(k.get("spec"), dict) and k.get("path")
                    )
                i += 1
        elif line == "@@r":
            if i < len(lines) and not lines[i].startswith("@@"):
                out.r_version = lines[i].strip()
                i += 1
            if i < len(lines) and not lines[i].startswith("@@"):
                out.irkernel_version = lines[i].strip()
                i += 1
        elif line.startswith("@@bash "):
            out.bash_version = line[len("@@bash ") :].strip()
        elif line.startswith("@@user "):
            out.user = line[len("@@user ") :].strip()
        elif line == "@@done":
            out.complete = True
    return out


def _python_for(spec_path: str, argv0: str, module: str, found: Discovery) -> dict | None:
    """The probed Python a kernelspec runs: the one whose prefix holds the kernelspec, else the one
    its argv names, else the first that has ``module`` (as jupyter_client runs "python" kernels with
    the interpreter that has ipykernel)."""
    pythons = found.pythons
    for p in pythons:
        prefix = p.get("prefix") or ""
        if prefix and spec_path.startswith(prefix.rstrip("/") + "/share/jupyter/kernels/"):
            if module in (p.get("packages") or {}):
                return p
    path = argv0 if argv0.startswith("/") else found.which.get(argv0, "")
    for p in pythons:
        if path and path in (p.get("executable"), p.get("realpath")) and module in (p.get("packages") or {}):
            return p
    return next((p for p in pythons if module in (p.get("packages") or {})), None)


def _kernel_from_spec(path: str, spec: dict, found: Discovery) -> KernelEnvironment | None:
    argv = spec.get("argv")
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
        return None
    resource_dir = os.path.dirname(path)
    name = os.path.basename(resource_dir)
    language = str(spec.get("language") or "")
    argv0 = argv[0]
    version, frameworks = "", {}
    module = _KERNEL_MODULES.get(language.lower())
    runs_python = bool(_PYTHON_RE.match(os.path.basename(argv0)))
    if runs_python or module:
        probe = _python_for(path, argv0, module or "ipykernel", found)
        if probe is not None:
            if not argv0.startswith("/") and _PYTHON_RE.match(argv0):
                argv = [probe["executable"], *argv[1:]]
            packages = dict(probe.get("packages") or {})
            if language.lower() == "python":
                version = probe.get("version") or ""
                frameworks = {k: v for k, v in packages.items() if k not in _NOT_FRAMEWORKS}
            elif language.lower() == "bash" and "bash_kernel" in packages:
                frameworks = {"bash_kernel": packages["bash_kernel"]}
    if language.lower() == "r":
        version = found.r_version
        if found.irkernel_version:
            frameworks = {"IRkernel": found.irkernel_version}
    elif language.lower() == "bash":
        version = found.bash_version
    env = spec.get("env") if isinstance(spec.get("env"), dict) else {}
    return KernelEnvironment(
        name=name,
        display_name=str(spec.get("display_name") or name),
        language=language or "unknown",
        argv=tuple(argv),
        resource_dir=resource_dir,
        language_version=version,
        frameworks=frameworks,
        env={str(k): str(v) for k, v in env.items()},
        interrupt_mode=str(spec.get("interrupt_mode") or "signal"),
    )


def build_environment(image_id: str, found: Discovery, image_user: str = "") -> ImageEnvironment:
    """Every kernel the image holds (first kernelspec of a name wins, as in Jupyter's path order),
    plus the native Python kernel when a Python has ipykernel but no kernelspec says so."""
    kernels: dict[str, KernelEnvironment] = {}
    for path, spec in found.kernelspecs:
        k = _kernel_from_spec(path, spec, found)
        if k is not None and k.name not in kernels:
            kernels[k.name] = k
    if not any(k.is_python for k in kernels.values()) and "python3" not in kernels:
        probe = next((p for p in found.pythons if "ipykernel" in (p.get("packages") or {})), None)
        if probe is not None:
            packages = dict(probe.get("packages") or {})
            kernels["python3"] = KernelEnvironment(
                name="python3",
                display_name="Python 3 (ipykernel)",
                language="python",
                argv=(probe["executable"], "-m", "ipykernel_launcher", "-f", "{connection_file}"),
                resource_dir="",
                language_version=probe.get("version") or "",
                frameworks={k: v for k, v in packages.items() if k not in _NOT_FRAMEWORKS},
            )
    return ImageEnvironment(image_id=image_id, kernels=tuple(kernels.values()), image_user=image_user)


def last_lines(text: str, n: int = 15) -> str:
    """The end of a kernel's output, for an error message."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return "\n".join(lines[-n:])

"""The house rules that hold the layers apart, checked on the source as it is (no engine needed).

- ``core/`` (``jupyter_berth``) is the domain: no web framework, no front end.
- ``kernels/`` builds on core only; ``server_ext/`` on core and kernels; ``hub_ext/`` on core and
  the REST handlers shared with the server extension (declared below), never on the kernels package.
- Ruff's linter and formatter are clean (the same checks the pre-commit config runs).

An AST pass rather than import-linter: the four folders are remapped into one import root
(``package_dir``), which import-linter's package walk cannot follow.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FRAMEWORKS = ("tornado", "jupyter_server", "jupyterhub", "dockerspawner")

#: folder → (its import name, the Berth layers it may import besides core)
LAYERS = {
    "core": ("jupyter_berth", ()),
    "kernels": ("jupyter_berth.kernels", ("jupyter_berth.kernels",)),
    "server_ext": ("jupyter_berth.server", ("jupyter_berth.kernels", "jupyter_berth.server")),
    "hub_ext": ("jupyter_berth.hub", ("jupyter_berth.hub",)),
}
FRONT_ENDS = ("jupyter_berth.kernels", "jupyter_berth.server", "jupyter_berth.hub")
#: The REST logic written once and bound to both frameworks: the hub's service serves the server
#: extension's handler classes under its own prefix (hub_ext/service_user_api.py).
HUB_MAY_IMPORT_FROM_SERVER = (
    "jupyter_berth.server.handlers",
    "jupyter_berth.server.routes",
    "jupyter_berth.server.context",
    "jupyter_berth.server.json_io",
)


def module_name(folder: str, path: Path) -> str:
    rel = path.relative_to(ROOT / folder).with_suffix("")
    parts = [p for p in rel.parts if p != "__init__"]
    return ".".join([LAYERS[folder][0], *parts])


def imports(path: Path, name: str) -> list[tuple[int, str]]:
    """Every module a file imports, absolute, with its line (relative imports resolved)."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            found += [(node.lineno, f"{base}.{a.name}" if a.name != "*" else base) for a in node.names]
    return found


def violations(folder: str) -> list[str]:
    name, allowed = LAYERS[folder]
    bad = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        if "recipes" in path.parts:
            continue
        for line, target in imports(path, module_name(folder, path)):
            where = f"{path.relative_to(ROOT)}:{line} imports {target}"
            top = target.split(".")[0]
            if folder in ("core", "kernels") and top in FRAMEWORKS and not _client_only(folder, target):
                bad.append(where + f" ({folder}/ imports no web framework)")
            if not target.startswith("jupyter_berth."):
                continue
            front = next((f for f in FRONT_ENDS if target == f or target.startswith(f + ".")), None)
            if front is None or target.startswith(allowed) or front in allowed:
                continue
            if folder == "hub_ext" and target.startswith(HUB_MAY_IMPORT_FROM_SERVER):
                continue
            bad.append(where + f" ({folder}/ may not import {front})")
    return sorted(set(bad))


def _client_only(folder: str, target: str) -> bool:
    """The kernels package's HTTP client to the hub's service may use tornado's HTTP client."""
    return folder == "kernels" and target.startswith("tornado.httpclient")


@pytest.mark.parametrize("folder", list(LAYERS))
def test_layers_import_only_downward(folder):
    assert violations(folder) == []


def test_the_check_sees_a_violation(tmp_path, monkeypatch):
    """The AST pass finds an upward import written the ways people write them."""
    core = tmp_path / "core"
    (core / "area").mkdir(parents=True)
    (core / "area" / "__init__.py").write_text("")
    (core / "area" / "bad.py").write_text(
        "from ..kernels import x\nimport tornado.web\nfrom jupyter_berth.hub.spawner import BerthSpawner\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    found = violations("core")
    assert any("jupyter_berth.hub.spawner" in v for v in found)
    assert any("tornado.web" in v for v in found)
    assert any("jupyter_berth.kernels.x" in v for v in found)


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff is not installed (pip install ruff)")
@pytest.mark.parametrize("args", [["check", "--no-cache"], ["format", "--check", "--no-cache"]])
def test_ruff_is_clean(args):
    done = subprocess.run(["ruff", *args, "."], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr

"""Front ends call the ``BerthService`` facade's public methods only (checked on the source, no engine).

``hub_ext/``, ``server_ext/`` and ``kernels/`` may not

- read or call a private attribute (``x._name``) of an object from ``jupyter_berth``: any ``_name``
  that core defines (a method, a class attribute, an attribute set on ``self``), reached through
  anything but the front end's own ``self``/``cls``;
- import a private name or module from ``jupyter_berth`` (``from jupyter_berth._version import …``);
- reach the facade's parts: ``.ledger``, ``.runtime``, ``.admission`` (what they offer, the facade
  offers as a method, so that a rule such as admission or release lives once, in core).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FRONT_END_FOLDERS = ("hub_ext", "server_ext", "kernels")
#: The facade's parts that only core may touch.
CORE_PARTS = ("ledger", "runtime", "admission")


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def core_private_names() -> set[str]:
    """Every private name core defines: functions, methods, class attributes, ``self._x = …``."""
    names: set[str] = set()
    for path in (ROOT / "core").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                    if isinstance(target, ast.Name):
                        names.add(target.id)
                    elif isinstance(target, ast.Attribute):
                        names.add(target.attr)
    return {n for n in names if _private(n)}


def _own(value: ast.expr, own_classes: set[str]) -> bool:
    """``self``, ``cls``, ``super()`` or a class of the same file: the front end's own attributes."""
    if isinstance(value, ast.Name):
        return value.id in ("self", "cls") or value.id in own_classes
    return isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "super"


def violations_in(source: str, where: str, core_private: set[str]) -> list[str]:
    """Front-end accesses past the facade in one file's source (``where`` names it in the answer)."""
    tree = ast.parse(source, where)
    own_classes = {n.name for n in ast.walk(tree) if isinstance(n, ast.ClassDef)}
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            if node.attr in CORE_PARTS:
                bad.append(f"{where}:{node.lineno} reaches .{node.attr} (call a BerthService method instead)")
            elif _private(node.attr) and node.attr in core_private and not _own(node.value, own_classes):
                bad.append(f"{where}:{node.lineno} uses the private {node.attr} of a core object")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("jupyter_berth"):
            if any(_private(part) for part in node.module.split(".")):
                bad.append(f"{where}:{node.lineno} imports the private module {node.module}")
            bad += [
                f"{where}:{node.lineno} imports the private {a.name} from {node.module}"
                for a in node.names
                if _private(a.name)
            ]
        elif isinstance(node, ast.Import):
            bad += [
                f"{where}:{node.lineno} imports the private module {a.name}"
                for a in node.names
                if a.name.startswith("jupyter_berth") and any(_private(p) for p in a.name.split("."))
            ]
    return bad


def test_front_ends_use_the_facades_public_methods_only():
    core_private = core_private_names()
    bad = []
    for folder in FRONT_END_FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            bad += violations_in(path.read_text(), str(path.relative_to(ROOT)), core_private)
    assert not bad, "front ends reach past the BerthService facade:\n" + "\n".join(bad)


def test_the_check_catches_each_kind_of_violation():
    core_private = core_private_names()
    assert {"_db", "_finish", "_own_allocation", "_user_network"} <= core_private
    source = """
from jupyter_berth._version import __version__
from jupyter_berth.service import _helper
import jupyter_berth._version

class Spawner:
    def _mine(self):
        return self._finish  # the front end's own attribute: allowed

    async def start(self, s):
        await s._db(s.ledger.release, "a1", "failed")
        s._own_allocation("ann", "k1")
        await self.core.service.runtime.run(None)
        s.admission.reserve()
        return Spawner._mine, self.handler._hub_auth_user_cache  # own class; not a core name
"""
    found = violations_in(source, "hub_ext/example.py", core_private | {"_helper"})
    assert found == sorted(found, key=lambda v: int(v.split(":")[1].split()[0])) or found
    expected = [
        "hub_ext/example.py:2 imports the private module jupyter_berth._version",
        "hub_ext/example.py:3 imports the private _helper from jupyter_berth.service",
        "hub_ext/example.py:4 imports the private module jupyter_berth._version",
        "hub_ext/example.py:11 uses the private _db of a core object",
        "hub_ext/example.py:11 reaches .ledger (call a BerthService method instead)",
        "hub_ext/example.py:12 uses the private _own_allocation of a core object",
        "hub_ext/example.py:13 reaches .runtime (call a BerthService method instead)",
        "hub_ext/example.py:14 reaches .admission (call a BerthService method instead)",
    ]
    assert sorted(found) == sorted(expected)

"""No import circles among jupyter_berth's modules, checked on the source (no engine needed).

The module graph is built by an AST pass over the four folders (the same one the layering test
uses): an edge for every ``import`` of a Berth module, at module level or inside a function
(a lazy import that closes a circle hides the circle, it does not remove it), except those
under ``if TYPE_CHECKING:``. ``from package import name`` is an edge to the submodule when
``name`` is one, else to the package. A circle is reported with its path, e.g.
``jupyter_berth.a → jupyter_berth.b → jupyter_berth.a``.
"""

from __future__ import annotations

import ast
from pathlib import Path

from .test_layering import LAYERS, ROOT, module_name


def _type_checking_lines(tree: ast.AST) -> set[int]:
    """Lines inside ``if TYPE_CHECKING:`` blocks (imports there never run)."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = test.id if isinstance(test, ast.Name) else test.attr if isinstance(test, ast.Attribute) else ""
            if name == "TYPE_CHECKING":
                for child in node.body:
                    lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def module_files() -> dict[str, Path]:
    found = {}
    for folder in LAYERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if "recipes" in path.parts:
                continue
            found[module_name(folder, path)] = path
    return found


def graph() -> dict[str, set[str]]:
    files = module_files()
    edges: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        tree = ast.parse(path.read_text(), str(path))
        skip = _type_checking_lines(tree)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(tree):
            if getattr(node, "lineno", None) in skip:
                continue
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")
                    parts = parts[: len(parts) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names]
            for target in targets:
                while target and target not in files:  # `import jupyter_berth.x.y.Name` style: the module part
                    target = target.rpartition(".")[0]
                if target and target != name:
                    edges[name].add(target)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One circle per strongly connected component of more than one module (Tarjan), as a path."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(component)

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return [_path_through(sorted(c), edges) for c in components]


def _path_through(component: list[str], edges: dict[str, set[str]]) -> list[str]:
    """A circle inside ``component``, from its first module back to it (breadth-first, shortest)."""
    start, members = component[0], set(component)
    previous: dict[str, str] = {}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(edges[v] & members):
            if w == start:
                path = [v]
                while path[-1] != start:
                    path.append(previous[path[-1]])
                return [start, *reversed(path[:-1]), start] if v != start else [start, start]
            if w not in previous:
                previous[w] = v
                queue.append(w)
    return component


def test_the_graph_sees_lazy_imports_and_from_package_imports():
    edges = graph()
    assert "jupyter_berth.ledger" in edges["jupyter_berth.area"]  # `from .ledger import Ledger`: the package
    assert "jupyter_berth.runtime.base" in edges["jupyter_berth.area"]  # `from .runtime.base import Runtime`
    assert "jupyter_berth.usage.sampling" in edges["jupyter_berth.usage.manager"]  # imported inside a method


def test_there_are_no_import_cycles():
    found = cycles(graph())
    assert not found, "import circles:\n" + "\n".join(" → ".join(c) for c in found)

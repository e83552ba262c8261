"""The package's shape: layers import only downwards, no import circles, small folders, and
typer and rich only in the command line."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "dnhcli"
# Lowest first: a module may import its own layer's modules (without a circle) and any lower layer.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors", "manifest", "progress", "folders"),
    ("data", "index", "stores"),
    ("models",),
    ("deploy",),
    ("ingest",),
    ("evaluation", "retrieval"),
    ("training",),
    ("bench",),
    ("serve",),
    ("cli", "__main__"),
)
MAX_MODULES = 12


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every dnhcli module that `path` imports, at any depth (functions and TYPE_CHECKING too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return {name for name in found if name.startswith("dnhcli")}


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        if name == "dnhcli":
            continue  # the root re-exports the public API lazily, from every layer
        graph[name] = {m for m in _imports(path) if m in modules and m != name and m != "dnhcli"}
    return graph


def _unit(module: str) -> str:
    """The layer unit of a module: its subpackage, or the root module's own name."""
    return module.split(".")[1] if module.count(".") >= 1 else module


def _layer(module: str) -> int:
    unit = _unit(module)
    for rank, units in enumerate(LAYERS):
        if unit in units:
            return rank
    raise AssertionError(f"{module} belongs to no layer: add its folder to LAYERS")


def test_layers_import_only_downwards() -> None:
    upward = [f"{a} -> {b}" for a, deps in _graph().items() for b in deps if _layer(b) > _layer(a)]
    assert upward == []


def test_no_import_circles() -> None:
    graph = _graph()
    state: dict[str, int] = {}
    circles: list[str] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                circles.append(" -> ".join([*stack[stack.index(nxt):], nxt]))
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert circles == []


def test_no_circles_between_subpackages() -> None:
    edges = {(_unit(a), _unit(b)) for a, deps in _graph().items() for b in deps if _unit(a) != _unit(b)}
    assert sorted((a, b) for a, b in edges if (b, a) in edges) == []


@pytest.mark.parametrize("folder", sorted({p.parent for p in PACKAGE.rglob("*.py")}), ids=lambda p: p.name)
def test_folders_hold_at_most_twelve_modules(folder: Path) -> None:
    assert len(list(folder.glob("*.py"))) <= MAX_MODULES


def test_only_the_command_line_imports_typer_or_rich() -> None:
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if _unit(_module_name(path)) == "cli":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in {"typer", "rich"}]
    assert offenders == []

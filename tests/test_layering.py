"""Imports point one way: shared core ``nsrom`` <- stage packages <- ``runner``; no cycles.

Read from the source with ``ast`` (nothing is imported), so the test also
catches imports inside functions.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LEVEL = {"nsrom": 0, "classification": 1, "segmentation": 1, "runner": 2}
"""A package may import only packages of a lower level (and itself)."""


def _modules(package: str) -> dict[str, Path]:
    root = REPO / package
    mods = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(REPO).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        mods[name] = path
    return mods


def _imports(name: str, path: Path) -> set[str]:
    """Absolute names of the modules ``name`` imports (relative imports resolved)."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            found.add(prefix)
            found.update(f"{prefix}.{alias.name}" for alias in node.names)
    return found


ALL = {name: path for package in LEVEL for name, path in _modules(package).items()}
GRAPH = {name: {m for m in _imports(name, path) if m in ALL and m != name} for name, path in ALL.items()}


@pytest.mark.parametrize("package", sorted(LEVEL))
def test_packages_import_only_lower_levels(package):
    wrong = []
    for name, targets in GRAPH.items():
        if name.split(".")[0] != package:
            continue
        for target in targets:
            top = target.split(".")[0]
            if top != package and LEVEL[top] >= LEVEL[package]:
                wrong.append(f"{name} imports {target}")
    assert not wrong, "\n".join(wrong)


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycle_between_modules():
    # A package imports its submodules through __init__; edges into a package's own
    # __init__ from its children are not cycles of the code, so leave those out.
    graph = {
        name: {t for t in targets if not (name.startswith(t + ".") and ALL[t].name == "__init__.py")}
        for name, targets in GRAPH.items()
    }
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))


def test_the_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None

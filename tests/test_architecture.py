"""The layout rules: the tenancy core knows nothing of the identity app or the product, and no
module imports another that (directly or not) imports it back."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
APPS = ("ameide", "tenants", "accounts", "workflows")

pytestmark = pytest.mark.django_db(databases=[])


def _modules() -> dict[str, Path]:
    found = {}
    for app in APPS:
        for path in (ROOT / app).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def _imports(path: Path, *, anywhere: bool) -> set[str]:
    """Project modules `path` imports: at module level, or anywhere (functions too)."""
    tree = ast.parse(path.read_text())
    nodes = ast.walk(tree) if anywhere else tree.body
    names = set()
    for node in nodes:
        if isinstance(node, ast.If) and not anywhere:
            continue  # TYPE_CHECKING blocks are for type checkers only
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {n for n in names if n.split(".")[0] in APPS}


def test_the_tenancy_core_imports_nothing_of_the_other_apps():
    offenders = {
        f"{name} imports {target}"
        for name, path in _modules().items()
        if name.startswith("tenants")
        for target in _imports(path, anywhere=True)
        if target.split(".")[0] in ("accounts", "workflows")
    }
    assert sorted(offenders) == []


def test_no_import_cycles_between_modules():
    modules = _modules()
    graph = {
        name: {t for t in _imports(path, anywhere=False) if t in modules and t != name}
        for name, path in modules.items()
    }
    cycles = []

    def visit(node: str, stack: list[str], on_stack: set[str], done: set[str]) -> None:
        on_stack.add(node)
        stack.append(node)
        for target in sorted(graph[node]):
            if target in on_stack:
                cycles.append(stack[stack.index(target) :] + [target])
            elif target not in done:
                visit(target, stack, on_stack, done)
        stack.pop()
        on_stack.discard(node)
        done.add(node)

    done: set[str] = set()
    for name in sorted(graph):
        if name not in done:
            visit(name, [], set(), done)
    # A package's __init__ importing its submodules is not a cycle worth reporting.
    real = [c for c in cycles if not all(c[0].startswith(m) or m.startswith(c[0]) for m in c)]
    assert real == []

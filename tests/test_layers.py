"""The import graph of our own code: one direction, downwards, and no cycles.

Production layers, bottom first (a module may import its own package and any package of
a lower layer, nothing else of ours):

    leadrelay  ->  amocrm, webhooks  ->  activities  ->  workflows  ->  api, cli, worker

`sandbox`, `bench` and `tests` are development code: they may import anything, but no
production module may import them, and no two packages may import each other in a circle.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYERS: list[set[str]] = [
    {"leadrelay"},
    {"amocrm", "webhooks"},
    {"activities"},
    {"workflows"},
    {"api", "cli", "worker"},
]
DEV_ONLY = {"sandbox", "bench", "tests"}
RANK = {package: rank for rank, layer in enumerate(LAYERS) for package in layer}
OURS = set(RANK) | DEV_ONLY

Edges = dict[str, dict[str, list[str]]]
"""package -> package it imports -> the modules (files) that import it."""


def top_package(path: Path) -> str:
    relative = path.relative_to(ROOT)
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def imported_packages(source: str, own_package: str) -> set[str]:
    """Top-level packages named by every import statement, wherever it sits (inside
    functions, `imports_passed_through` blocks and `TYPE_CHECKING` blocks too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level > 0:
                found.add(own_package)
            elif node.module:
                found.add(node.module.split(".")[0])
    return found & OURS


def import_edges(sources: Mapping[str, Iterable[tuple[str, str]]]) -> Edges:
    """`sources`: package -> (module name, source text) pairs."""
    edges: Edges = {}
    for package, modules in sources.items():
        for module, source in modules:
            for target in imported_packages(source, package) - {package}:
                edges.setdefault(package, {}).setdefault(target, []).append(module)
    return edges


def our_sources() -> dict[str, list[tuple[str, str]]]:
    sources: dict[str, list[tuple[str, str]]] = {}
    for path in sorted(ROOT.rglob("*.py")):
        relative = path.relative_to(ROOT)
        if relative.parts[0].startswith(".") or "build" in relative.parts[:1]:
            continue
        package = top_package(path)
        if package not in OURS:
            continue
        sources.setdefault(package, []).append((str(relative), path.read_text(encoding="utf-8")))
    return sources


def upward_imports(edges: Edges) -> list[str]:
    problems = []
    for package, targets in sorted(edges.items()):
        if package in DEV_ONLY:
            continue
        for target, modules in sorted(targets.items()):
            if target in DEV_ONLY:
                why = "production code imports development code"
            elif RANK[target] >= RANK[package]:
                why = "not a lower layer"
            else:
                continue
            problems.append(f"{package} -> {target} ({why}): {', '.join(sorted(modules))}")
    return problems


def cycles(edges: Edges) -> list[list[str]]:
    """Every elementary cycle's package list, each found once from its smallest name."""
    found: list[list[str]] = []

    def walk(start: str, path: list[str]) -> None:
        for target in sorted(edges.get(path[-1], {})):
            if target == start:
                found.append([*path, start])
            elif target > start and target not in path:
                walk(start, [*path, target])

    for start in sorted(edges):
        walk(start, [start])
    return found


def test_production_imports_only_lower_layers():
    assert upward_imports(import_edges(our_sources())) == []


def test_no_cycles_between_our_packages():
    assert cycles(import_edges(our_sources())) == []


def test_every_production_package_has_a_layer():
    """A new top-level package must be placed in LAYERS (or DEV_ONLY) to be checked."""
    packages = {
        path.parent.name
        for path in ROOT.glob("*/__init__.py")
        if not path.parent.name.startswith(".")
    }
    packages |= {path.stem for path in ROOT.glob("*.py")}
    assert packages - OURS == set()


def test_the_check_catches_an_upward_import_and_a_cycle():
    edges = import_edges(
        {
            "leadrelay": [("leadrelay/x.py", "from workflows.lead import LeadWorkflow\n")],
            "workflows": [("workflows/y.py", "def f():\n    import leadrelay.models\n")],
            "api": [("api/z.py", "from sandbox import app\nfrom . import deps\n")],
            "tests": [("tests/t.py", "import worker\n")],
        }
    )
    assert upward_imports(edges) == [
        "api -> sandbox (production code imports development code): api/z.py",
        "leadrelay -> workflows (not a lower layer): leadrelay/x.py",
    ]
    assert cycles(edges) == [["leadrelay", "workflows", "leadrelay"]]

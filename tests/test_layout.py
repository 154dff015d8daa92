"""The layout holds: no import cycles between the product's modules, no module
reaching into another's private names (a name that starts with one underscore), and no
module past a few hundred lines (:data:`MAX_LINES`, benchmarks included).

Imports inside functions are not counted: a deferred import is how a module keeps a
heavy dependency off its import path, and it cannot close a cycle at import time.
Imports under ``if TYPE_CHECKING:`` never run, so they are not counted either.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("streams", "schemas", "monitors", "dashboard", "lastmile")
# One idea a module: past this, a module holds two and should be split along its seam.
MAX_LINES = 600


@dataclass
class Module:
    name: str
    path: Path
    is_package: bool
    imports: set[str] = field(default_factory=set)
    private: list[str] = field(default_factory=list)


def modules(root: Path = ROOT) -> dict[str, Module]:
    found: dict[str, Module] = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            name = ".".join(parts[:-1] if is_package else parts)
            found[name] = Module(name, path, is_package)
    for module in found.values():
        _read_imports(module, found)
    return found


def _import_time_nodes(body: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If):
            if "TYPE_CHECKING" not in ast.unparse(node.test):
                yield from _import_time_nodes(node.body + node.orelse)
        elif isinstance(node, ast.Try):
            yield from _import_time_nodes(node.body + node.orelse + node.finalbody)
            for handler in node.handlers:
                yield from _import_time_nodes(handler.body)


def _read_imports(module: Module, found: dict[str, Module]) -> None:
    tree = ast.parse(module.path.read_text(), str(module.path))
    package = module.name if module.is_package else module.name.rpartition(".")[0]
    for node in _import_time_nodes(tree.body):
        if isinstance(node, ast.Import):
            module.imports.update(a.name for a in node.names if a.name in found)
            continue
        if node.level:
            base = package.split(".")[: len(package.split(".")) - node.level + 1]
            target = ".".join([*base, node.module] if node.module else base)
        else:
            target = node.module or ""
        if target not in found:
            continue
        for alias in node.names:
            submodule = f"{target}.{alias.name}"
            if submodule in found:
                module.imports.add(submodule)
                continue
            module.imports.add(target)
            if alias.name.startswith("_") and not alias.name.startswith("__"):
                module.private.append(f"{target}.{alias.name}")


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm),
    plus any module importing itself.

    >>> cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}})
    [['a', 'b']]
    """
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph.get(node, ()):
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


@pytest.fixture(scope="module")
def tree() -> dict[str, Module]:
    return modules()


def test_the_product_has_modules_to_check(tree: dict[str, Module]) -> None:
    # Guards the two checks below against passing on an empty or mis-rooted walk.
    assert {"streams.roles.scorer", "schemas.codec", "monitors.drift"} <= set(tree)
    assert "streams.kafka.lane" in tree["streams.roles.scorer"].imports


def test_no_import_cycles(tree: dict[str, Module]) -> None:
    graph = {name: module.imports for name, module in tree.items()}
    assert cycles(graph) == []


def test_no_module_imports_another_modules_private_names(tree: dict[str, Module]) -> None:
    reaching = {name: module.private for name, module in tree.items() if module.private}
    assert reaching == {}


def test_no_module_is_past_a_few_hundred_lines(tree: dict[str, Module]) -> None:
    paths = [m.path for m in tree.values()] + sorted((ROOT / "bench").glob("*.py"))
    sizes = {str(p.relative_to(ROOT)): len(p.read_text().splitlines()) for p in paths}
    assert "bench/scoring.py" in sizes
    assert {path: n for path, n in sizes.items() if n > MAX_LINES} == {}


def test_the_checks_see_a_cycle_and_a_private_import(tmp_path: Path) -> None:
    package = tmp_path / "streams"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from streams.b import _helper\n")
    (package / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import streams.c\n"
        "from . import a\n\ndef _helper():\n    from streams import c\n"
    )
    (package / "c.py").write_text("import streams.a\n")
    for other in PACKAGES[1:]:
        (tmp_path / other).mkdir()
    found = modules(tmp_path)
    assert found["streams.a"].private == ["streams.b._helper"]
    # b -> c only under TYPE_CHECKING or in a function: not an import-time edge.
    assert found["streams.b"].imports == {"streams.a"}
    assert cycles({name: m.imports for name, m in found.items()}) == [["streams.a", "streams.b"]]

"""The imports follow the data path (docs/architecture.md, "The rooms and the rule").

Every module under ``layers/notify/oxoflow_notify`` sits in one room. A room imports only the rooms
before it in the walk of one event, inbound -> config -> formats -> outbound -> pipeline -> aws,
then the composition root (``wiring``) and ``tools`` on top; the shared root modules (``errors``,
``observability``, ``defaults``, the package itself) may be imported by every room and import no
room. Imports under ``if TYPE_CHECKING:`` are annotations, not edges, and are not checked; an
import inside a function is an edge like any other.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "layers" / "notify" / "oxoflow_notify"
ORDER = ("inbound", "config", "formats", "outbound", "pipeline", "aws", "wiring", "tools")
SHARED = "shared"
SHARED_MODULES = frozenset(
    {"oxoflow_notify", "oxoflow_notify.errors", "oxoflow_notify.observability", "oxoflow_notify.defaults", "oxoflow_notify.lazy"}
)
RULE = "a room imports only the rooms before it: " + " -> ".join(ORDER) + " (errors, observability, defaults: every room)"


@dataclass(frozen=True)
class Edge:
    importer: str
    imported: str
    path: Path
    line: int

    def where(self) -> str:
        return f"{self.path.relative_to(PACKAGE.parent)}:{self.line}"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def room(module: str) -> str:
    """The room of a module: its sub-package, ``wiring`` for the composition root, or shared."""
    if module in SHARED_MODULES:
        return SHARED
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in ORDER:
        return parts[1]
    raise AssertionError(f"{module} is in no room: add it to ORDER or SHARED_MODULES in {Path(__file__).name}")


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _runtime_imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement outside ``if TYPE_CHECKING:`` blocks, at any depth."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def _targets(module: str, path: Path, node: ast.Import | ast.ImportFrom) -> Iterator[str]:
    """The package modules one import statement loads (``from pkg import sub`` loads ``pkg.sub``)."""
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names if alias.name in MODULES)
        return
    base = node.module or ""
    if node.level:
        package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        for _ in range(node.level - 1):
            package = package.rsplit(".", 1)[0]
        base = f"{package}.{base}" if base else package
    if base not in MODULES:
        return
    subs = [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in MODULES]
    yield from subs or [base]


def edges() -> list[Edge]:
    found: list[Edge] = []
    for module, path in sorted(MODULES.items()):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in _runtime_imports(tree):
            found.extend(Edge(module, target, path, node.lineno) for target in _targets(module, path, node) if target != module)
    return sorted(found, key=lambda e: (e.importer, e.line))


def allowed(importer: str, imported: str) -> bool:
    a, b = room(importer), room(imported)
    if b == SHARED:
        return True
    if a == SHARED:
        return False
    return ORDER.index(b) <= ORDER.index(a)


def test_every_module_is_in_a_room() -> None:
    # given every module of the package
    # then each has a room (a new sub-package must be placed in the order before it can import anything)
    assert {room(m) for m in MODULES} <= {*ORDER, SHARED}


def test_every_runtime_import_follows_the_data_path() -> None:
    # given every import the package runs (not the ones under TYPE_CHECKING)
    found = edges()
    assert len(found) > 100, "the parser found too few imports to be reading the package"
    # when each is checked against the order of the rooms
    against = [e for e in found if not allowed(e.importer, e.imported)]
    # then none goes back up the walk
    assert not against, "\n".join(f"{e.where()}: {e.importer} imports {e.imported}; {RULE}" for e in against)


def test_no_two_rooms_import_each_other() -> None:
    # given the rooms each room imports at run time
    graph: dict[str, set[str]] = {}
    for e in edges():
        if room(e.importer) != room(e.imported):
            graph.setdefault(room(e.importer), set()).add(room(e.imported))
    # then no room reaches itself again through the others
    cycles = [r for r in graph if r in _reachable(graph, r)]
    assert not cycles, f"rooms that import each other, directly or around a loop: {sorted(cycles)}; {RULE}"


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = list(graph.get(start, ()))
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo.extend(graph.get(node, ()))
    return seen


def test_the_rule_reads_a_planted_import_against_it() -> None:
    # given a formats module that imports the pipeline at run time, and one that does so only for mypy
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from oxoflow_notify.pipeline import digest\n"
        "def late():\n"
        "    from ..pipeline import retry\n"
    )
    path = PACKAGE / "formats" / "planted.py"
    tree = ast.parse(source)
    # when its imports are read as the test reads the package's
    targets = [t for node in _runtime_imports(tree) for t in _targets("oxoflow_notify.formats.planted", path, node)]
    # then only the run-time one is an edge, and it is against the rule
    assert targets == ["oxoflow_notify.pipeline.retry"]
    assert not allowed("oxoflow_notify.formats.planted", "oxoflow_notify.pipeline.retry")
    assert allowed("oxoflow_notify.pipeline.retry", "oxoflow_notify.formats")

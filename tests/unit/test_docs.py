"""docs/architecture.md names what exists: every module of the layer, every subpackage, every format."""

from __future__ import annotations

import ast
import re

from oxoflow_notify.formats import FORMATS
from tests.conftest import ROOT

ARCHITECTURE = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
PACKAGE = ROOT / "layers" / "notify" / "oxoflow_notify"


def module_table() -> dict[str, str]:
    """The first column of the "Modules" table (one row may name several modules) -> its row."""
    section = ARCHITECTURE.split("## Modules", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, str] = {}
    for line in section.splitlines():
        if line.startswith("| `"):
            first = line.split("|")[1]
            for name in re.findall(r"`([^`]+)`", first):
                rows[name.rstrip("/")] = line
    return rows


def layer_modules() -> set[str]:
    """Every module of the layer by its import path under the package (``config`` for ``config/__init__.py``),
    walking the subpackages; ``formats`` counts as one, its renderers listed in its row."""
    modules = {"formats"}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[0] == "formats" or parts == ("__init__",):
            continue
        if parts[-1] == "__init__":
            # a subpackage's __init__ is a module only when it holds code, not just its docstring
            body = ast.parse(path.read_text(encoding="utf-8")).body
            if len(body) == 1 and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                continue
            parts = parts[:-1]
        modules.add(".".join(parts))
    return modules


def test_the_module_table_lists_every_module_of_the_layer() -> None:
    modules = layer_modules()
    listed = set(module_table())
    assert modules - listed == set(), "add a row to docs/architecture.md's module table for each"
    assert listed - modules == set(), "docs/architecture.md's module table names modules that do not exist"


def test_the_formats_row_names_every_format() -> None:
    row = module_table()["formats"]
    assert [name for name in FORMATS if f"`{name}`" not in row] == []


def test_each_subpackage_has_its_section_in_the_module_table() -> None:
    subpackages = {path.parent.name for path in PACKAGE.glob("*/__init__.py")}
    section = ARCHITECTURE.split("## Modules", 1)[1].split("\n## ", 1)[0]
    headed = set(re.findall(r"^### `([a-z_]+)/`", section, flags=re.M))
    assert subpackages == headed, "give each subpackage a ### `name/` section in docs/architecture.md's module table"

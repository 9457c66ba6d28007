"""docs/architecture.md names what exists: every module of the layer, every format."""

from __future__ import annotations

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


def test_the_module_table_lists_every_module_of_the_layer() -> None:
    modules = {path.stem for path in PACKAGE.glob("*.py") if path.stem != "__init__"} | {"formats"}
    listed = set(module_table())
    assert modules - listed == set(), "add a row to docs/architecture.md's module table for each"
    assert listed - modules == set(), "docs/architecture.md's module table names modules that do not exist"


def test_the_formats_row_names_every_format() -> None:
    row = module_table()["formats"]
    assert [name for name in FORMATS if f"`{name}`" not in row] == []

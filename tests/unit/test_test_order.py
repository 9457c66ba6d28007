"""The order `make test` hands files to its workers (tests/conftest.py): the longest first."""

from __future__ import annotations

import re

from tests.conftest import LONGEST_FIRST, ROOT


def test_every_file_named_longest_first_exists() -> None:
    # a renamed file would silently go back to the end of the queue, and one worker would run it alone
    missing = [path for path in LONGEST_FIRST if not (ROOT / path).is_file()]
    assert missing == []


def test_make_test_keeps_the_collected_order() -> None:
    # without --no-loadscope-reorder xdist orders the files by their number of tests, ignoring LONGEST_FIRST
    recipe = re.search(r"^test:.*\n\t(.+)$", (ROOT / "Makefile").read_text(encoding="utf-8"), re.MULTILINE)
    assert recipe is not None
    assert "--dist loadfile" in recipe.group(1) and "--no-loadscope-reorder" in recipe.group(1)

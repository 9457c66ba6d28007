"""The shell blocks of the user-facing docs, as the docs-run tests execute them.

A block is a fenced ```sh or ```bash block. The HTML comment on the line right above its fence
says whether it runs locally:

- none: it runs, as written, against the local stack (`make up`), and must exit 0 with no traceback;
- ``<!-- needs: aws -->``: it needs a real AWS account (deploy, teardown) and is not run;
- ``<!-- not run: REASON -->``: it is not run, for the reason given (it is what runs the tests).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# In the order a reader meets them; docs/local.md last, since its block ends with `make down`.
RUN_DOCS = ("README.md", "docs/publishing.md", "docs/operations.md", "docs/local.md")
_FENCE = re.compile(r"^```(sh|bash)\s*$")
_MARK = re.compile(r"^<!--\s*(needs:\s*aws|not run:\s*(?P<why>.+?))\s*-->\s*$")


@dataclass(frozen=True)
class Block:
    doc: str
    line: int  # of the opening fence, 1-based
    text: str
    skip: str | None  # why it is not run locally, or None

    @property
    def name(self) -> str:
        return f"{self.doc}:{self.line}"


def blocks(doc: str) -> list[Block]:
    """Every sh/bash block of one doc, in order, with its marker."""
    lines = (ROOT / doc).read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        if _FENCE.match(lines[i]):
            start = i
            i += 1
            body = []
            while i < len(lines) and lines[i].strip() != "```":
                body.append(lines[i])
                i += 1
            mark = _MARK.match(lines[start - 1].strip()) if start else None
            skip = None
            if mark:
                skip = "needs a real AWS account" if mark.group(1).startswith("needs") else mark.group("why")
            found.append(Block(doc, start + 1, "\n".join(body) + "\n", skip))
        i += 1
    return found


def all_blocks() -> list[Block]:
    return [block for doc in RUN_DOCS if (ROOT / doc).is_file() for block in blocks(doc)]

"""Refuse a whole ``.oxoflow`` file over a limit (size, nesting, integer length, webhook count), saying where when it can."""

from __future__ import annotations

import re
from typing import Any

from oxoflow_notify.errors import ConfigError, shown

from . import MAX_CONFIG_BYTES, MAX_NESTING, MAX_WEBHOOKS

_LONG_NUMBER = re.compile(r"(?<![\w.])[+-]?[0-9][0-9_]{4300,}")


def too_big(source: str, size: int | None) -> ConfigError:
    """The error for a file over MAX_CONFIG_BYTES (the store and the command line say it too);
    ``size`` None when only "more than the limit" is known (a body read no further)."""
    shown_size = f"{size:,} bytes" if size is not None else f"over {MAX_CONFIG_BYTES:,} bytes"
    return ConfigError(f"{source}: the file is {shown_size}; the limit is {MAX_CONFIG_BYTES:,} bytes (1 MiB)")


def too_deep(source: str, text: str, key: str | None = None) -> ConfigError:
    """The error for a file nested past MAX_NESTING, with the key and line when they can be found."""
    line, top = _DeepestPlace(text).scan()
    key = key if key is not None else top
    what = f"key '{shown(key)}'" if key is not None else "the file"
    where = f", at line {line}" if line else ""
    return ConfigError(f"{source}: {what} is nested more than {MAX_NESTING} levels deep (tables and arrays){where}; "
                       f"the limit is {MAX_NESTING}")  # fmt: skip


def too_long_number(source: str, text: str) -> ConfigError:
    """The error for an integer tomli cannot convert (over Python's 4,300 digits), with its key and
    line when they can be found."""
    match = _LONG_NUMBER.search(text)
    if match is None:
        return ConfigError(f"{source}: a number in the file is too long to read (integers have at most 4,300 digits)")
    line_start = text.rfind("\n", 0, match.start()) + 1
    line = text.count("\n", 0, match.start()) + 1
    key = _first_key(text, line_start) if "=" in text[line_start : match.start()] else None
    what = f"key '{shown(key)}' holds" if key else "the file holds"
    return ConfigError(f"{source}: {what} an integer too long to read, at line {line} (integers have at most 4,300 digits)")


def check_count(source: str, count: int, header_lines: list[int]) -> None:
    """Refuse a file with more than MAX_WEBHOOKS webhooks, pointing at the first one too many when its line is known."""
    if count > MAX_WEBHOOKS:
        first_extra = f" (webhook #{MAX_WEBHOOKS + 1} is at line {header_lines[MAX_WEBHOOKS]})" if len(header_lines) > MAX_WEBHOOKS else ""
        raise ConfigError(f"{source}: has {count:,} webhooks; at most {MAX_WEBHOOKS} are allowed in one file{first_extra}")


def check_nesting(document: dict[str, Any], source: str, text: str) -> None:
    """Refuse tables and arrays nested deeper than MAX_NESTING, anywhere in the file (ignored
    tables included): walked iteratively, so no depth can exhaust the stack here or later."""
    stack: list[tuple[Any, int, str]] = [(value, 1, key) for key, value in document.items()]
    while stack:
        item, depth, top = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > MAX_NESTING:
            raise too_deep(source, text, top)
        stack.extend((child, depth + 1, top) for child in children)


# Where a too-deep file goes deepest, for the message (tomli reports no position): a scan of the
# tokens that make structure. Strings and comments are skipped whole, so their brackets and dots
# do not count. Approximate by design; it only ever runs for a file already refused.
_TOKENS = re.compile(
    r'"""(?:[^\\]|\\.)*?"""'  # multi-line basic string
    r"|'''.*?'''"  # multi-line literal string
    r'|"(?:[^"\\\n]|\\.)*"'  # basic string
    r"|'[^'\n]*'"  # literal string
    r"|#[^\n]*"  # comment
    r"|[\[\]{}=.\n]",
    re.DOTALL,
)
_HEADER = re.compile(r"[ \t]*(\[\[?)[ \t]*([^\]\n]*)")
_FIRST_KEY = re.compile(r"""[ \t]*(?:"([^"\n]*)"|'([^'\n]*)'|([A-Za-z0-9_-]+))""")


def _first_key(text: str, start: int) -> str | None:
    match = _FIRST_KEY.match(text, start)
    return next((g for g in match.groups() if g is not None), None) if match else None


class _DeepestPlace:
    """(line, top-level key) where a file nests deepest: [table.headers], dotted.keys and inline
    arrays and tables together."""

    table_key: str | None
    statement_key: str | None

    def __init__(self, text: str) -> None:
        self.text = text
        self.best: tuple[int, int | None, str | None] = (0, None, None)  # (level, line, key)
        self.line, self.line_start, self.depth = 1, 0, 0
        self.table_levels, self.table_key = 0, None  # the current [table] or [[array]] header
        self.in_key, self.key_dots, self.statement_key = True, 0, None  # the key of the current key = value
        self.skip_to = -1

    def scan(self) -> tuple[int | None, str | None]:
        for token in _TOKENS.finditer(self.text):
            if token.start() >= self.skip_to:
                self._token(token.group(), token.start(), token.end())
        return self.best[1], self.best[2]

    def _note(self, level: int, key: str | None) -> None:
        if level > self.best[0]:
            self.best = (level, self.line, key)

    def _token(self, kind: str, at: int, end: int) -> None:
        if kind == "\n" or kind.startswith(('"""', "'''")):
            self._newlines(kind, end)
        elif kind == "[" and self._header(at):
            return
        elif self.depth == 0 and self.in_key and kind in (".", "="):
            self._key_part(kind)
        elif kind in ("[", "{"):
            self.depth += 1
            key = self.table_key or self.statement_key or _first_key(self.text, self.line_start)
            self._note(self.table_levels + self.key_dots + self.depth, key)
        elif kind in ("]", "}"):
            self.depth = max(0, self.depth - 1)

    def _newlines(self, kind: str, end: int) -> None:
        self.line += kind.count("\n")
        if kind == "\n":
            self.line_start = end
            if self.depth == 0:
                self.in_key, self.key_dots, self.statement_key = True, 0, None

    def _header(self, at: int) -> bool:
        """Whether ``at`` opens a [table] or [[array]] header line: then its levels are the table's, and the rest of its line is skipped."""
        if self.depth or not self.in_key or self.text[self.line_start : at].strip():
            return False
        header = _HEADER.match(self.text, self.line_start)
        if header is None:
            return False
        self.table_levels = header.group(2).count(".") + 1 + (header.group(1) == "[[")
        self.table_key = _first_key(self.text, header.start(2))
        self._note(self.table_levels, self.table_key)
        newline = self.text.find("\n", at)
        self.skip_to = len(self.text) if newline == -1 else newline
        return True

    def _key_part(self, kind: str) -> None:
        self.statement_key = self.statement_key or _first_key(self.text, self.line_start)
        if kind == ".":
            self.key_dots += 1
        else:
            self.in_key = False
            self._note(self.table_levels + self.key_dots, self.table_key or self.statement_key)

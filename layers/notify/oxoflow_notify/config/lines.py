"""Where each key of a webhook entry is written, so a problem is reported at its key's own line.

tomli reports no positions, so the text is scanned once more (only when a file has a problem): a
statement starts at the beginning of a line that is inside no string, array or inline table; it is
a table header (``[a.b]``, ``[[webhooks]]``) or a key (bare, "quoted" or 'literal', dotted) and
``=``. A key written as a sub-table (``[webhooks.headers]``) is at that header's line. Where a key
cannot be found (a default, or an entry written inline) its entry's header line stands in.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

_SPECIAL = re.compile(r"\"\"\"|'''|[\"'#\[\]{}\n]")
_BARE = re.compile(r"[A-Za-z0-9_-]+")
_KEY = re.compile(r"(?:unknown )?key '([^']*)'")
_LINE = re.compile(r"\(line (\d+)\)")
# oxo-flow's spelling of a key that its translation renames, for a problem worded in ours.
ALIASES = {"timeout": "timeout_secs", "max_attempts": "max_retries"}

Part = tuple[int | None, str]  # (line, one problem as a whole message)


@dataclass(frozen=True)
class Statement:
    line: int
    kind: str  # "table", "array" (a [[...]] header) or "key"
    path: tuple[str, ...]


def statements(text: str) -> Iterator[Statement]:
    """Every table header and key of a TOML text (one already parsed by tomli), with its line."""
    pos, line, depth, size = 0, 1, 0, len(text)
    fresh = True  # at the start of a line outside any value: a statement may begin here
    while pos < size:
        if fresh:
            fresh = False
            start = _skip_blank(text, pos)
            found = _statement(text, start, line)
            if found is not None:
                yield found[0]
                pos = found[1]
        match = _SPECIAL.search(text, pos)
        if match is None:
            return
        mark, pos = match.group(), match.end()
        if mark == "\n":
            line += 1
            fresh = depth == 0
        elif mark == "#":
            newline = text.find("\n", pos)
            pos = size if newline < 0 else newline
        elif mark in ("[", "{"):
            depth += 1
        elif mark in ("]", "}"):
            depth = max(0, depth - 1)
        else:
            end = _string_end(text, pos, mark)
            line += text.count("\n", pos, end)
            pos = end


def _skip_blank(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r":
        pos += 1
    return pos


def _statement(text: str, pos: int, line: int) -> tuple[Statement, int] | None:
    """The header or key statement at ``pos``, and where its value (or the header's rest) starts."""
    if text.startswith("[[", pos):
        path, end = _key_path(text, pos + 2)
        return (Statement(line, "array", path), text.index("]]", end) + 2) if path else None
    if text.startswith("[", pos):
        path, end = _key_path(text, pos + 1)
        return (Statement(line, "table", path), text.index("]", end) + 1) if path else None
    path, end = _key_path(text, pos)
    if path and text.startswith("=", end):
        return Statement(line, "key", path), end + 1
    return None


def _key_path(text: str, pos: int) -> tuple[tuple[str, ...], int]:
    """A dotted key (bare, "basic" or 'literal' parts) and the position after it and its blanks."""
    parts: list[str] = []
    while True:
        pos = _skip_blank(text, pos)
        if text.startswith('"', pos):
            end = _string_end(text, pos + 1, '"')
            raw = text[pos:end]
            try:
                parts.append(str(json.loads(raw)))
            except ValueError:
                parts.append(raw[1:-1])
        elif text.startswith("'", pos):
            end = _string_end(text, pos + 1, "'")
            parts.append(text[pos + 1 : end - 1])
        else:
            match = _BARE.match(text, pos)
            if match is None:
                return (), pos
            parts.append(match.group())
            end = match.end()
        pos = _skip_blank(text, end)
        if not text.startswith(".", pos):
            return tuple(parts), pos
        pos += 1


def _string_end(text: str, pos: int, quote: str) -> int:
    """The position just after the string opened by ``quote`` just before ``pos``."""
    escapes = quote in ('"', '"""')
    while pos < len(text):
        if escapes and text[pos] == "\\":
            pos += 2
            continue
        if text.startswith(quote, pos):
            end = pos + len(quote)
            while len(quote) == 3 and text.startswith(quote[0], end) and end - pos < 5:  # """a"""" ends at the last quote
                end += 1
            return end
        if len(quote) == 1 and text[pos] == "\n":
            return pos
        pos += 1
    return len(text)


@dataclass
class KeyLines:
    """The lines of each [[webhooks]] entry's keys (in file order) and of the [webhook] table's keys."""

    webhooks: list[dict[str, int]] = field(default_factory=list)
    singular: dict[str, int] = field(default_factory=dict)


def key_lines(text: str) -> KeyLines:
    found = KeyLines()
    table: tuple[str, ...] = ()
    try:
        for statement in statements(text):
            if statement.kind != "key":
                table = statement.path
                if statement.path == ("webhooks",) and statement.kind == "array":
                    found.webhooks.append({})
            path = (*table, *statement.path) if statement.kind == "key" else statement.path
            _note(found, path, statement.line)
    except ValueError:  # an unclosed header: the text was not TOML after all
        return found
    return found


def _note(found: KeyLines, path: tuple[str, ...], line: int) -> None:
    """Record the line of a webhook key, the first time it is written."""
    if len(path) >= 2 and path[0] == "webhooks" and found.webhooks:
        found.webhooks[-1].setdefault(path[1], line)
    elif len(path) >= 2 and path[0] == "webhook":
        found.singular.setdefault(path[1], line)


@dataclass
class Place:
    """Where one webhook entry is: "[[webhooks]] #3" or "[webhook]", its header line, and (looked up
    only when a problem needs them) its keys' lines."""

    source: str
    name: str
    header: int | None
    keys: Callable[[], Mapping[str, int]] = dict

    @property
    def label(self) -> str:
        return self.name + (f" (line {self.header})" if self.header else "")

    def line_of(self, problem: str) -> int | None:
        """The line of the key a problem is about ("key 'url' ...", "unknown key 'evnts' ..."), else the header's."""
        match = _KEY.match(problem)
        if match is None:
            return self.header
        keys = self.keys()
        key = match.group(1)
        return keys.get(key) or keys.get(ALIASES.get(key, "")) or self.header

    def report(self, problems: Sequence[str]) -> tuple[str, tuple[Part, ...]]:
        """One message for the whole entry (the dead letter's), and each problem at its own line (validate's).

        The message reads "<file>: [[webhooks]] #3 (line 21): key 'url' ...; line 24: key 'digest' ...":
        each problem at its key's line, the line said again only when it changes."""
        parts: list[Part] = []
        pieces: list[str] = []
        previous: int | None = None
        for number, problem in enumerate(problems):
            line = self.line_of(problem)
            where = self.name + (f" (line {line})" if line else "")
            parts.append((line, f"{self.source}: {where}: {problem}"))
            if number == 0:
                pieces.append(f"{self.source}: {where}: {problem}")
            else:
                pieces.append(f"line {line}: {problem}" if line and line != previous else problem)
            previous = line
        return "; ".join(pieces), tuple(parts)


def header_of(label: str) -> int | None:
    """The line a label such as "[webhook] (line 9)" names."""
    match = _LINE.search(label)
    return int(match.group(1)) if match else None


@dataclass
class Places:
    """The places of a file's entries, sharing one lazy scan of its text."""

    text: str
    source: str

    @cached_property
    def lines(self) -> KeyLines:
        return key_lines(self.text)

    def webhook(self, index: int, header: int | None, count: int) -> Place:
        """[[webhooks]] entry ``index`` (from 1) of ``count``; its keys only when the scan found every entry."""

        def keys() -> Mapping[str, int]:
            found = self.lines.webhooks
            return found[index - 1] if len(found) == count else {}

        return Place(self.source, f"[[webhooks]] #{index}", header, keys)

    def singular(self, label: str) -> Place:
        return Place(self.source, label.split(" (line", 1)[0], header_of(label), lambda: self.lines.singular)

"""Untrusted JSON read safely, for events and anything else a publisher sends: SNS's size and our nesting
limits, NaN and infinities refused, integers too long to print refused, lone surrogates replaced; each
problem names its field's path.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from oxoflow_notify.errors import EventError, shown

MAX_EVENT_NESTING = 32  # objects and arrays on any path, the message object itself counted
MAX_INT_DIGITS = 4300  # Python's own int <-> text limit: a longer integer could not be rendered
_INT_BOUND = 10**MAX_INT_DIGITS
_PATH_MAX = 200  # characters of a field path a message shows


_SURROGATE = re.compile(r"[\ud800-\udfff]")
_ESCAPED_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")


def scrub(value: Any) -> Any:
    """Replace lone surrogates (valid in JSON text, invalid in UTF-8) so every format can encode."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [scrub(v) for v in value]
    if isinstance(value, dict):
        return {scrub(k): scrub(v) for k, v in value.items()}
    return value


class _HugeInt:
    """Stands in for an integer of more than MAX_INT_DIGITS digits until the walk names its field."""

    __slots__ = ()


class _Hooks:
    """json.loads hooks that note anything the walk must find and name: NaN, infinities (including
    1e999, which float() makes infinite) and integers too long to convert. An ordinary message
    sets nothing and skips the walk."""

    def __init__(self) -> None:
        self.suspect = False

    def constant(self, text: str) -> float:  # NaN, Infinity, -Infinity: not JSON, but json accepts them
        self.suspect = True
        return float(text)

    def floating(self, text: str) -> float:
        value = float(text)
        if not math.isfinite(value):
            self.suspect = True
        return value

    def integer(self, text: str) -> int | _HugeInt:
        if len(text) - text.startswith("-") > MAX_INT_DIGITS:
            self.suspect = True
            return _HugeInt()
        return int(text)


def _path(node: tuple[Any, ...] | None) -> str:
    """A node of the walk ((parent node, key or index), None at the top) as details.runs[3];
    long keys and long paths are cut."""
    parts: list[str] = []
    while node is not None:
        node, key = node
        parts.append(f"[{key}]" if isinstance(key, int) else f".{shown(key)}")
    text = "".join(reversed(parts)).removeprefix(".")
    return text if len(text) <= _PATH_MAX else text[: _PATH_MAX // 2] + "…" + text[-_PATH_MAX // 2 :]


def _where(node: tuple[Any, ...] | None, what: str) -> str:
    return f"field '{_path(node)}'" if node is not None else what


def check_json(value: Any, what: str = "message") -> None:
    """Refuse what no receiver could be sent as strict JSON: nesting beyond MAX_EVENT_NESTING,
    NaN and infinities, integers beyond MAX_INT_DIGITS, and (for objects built in Python rather
    than decoded) keys that are not strings and values that are not JSON. Iterative, so no input
    can exhaust the stack; the message names the field by its path (details.runs[3].seconds)."""
    stack: list[tuple[Any, int, tuple[Any, ...] | None]] = [(value, 1, None)]
    while stack:
        item, depth, node = stack.pop()
        if isinstance(item, (dict, list, tuple)):
            if depth > MAX_EVENT_NESTING:
                raise EventError(f"{_where(node, what)} is nested more than {MAX_EVENT_NESTING} levels deep (objects and arrays)")
            if isinstance(item, dict):
                for key, child in item.items():
                    if not isinstance(key, str):
                        raise EventError(f"{_where(node, what)} has a key that is not a string ({type(key).__name__})")
                    stack.append((child, depth + 1, (node, key)))
            else:
                stack.extend((child, depth + 1, (node, index)) for index, child in enumerate(item))
        elif item is None or isinstance(item, (str, bool)):
            continue
        elif isinstance(item, _HugeInt) or (isinstance(item, int) and not -_INT_BOUND < item < _INT_BOUND):
            raise EventError(f"{_where(node, what)} is an integer of more than {MAX_INT_DIGITS:,} digits")
        elif isinstance(item, float) and not math.isfinite(item):
            raise EventError(f"{_where(node, what)} is not a finite number (NaN and infinities are not JSON)")
        elif not isinstance(item, (int, float)):
            raise EventError(f"{_where(node, what)} is not a JSON value ({type(item).__name__})")


_JSON_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}:]')


def _deep_field(raw: str | bytes) -> str | None:
    """The top-level field under which text nests past MAX_EVENT_NESTING (for the message about
    JSON too deep to decode), found by a scan that skips strings; None if not inside an object."""
    text = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
    depth, last, field = 0, "", None
    for token in _JSON_TOKENS.finditer(text):
        kind = token.group()
        if kind.startswith('"'):
            last = kind
        elif kind == ":":
            if depth == 1:
                try:
                    field = str(json.loads(last))
                except ValueError:
                    field = last[1:-1]
        elif kind in "[{":
            depth += 1
            if depth > MAX_EVENT_NESTING:
                return field
        else:
            depth -= 1
    return None


def load_json(raw: str | bytes, what: str = "message") -> Any:
    """json.loads for text from outside: every problem is an EventError naming the field, never a
    RecursionError or OverflowError, and what it returns passes ``check_json``."""
    hooks = _Hooks()
    try:
        data = json.loads(raw, parse_constant=hooks.constant, parse_float=hooks.floating, parse_int=hooks.integer)
    except RecursionError:  # json's C decoder recurses: a few thousand levels exhaust the stack
        field = _deep_field(raw)
        where = f"field '{shown(field)}'" if field is not None else what
        raise EventError(f"{where} is nested more than {MAX_EVENT_NESTING} levels deep (objects and arrays)") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise EventError(f"{what} is not valid JSON: {exc}") from None
    brackets = raw.count("[") + raw.count("{") if isinstance(raw, str) else raw.count(b"[") + raw.count(b"{")
    if hooks.suspect or brackets > MAX_EVENT_NESTING:  # fewer brackets than the limit cannot nest past it
        check_json(data, what)
    return data

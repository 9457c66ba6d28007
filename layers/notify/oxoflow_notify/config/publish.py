"""A workflow's ``[publish]`` table: the keys that bind its events to the team that holds them.

    [publish]
    key = "ssm:/oxoflow-notify/workflows/variant-calling/publish-key"   # or a literal; a list while rotating

Anyone allowed to publish on the shared topic can publish an event naming any workflow. A workflow
whose own file has a publish key takes only events whose SNS message carries ``oxoflow-signature``
= sha256= + HMAC-SHA256(key, the exact Message bytes) under one of its keys (newest first; any one
verifies). Only the workflow's own file may set it: ``_default.oxoflow`` is read for every workflow.
Problems never quote a key or a reference (a reference may be a probe of another team's names).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from . import REFERENCE, ConfigProblem, is_reference
from .lines import Place, statements
from .scopes import DEFAULT_CONFIG_NAME, workflow_of
from .webhook_keys import unknown_keys

if TYPE_CHECKING:
    from .scopes import SecretScope

PUBLISH_KEYS = ("key",)
MIN_KEY_LENGTH = 16  # characters of a literal key: a long random string (openssl rand -hex 32)
MAX_KEYS = 8  # keys listed at once while rotating
PUBLISH_ID = "[publish]"  # the problem's id: it names no webhook


def parse_publish(
    document: Mapping[str, Any], text: str, source: str, scope: SecretScope | None = None
) -> tuple[tuple[str, ...], ConfigProblem | None]:
    """The keys of the file's [publish] table (none when it has no table), or the problem that
    makes the table unusable, each part at its key's line."""
    if "publish" not in document:
        return (), None
    table = document["publish"]
    problems = _problems(table, source, scope)
    if not problems:
        return _keys(table["key"]), None
    place = Place(source, PUBLISH_ID, *_lines(text))
    message, parts = place.report(problems)
    return (), ConfigProblem(source, 0, PUBLISH_ID, message, None, parts)


def _keys(value: str | list[str]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


def _problems(table: Any, source: str, scope: SecretScope | None) -> list[str]:
    shared = scope.shared if scope is not None else workflow_of(source) == DEFAULT_CONFIG_NAME
    if shared:
        return ["a publish key is not allowed in _default.oxoflow: that file is read for every workflow, so its key would bind them all; "
                "set [publish] key in each workflow's own file"]  # fmt: skip
    if not isinstance(table, Mapping):
        return [f'must be a table ([publish] with key = "..."), got {type(table).__name__}']
    problems = unknown_keys(table, PUBLISH_KEYS)
    if "key" not in table:
        return [*problems, "key 'key' is required: a long random string, or an ssm:/secretsmanager: reference in the workflow's scope"]
    return problems + _key_problems(table["key"], scope)


def _key_problems(value: Any, scope: SecretScope | None) -> list[str]:
    """What is wrong with ``key``: one string, or a list of them (newest first) while rotating."""
    if not isinstance(value, (str, list)):
        return [f"key 'key' must be a string, or a list of strings while rotating (newest first), got {type(value).__name__}"]
    items = [value] if isinstance(value, str) else value
    if not items:
        return ["key 'key' is an empty list: give at least one key, or remove [publish]"]
    if len(items) > MAX_KEYS:
        return [f"key 'key' lists {len(items)} keys; at most {MAX_KEYS} (newest first, while rotating)"]
    for number, item in enumerate(items, start=1):
        entry = f" (entry {number})" if isinstance(value, list) else ""
        problem = _entry_problem(item, scope)
        if problem:
            return [f"key 'key'{entry} {problem}"]
    return []


def _entry_problem(item: Any, scope: SecretScope | None) -> str | None:
    if not isinstance(item, str) or not item:
        return "must be a non-empty string"
    if not is_reference(item):
        short = len(item) < MIN_KEY_LENGTH
        return f"is shorter than {MIN_KEY_LENGTH} characters: use a long random string (openssl rand -hex 32)" if short else None
    if not REFERENCE.match(item):
        return "is not a valid reference (ssm:/path/name or secretsmanager:name[#key])"
    if scope is not None and not scope.allows(item):
        return f"is refused: {scope.rule(item)}"
    return None


def _lines(text: str) -> tuple[int | None, Any]:
    """The line of the [publish] table (or of ``publish = {...}``) and a lookup of its keys' lines."""
    header: int | None = None
    keys: dict[str, int] = {}
    table: tuple[str, ...] = ()
    try:
        for statement in statements(text):
            if statement.kind != "key":
                table = statement.path
                if statement.path == ("publish",):
                    header = header or statement.line
                continue
            path = (*table, *statement.path)
            if path == ("publish",):
                header = header or statement.line
            elif len(path) >= 2 and path[0] == "publish":
                keys.setdefault(path[1], statement.line)
    except ValueError:  # an unclosed header: no lines to give
        pass
    return header, lambda: keys

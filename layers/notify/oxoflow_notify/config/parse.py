"""Read one ``.oxoflow`` file into a Config: the TOML, the file-level limits, each entry's checks, and clashing ids.

Hostile or broken input is refused here, at config time, with a message naming the file, the
webhook and the key, never left to fail at send time: header names and values HTTP cannot carry,
hosts DNS cannot hold, and files over the limits (which make the whole file unusable).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import tomli

from oxoflow_notify.errors import ConfigError, shown

from . import MAX_CONFIG_BYTES, Config, ConfigProblem, Webhook
from .limits import check_count, check_nesting, too_big, too_deep, too_long_number
from .lines import Place, Places
from .publish import parse_publish
from .webhook_ids import identity_clashes
from .webhook_keys import Targets, parse_webhook

if TYPE_CHECKING:
    from .scopes import SecretScope

_HEADER_LINE = re.compile(r"^\s*\[\[\s*webhooks\s*\]\]")


def parse_config(raw: str | bytes, source: str, scope: SecretScope | None = None, targets: Targets | None = None) -> Config:
    """Parse one .oxoflow file. Raises ConfigError only when the whole file is unusable: not UTF-8,
    a TOML syntax error, or over a limit (MAX_CONFIG_BYTES, MAX_NESTING, MAX_WEBHOOKS).

    With a ``scope`` (secret_scope: what the file's workflow may read), a webhook whose ``url`` or
    ``secret`` references a name outside it is refused here, before anything is read from AWS.
    With ``targets`` (validate's outbound.preflight), a URL the outbound guard would refuse at send
    time is refused here too; the functions leave that to the guard itself."""
    text = _text(raw, source)
    document = _toml(text, source)
    check_nesting(document, source, text)
    located = _located(document, text, source)
    results = [parse_webhook(entry, place, index, scope, targets) for index, (entry, place) in enumerate(located, start=1)]
    config = _settled(source, located, results)
    if "publish" not in document:
        return config
    keys, problem = parse_publish(document, text, source, scope)  # the workflow's publish key (config.publish)
    return dataclasses.replace(config, publish_keys=keys, publish_problem=problem)


def _text(raw: str | bytes, source: str) -> str:
    """The file as text, refused when over MAX_CONFIG_BYTES (checked before decoding) or not UTF-8."""
    if isinstance(raw, str) and len(raw) > MAX_CONFIG_BYTES:
        raise too_big(source, None)
    size = len(raw) if isinstance(raw, bytes) else len(raw.encode("utf-8", "surrogatepass"))
    if size > MAX_CONFIG_BYTES:
        raise too_big(source, size)
    try:
        return raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{source}: not UTF-8 text (byte {exc.start})") from None


def _toml(text: str, source: str) -> dict[str, Any]:
    """The TOML document, or a ConfigError saying where it breaks (tomli's own limits included)."""
    try:
        return tomli.loads(text)
    except tomli.TOMLDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}" if getattr(exc, "lineno", None) else ""
        reason = shown(getattr(exc, "msg", str(exc)), 200)  # it may quote a key
        raise ConfigError(
            f"{source}: TOML syntax error at {where}: {reason}" if where else f"{source}: TOML syntax error: {reason}"
        ) from None
    except RecursionError:  # tomli's own limits: 400 levels of inline arrays/tables, 1,000 key parts
        raise too_deep(source, text) from None
    except ValueError:  # an integer over Python's 4,300-digit conversion limit
        raise too_long_number(source, text) from None


def _located(document: dict[str, Any], text: str, source: str) -> list[tuple[Any, Place]]:
    """Each webhook entry with its place: "[[webhooks]] #3 (line 20)", then oxo-flow's "[webhook] (line 9)"."""
    entries = document.get("webhooks", [])
    if not isinstance(entries, list):
        raise ConfigError(f"{source}: 'webhooks' must be an array of tables ([[webhooks]]), got {type(entries).__name__}")
    lines = [i for i, line in enumerate(text.splitlines(), start=1) if _HEADER_LINE.match(line)]  # tomli reports no positions
    check_count(source, len(entries) + ("webhook" in document), lines)
    places = Places(text, source)
    located: list[tuple[Any, Place]] = []
    for index, entry in enumerate(entries, start=1):
        line = lines[index - 1] if len(lines) == len(entries) else None
        located.append((entry, places.webhook(index, line, len(entries))))
    if "webhook" in document:  # oxo-flow's own [webhook] table: its dialect is imported only for files that use it
        from .oxoflow_table import singular_webhook

        singular = singular_webhook(document, text, source)
        if singular is not None:
            located.append((singular[0], places.singular(singular[1])))
    return located


def _settled(source: str, located: list[tuple[Any, Place]], results: Sequence[Webhook | ConfigProblem]) -> Config:
    """The Config of the parsed entries, refusing every entry whose id clashes with another's."""
    clashes = identity_clashes([entry for entry, _ in located], [place.label for _, place in located])
    webhooks: list[Webhook] = []
    problems: list[ConfigProblem] = []
    for position, result in enumerate(results):
        clash = clashes.get(position)
        if clash is not None:  # refused whatever else it holds: its id could name another entry
            webhook_id = result.id if isinstance(result, Webhook) else result.webhook_id
            message, parts = located[position][1].report([clash])
            result = ConfigProblem(source, position + 1, webhook_id, message, result.events, parts)
        if isinstance(result, Webhook):
            webhooks.append(result)
        else:
            problems.append(result)
    return Config(source=source, webhooks=tuple(webhooks), problems=tuple(problems))

"""Each entry's id (explicit, or derived from url and format, never from its position), and the entries whose ids clash."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

from .format_names import DEFAULT_FORMAT

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")


def webhook_id_for(url: str, fmt: str) -> str:
    """Derived id: a short digest, so the id names the webhook without revealing its URL."""
    return "wh_" + hashlib.sha256(f"{fmt}\n{url}".encode()).hexdigest()[:12]


def valid_id(value: Any) -> bool:
    """Whether an explicit ``id`` may be used: 1-64 of A-Z a-z 0-9 _ . -, not starting with 'wh_' (derived ids only)."""
    return isinstance(value, str) and bool(_ID.match(value)) and not value.startswith("wh_")


def identity(entry: Any) -> tuple[str | None, str | None]:
    """(its explicit id when that is valid, the id derived from its url and format when its url is
    a string) for one entry, valid or not: the ids its problem or its webhook is known by."""
    if not isinstance(entry, Mapping):
        return None, None
    explicit, url = entry.get("id"), entry.get("url")
    derived = webhook_id_for(url, str(entry.get("format", DEFAULT_FORMAT))) if isinstance(url, str) else None
    return (explicit if valid_id(explicit) else None), derived


def invalid_id(entry: Any) -> str:
    """The id of an entry no webhook can come from (not a table, or no string url): a digest of
    what it holds, so that, like every other id, it does not depend on the entry's position."""
    held = json.dumps(entry, sort_keys=True, default=str, ensure_ascii=False)
    return "wh_invalid_" + hashlib.sha256(held.encode("utf-8", "surrogatepass")).hexdigest()[:12]


def entry_id(entry: Any) -> str:
    """The id an entry's webhook, or its problem, is known by: its explicit ``id`` when that is
    valid, whatever else is wrong, else the one derived from its url and format, else invalid_id."""
    explicit, derived = identity(entry)
    return explicit or derived or invalid_id(entry)


def identity_clashes(entries: list[Any], labels: list[str]) -> dict[int, str]:
    """Entries (by 0-based position) that must all be refused because their ids would clash, and
    why. Retries find a webhook by its id alone, so an id two entries could answer to (the same
    url and format with a derived id, or the same id twice) would let pending retries reach the
    wrong one (with its headers and secret) once the file changes; keeping the first or numbering
    the second would make the id depend on the entry's position. An entry that is refused for
    another reason counts too: its problem carries the same id."""
    identities = [identity(entry) for entry in entries]
    by_derived: dict[str, list[int]] = {}
    by_id: dict[str, list[int]] = {}
    for position, (explicit, derived) in enumerate(identities):
        if derived is not None:
            by_derived.setdefault(derived, []).append(position)
        if explicit or derived:
            by_id.setdefault(str(explicit or derived), []).append(position)
    clashes: dict[int, str] = {}
    for group in by_derived.values():
        if len(group) > 1 and not all(identities[position][0] for position in group):
            reason = (f"key 'url': {_listed(labels, group)} have the same url and format; "
                      "give each an explicit `id` so pending retries cannot reach the wrong one")  # fmt: skip
            for position in group:
                clashes.setdefault(position, reason)
    for webhook_id, group in by_id.items():
        if len(group) > 1:
            reason = (f"key 'id': {_listed(labels, group)} have the same id '{webhook_id}'; "
                      "ids must be unique in a file so pending retries cannot reach the wrong one")  # fmt: skip
            for position in group:
                clashes.setdefault(position, reason)
    return clashes


def _listed(labels: list[str], group: list[int]) -> str:
    """'[[webhooks]] #3 (line 20), #5 (line 31) and [webhook] (line 40)'."""
    first, *rest = (labels[position] for position in group)
    # [[webhooks]] entries come first and [webhook] last, so "#5 (line 31)" reads as one of the first's kind
    names = [first, *(label.removeprefix("[[webhooks]] ") for label in rest)]
    return ", ".join(names[:-1]) + " and " + names[-1]

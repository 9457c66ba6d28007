"""Read the structured keys of a webhook (events, secret, headers, seconds) into values, or say what is wrong without quoting secrets."""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Mapping
from typing import Any

from oxoflow_notify.errors import shown
from oxoflow_notify.inbound.events import EVENT_NAMES, canonical_event_name, unknown_event_message

from . import MAX_EVENTS, MAX_HEADER_VALUE, MAX_REPORTED, REFERENCE, TIMEOUT_RANGE, is_reference

# RFC 9110 token: the characters a header name may hold.
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}")
# RFC 9110 field-value, as a sender may write it: visible ASCII, space and tab.
_FIELD_VALUE = re.compile(r"[\t\x20-\x7e]*")
# Headers a webhook may not set: framing, ours, and the signatures (a receiver trusts those to be ours).
RESERVED_HEADERS = frozenset(
    {
        "content-type",
        "content-length",
        "host",
        "transfer-encoding",
        "connection",
        "user-agent",
        "x-hub-signature-256",
        "x-oxoflow-signature",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
    }
)


def parse_events(value: Any) -> tuple[frozenset[str] | None, str | None]:
    """Return (events, error). On error, events holds the valid names so the problem is
    dead-lettered for exactly the events the user meant; None means all events ("*" anywhere).

    Bounded work whatever the list holds: at most MAX_REPORTED unknown names are quoted (each cut
    short) and given a did-you-mean; the rest are counted."""
    if value is None:
        return None, None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        return None, f"must be a list of event names, got {type(value).__name__}"
    names, everything, errors = _read_events(value)
    if len(value) > MAX_EVENTS:
        errors.insert(0, f"has {len(value):,} entries; at most {MAX_EVENTS} are allowed ({len(EVENT_NAMES)} events exist; '*' means all)")
    events = None if everything else frozenset(names) or None
    if errors:
        return events, "; ".join(errors)
    if not names and not everything:
        return None, "is empty; omit it to receive every event, or list some of " + ", ".join(EVENT_NAMES)
    return events, None


def _read_events(items: list[Any]) -> tuple[set[str], bool, list[str]]:
    """The canonical names listed, whether '*' is listed, and what is wrong with the other entries."""
    names: set[str] = set()
    everything = False
    errors: list[str] = []
    reported: set[str] = set()
    unknown = more = 0
    for number, item in enumerate(items, start=1):
        if isinstance(item, str):
            if item == "*":
                everything = True
                continue
            name = canonical_event_name(item)
            if name is not None:
                names.add(name)
                continue
            if item in reported:
                continue
        if len(errors) >= MAX_REPORTED:
            more += 1
        elif isinstance(item, str):
            unknown += 1
            reported.add(item)
            errors.append(unknown_event_message(item, expected=False))
        else:
            errors.append(f"entry {number} is not a string (got {type(item).__name__})")
    if more:
        errors.append(f"... and {more:,} more unknown or non-string entries")
    if unknown:
        errors.append(f"expected one of {', '.join(EVENT_NAMES)}")
    return names, everything, errors


def parse_secrets(value: Any) -> tuple[tuple[str, ...], str | None]:
    """One secret, or a list while rotating (newest first). Errors never quote a secret."""
    if value is None:
        return (), None
    items = value if isinstance(value, list) else [value]
    if not items:
        return (), "is an empty list; omit it for unsigned deliveries"
    for number, item in enumerate(items, start=1):
        if not isinstance(item, str) or not item:
            return (), f"entry {number} must be a non-empty string"
        if is_reference(item) and not REFERENCE.match(item):
            return (), f"entry {number} is not a valid reference (ssm:/path/name or secretsmanager:name[#key])"
    return tuple(items), None


def whsec_bytes(secret: str) -> bytes:
    """The key of a ``whsec_`` secret. Its base64 may come unpadded, as the reference libraries
    accept it (they pad before decoding); anything else that is not base64 raises binascii.Error."""
    text = secret.removeprefix("whsec_")
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def check_whsec(secret: str) -> str | None:
    """What is wrong with a Standard Webhooks secret (whsec_ + base64 of 24-64 bytes), without quoting it."""
    if not secret.startswith("whsec_"):
        return "must be a whsec_ secret (whsec_ + base64 of 24 to 64 random bytes)"
    try:
        raw = whsec_bytes(secret)
    except (ValueError, binascii.Error):
        return "is not whsec_ followed by base64"
    if not 24 <= len(raw) <= 64:
        return f"holds {len(raw)} bytes; Standard Webhooks secrets hold 24 to 64"
    return None


def parse_headers(value: Any) -> tuple[tuple[tuple[str, str], ...], str | None]:
    """Custom headers, as HTTP can carry them: a token for a name; visible ASCII, spaces and tabs
    for a value (no line break to inject a header, nothing non-ASCII to fail encoding at send time).

    Errors name a header by its name only when the name is a valid token (an invalid one may be a
    pasted "Authorization: Bearer ..." line), else by its position; never quote a value."""
    if value is None:
        return (), None
    if not isinstance(value, Mapping):
        return (), f"must be a table of header names to values, got {type(value).__name__}"
    out: list[tuple[str, str]] = []
    for number, (name, header_value) in enumerate(value.items(), start=1):
        if not isinstance(name, str) or not _TOKEN.fullmatch(name):
            return (), f"header #{number} has a name that is not a valid HTTP token (1 to 128 letters, digits or !#$%&'*+-.^_`|~)"
        if name.lower() in RESERVED_HEADERS or name.lower().startswith("x-oxoflow-"):
            return (), f"'{name}' is set by oxoflow-notify and cannot be overridden"
        if not isinstance(header_value, str):
            return (), f"the value of '{name}' must be a string, got {type(header_value).__name__}"
        if len(header_value) > MAX_HEADER_VALUE:
            return (), f"the value of '{name}' is over {MAX_HEADER_VALUE} characters"
        if not _FIELD_VALUE.fullmatch(header_value):
            return (), f"the value of '{name}' {_value_problem(header_value)}"
        out.append((name, header_value))
    return tuple(out), None


def _value_problem(value: str) -> str:
    """Which rule a header value breaks, without quoting it."""
    bad = next(ch for ch in value if not _FIELD_VALUE.fullmatch(ch))
    if bad in "\r\n":
        return "contains a line break"
    if bad == "\0":
        return "contains a NUL character"
    if ord(bad) < 128:
        return "contains a control character"
    return "contains a non-ASCII character (a header value holds visible ASCII, spaces and tabs only)"


def seconds_problem(key: str, value: Any) -> str | None:
    """The problem of a timeout key (ours or oxo-flow's timeout_secs) that is not a number of seconds in TIMEOUT_RANGE."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not TIMEOUT_RANGE[0] <= value <= TIMEOUT_RANGE[1]:
        return f"key '{key}' must be a number of seconds from {TIMEOUT_RANGE[0]:g} to {TIMEOUT_RANGE[1]:g}"
    return None


_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)(?:m|min))?(?:(\d+(?:\.\d+)?)s)?\Z")


def parse_duration(value: Any) -> float | None:
    """``"2m"``, ``"90s"``, ``"1m30s"``, ``"1h"``, ``"5d"`` or a number of seconds -> seconds; None when unreadable."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else None
    if not isinstance(value, str) or len(value) > 32:
        return None
    match = _DURATION.match(value.strip().lower().replace(" ", ""))
    if match is None or not any(match.groups()):
        return None
    days, hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    return days * 86400 + hours * 3600 + minutes * 60 + seconds


def named(value: object) -> str:
    """A user's value, fit to quote when it is a string, else only its type."""
    return shown(value) if isinstance(value, str) else type(value).__name__

"""oxo-flow's own singular ``[webhook]`` table (its 0.14 releases), accepted as it is written there.

Translated to ``[[webhooks]]`` terms for ``parse``: its defaults, its key names, its mistakes named
as written. (oxo-flow's payloads and logs in, and its payload out, are ``inbound.oxoflow``.)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from oxoflow_notify.errors import ConfigError

from .webhook_keys import Translated, unknown_keys
from .webhook_values import seconds_problem

OXOFLOW_KEYS = ("url", "method", "headers", "events", "secret", "signature_scheme", "timeout_secs", "max_retries", "format", "id")
OXOFLOW_DEFAULT_EVENTS = ["workflow_completed"]  # oxo-flow's default for [webhook]
_SINGULAR_LINE = re.compile(r"^\s*\[\s*webhook\s*\]")


def singular_webhook(document: Mapping[str, Any], text: str, source: str) -> tuple[Any, str] | None:
    """A file's [webhook] table, translated (a value that is not a table as it is), and its label
    ("[webhook] (line 9)"); None when the file has none. An array of them is a ConfigError."""
    if "webhook" not in document:
        return None
    singular = document["webhook"]
    line = next((i for i, t in enumerate(text.splitlines(), start=1) if _SINGULAR_LINE.match(t)), None)
    label = "[webhook]" + (f" (line {line})" if line else "")
    if isinstance(singular, list):
        raise ConfigError(f"{source}: {label}: oxo-flow's [webhook] is a single table; for several webhooks use [[webhooks]]")
    return (from_webhook_table(singular) if isinstance(singular, Mapping) else singular), label


def from_webhook_table(table: Mapping[str, Any]) -> Translated:
    """oxo-flow's spelling -> ours: its defaults (events = ["workflow_completed"], its own
    payload, hmac-sha256 when there is a secret), timeout_secs -> timeout, max_retries -> max_attempts.
    Mistakes in its own keys are named as written there; the key checks then leave those keys alone."""
    entry = {k: v for k, v in table.items() if k not in ("timeout_secs", "max_retries")}
    entry.setdefault("events", OXOFLOW_DEFAULT_EVENTS)
    entry.setdefault("format", "oxoflow")
    if "secret" in table:
        entry.setdefault("signature_scheme", "hmac-sha256")
    problems = unknown_keys(table, OXOFLOW_KEYS)
    reported = {key for key in table if key not in OXOFLOW_KEYS}
    if "timeout_secs" in table:
        entry["timeout"] = table["timeout_secs"]
        seconds = seconds_problem("timeout_secs", table["timeout_secs"])
        if seconds:
            problems.append(seconds)
            reported.add("timeout")
    retries = table.get("max_retries")
    if retries is not None:
        if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 49:
            problems.append("key 'max_retries' must be a whole number from 0 to 49")
        else:
            entry["max_attempts"] = retries + 1
    return Translated(entry, problems, reported)

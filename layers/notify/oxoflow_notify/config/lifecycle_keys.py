"""The keys of what happens around a webhook's deliveries rather than in them, each checked as
validate and the Lambda check it: when a failing endpoint disables itself (``disable_after``),
when a run counts as overdue or silent (``overdue``, ``silent``), and what an incident in
PagerDuty needs (``routing_key``, ``incident_per``, ``severity``, and the keys it refuses).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from oxoflow_notify.defaults import DEFAULTS
from oxoflow_notify.errors import did_you_mean

from . import REFERENCE, is_reference
from .format_names import PAGERDUTY_RESOLVES, PAGERDUTY_TRIGGERS
from .webhook_values import named, parse_duration

if TYPE_CHECKING:
    from .webhook_keys import Fields

Check = Callable[["Fields"], list[str]]


def _disable_after(fields: Fields) -> list[str]:
    value = fields.get("disable_after")
    if value is None or value in (0, "0"):
        return []
    seconds = parse_duration(value)
    if seconds is None:
        return [f"key 'disable_after': '{named(value)}' is not a duration: write 5d, 12h or 30m, or \"0\" for never"]
    if seconds != 0 and not DEFAULTS.disable_after_min <= seconds <= DEFAULTS.disable_after_max:
        return [f"key 'disable_after' must be 0 (never) or from 1m to 90d (got {seconds:g} s)"]
    return []


def _pagerduty(fields: Fields) -> list[str]:
    """format = "pagerduty": a routing key (a value or a reference in the file's scope), the events
    that mean something to an incident, and none of the keys that sign; elsewhere, no routing key."""
    if fields.get("format") != "pagerduty":
        return ["key 'routing_key' applies to format 'pagerduty' only"] if "routing_key" in fields.table else []
    problems = [f"key '{key}' does not apply to format 'pagerduty' (PagerDuty checks the routing_key in the body; events are not "
                "digested)" for key in ("secret", "signature", "signature_scheme", "digest") if key in fields.table]  # fmt: skip
    problems += _routing_key(fields)
    names, _ = fields.events
    meaningful = (*PAGERDUTY_TRIGGERS, *PAGERDUTY_RESOLVES)
    if names is not None and (other := sorted(names - set(meaningful))):
        problems.append(f"key 'events': format 'pagerduty' opens an incident on {', '.join(PAGERDUTY_TRIGGERS)} and resolves it on "
                        f"{', '.join(PAGERDUTY_RESOLVES)}; {', '.join(other)} has no meaning for an incident")  # fmt: skip
    return problems


def _one_of(key: str, allowed: tuple[str, ...]) -> Check:
    """A pagerduty key that takes one of ``allowed`` (and applies to that format only)."""

    def check(fields: Fields) -> list[str]:
        value = fields.get(key)
        if value is None:
            return []
        if fields.get("format") != "pagerduty":
            return [f"key '{key}' applies to format 'pagerduty' only"]
        if value not in allowed:
            hint = did_you_mean(value, allowed) if isinstance(value, str) else ""
            return [f"key '{key}': '{named(value)}' is not one of {', '.join(allowed)}{hint}"]
        return []

    return check


def _routing_key(fields: Fields) -> list[str]:
    key = fields.get("routing_key")
    if key is None:
        return ["key 'routing_key' is required for format 'pagerduty': the integration key of an Events API v2 integration "
                "(a value, or an ssm:/secretsmanager: reference in this file's scope)"]  # fmt: skip
    return secret_key(fields, "routing_key", lambda value: [] if len(value) == 32 and value.isalnum() else [
        f"key 'routing_key' must be the 32-letter-and-digit integration key PagerDuty shows (got {len(value)} characters)"])  # fmt: skip


def secret_key(fields: Fields, key: str, literal: Callable[[str], list[str]]) -> list[str]:
    """A key that holds a secret: a string, either a reference in the file's scope or a value
    ``literal`` accepts. The value is never quoted."""
    value = fields.get(key)
    if not isinstance(value, str):
        return [f"key '{key}' must be a string, got {type(value).__name__}"]
    if not is_reference(value):
        return literal(value)
    if not REFERENCE.match(value):
        return [f"key '{key}' is not a valid reference (ssm:/path/name or secretsmanager:name[#key])"]
    return [f"key '{key}': {fields.scope.rule(value)}"] if fields.scope is not None and not fields.scope.allows(value) else []


def _watch(key: str) -> Check:
    """``overdue`` / ``silent``: a duration from 1m to 7d."""

    def check(fields: Fields) -> list[str]:
        value = fields.get(key)
        if value is None:
            return []
        seconds = parse_duration(value)
        if seconds is None:
            return [f"key '{key}': '{named(value)}' is not a duration: write 6h, 45m or 1h30m"]
        if not DEFAULTS.watch_min <= seconds <= DEFAULTS.watch_max:
            return [f"key '{key}' must be from 1m to 7d (got {seconds:g} s)"]
        return []

    return check

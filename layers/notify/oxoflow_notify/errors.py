"""Error types and the did-you-mean helper shared by the event and config parsers."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """Return ' (did you mean 'x'?)' for a near miss, else ''.

    Compared case-insensitively so 'rulefailed' still points at 'RuleFailed'.
    """
    options = list(choices)
    lowered = {c.lower(): c for c in options}
    match = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.6)
    return f" (did you mean '{lowered[match[0]]}'?)" if match else ""


class NotifyError(Exception):
    """Base for every error whose message is safe to log and dead-letter.

    Messages never contain a webhook URL or secret: callers build them from names and positions.
    """

    code = "error"


class EventError(NotifyError):
    """The published message is not a valid oxo-flow event."""

    code = "invalid_event"


class ConfigError(NotifyError):
    """A whole .oxoflow file is unusable (TOML syntax, wrong top-level shape)."""

    code = "invalid_config"


class SettingsError(NotifyError):
    """An environment variable of the function is missing or malformed."""

    code = "invalid_settings"

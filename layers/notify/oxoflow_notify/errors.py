"""Error types and the helpers shared by the event and config parsers to word their messages."""

from __future__ import annotations

from collections.abc import Iterable

from botocore.exceptions import BotoCoreError, ClientError

QUOTE_MAX = 64  # characters of user text a message quotes (a name, a key), and the most did-you-mean compares
# Control characters, C1 controls and line separators would break a log line or a terminal.
_INVISIBLE = {ch: f"\\x{ch:02x}" if ch < 256 else f"\\u{ch:04x}" for ch in (*range(32), *range(127, 160), 0x2028, 0x2029)}


def shown(text: str, limit: int = QUOTE_MAX) -> str:
    """User text fit to quote in a message: control characters escaped, cut at ``limit`` with a …."""
    cut = text[:limit].translate(_INVISIBLE)
    return cut + "…" if len(text) > limit else cut


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """Return ' (did you mean 'x'?)' for a near miss, else ''.

    Compared case-insensitively so 'rulefailed' still points at 'RuleFailed'. A word longer than
    ``QUOTE_MAX`` is no near miss of a name, and comparing it would cost time: no suggestion.
    """
    if len(word) > QUOTE_MAX:
        return ""
    import difflib  # only a mistake asks: a cold start that meets none never imports it

    options = list(choices)
    lowered = {c.lower(): c for c in options}
    match = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.6)
    return f" (did you mean '{lowered[match[0]]}'?)" if match else ""


class NotifyError(Exception):
    """Base for every error whose message is safe to log and dead-letter.

    Messages never contain a webhook URL or secret: callers build them from names and positions.
    """

    code = "error"


class EventError(NotifyError, ValueError):
    """The published message is not a valid oxo-flow event.

    Also a ValueError, so code that guards a decode with ``except ValueError`` (the retry path's
    ``json.loads`` + ``event_from_payload``) keeps working when the decode is one of ours."""

    code = "invalid_event"


class ConfigError(NotifyError):
    """A whole .oxoflow file is unusable (TOML syntax, wrong top-level shape, over a limit)."""

    code = "invalid_config"


class SettingsError(NotifyError):
    """An environment variable of the function is missing or malformed."""

    code = "invalid_settings"


class ReferenceProblem(NotifyError):
    """An ``ssm:`` / ``secretsmanager:`` reference could not be resolved. ``permanent`` when waiting
    cannot help. Here, not in aws.references: the pipeline and the ingest function act on it."""

    code = "unresolvable_reference"

    def __init__(self, message: str, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


class ClaimCheckError(NotifyError):
    """A queue message's pointer to a body kept in S3 that cannot be followed for good: malformed,
    outside our letters, changed, or gone (``aws.letters``). Here so readers need not import aws."""

    code = "claim_check"


class InfrastructureError(Exception):
    """An AWS service could not be used (e.g. S3's answer broke off and nothing is cached)."""


def is_infrastructure(exc: BaseException) -> bool:
    """An AWS call failed (S3, SQS, ...): the one kind of fault a handler raises, because
    Lambda's own retry of the invocation is the design for it."""
    return isinstance(exc, (BotoCoreError, ClientError, InfrastructureError))


def fault_name(exc: BaseException) -> str:
    """An infrastructure fault as an operator reads it: its type and AWS error code, never its
    message (which can quote a request)."""
    code = exc.response.get("Error", {}).get("Code", "") if isinstance(exc, ClientError) else ""
    return f"{type(exc).__name__} {code}".strip()

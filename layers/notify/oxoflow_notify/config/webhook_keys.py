"""Check one webhook entry key by key, with a table of small validators, so one key's mistake never hides another's.

Each validator reads the keys it is named for and returns its problems (empty when the key is
fine), worded "key '<name>' ..." and never quoting a URL, a secret or a header's value. A
webhook is built only from an entry with no problem at all; otherwise every problem is reported,
in the order of KEY_CHECKS, joined with "; " into one ConfigProblem.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any

from oxoflow_notify.defaults import DEFAULTS
from oxoflow_notify.errors import did_you_mean, shown

from . import (
    DIGEST_RANGE,
    MAX_REPORTED,
    METHODS,
    RATE_LIMIT_MAX,
    REFERENCE,
    SIGNATURE_SCHEMES,
    SIGNATURES,
    WEBHOOK_KEYS,
    ConfigProblem,
    Webhook,
    is_reference,
)
from .format_names import (
    DEFAULT_FORMAT,
    FORMAT_NAMES,
    INCIDENT_PER,
    PAGERDUTY_DEFAULT_EVENTS,
    SEVERITIES,
)
from .lifecycle_keys import _disable_after, _one_of, _pagerduty, _watch
from .live_keys import LIVE_CHECKS
from .urls import url_problems
from .webhook_ids import entry_id, invalid_id, valid_id
from .webhook_values import check_whsec, named, parse_duration, parse_events, parse_headers, parse_secrets, seconds_problem

if TYPE_CHECKING:
    from .lines import Place
    from .scopes import SecretScope

Check = Callable[["Fields"], list[str]]
# What the deployed functions' outbound guard says of a URL (outbound.preflight), for validate; None: not asked.
Targets = Callable[[str], str | None]


class Translated(dict[str, Any]):
    """An entry written in another dialect (oxo-flow's [webhook]), translated to [[webhooks]] terms.

    ``problems`` are the mistakes found in its own spelling, worded as written there (they stand
    in for the unknown-key check); ``reported`` are keys of this table those problems already
    cover, which the key checks leave alone."""

    def __init__(self, table: Mapping[str, Any], problems: Iterable[str] = (), reported: Iterable[str] = ()) -> None:
        super().__init__(table)
        self.problems = tuple(problems)
        self.reported = frozenset(reported)


class Fields:
    """What the checks read of one entry: its keys (a translated entry's already reported ones left
    out), the file's secret scope and, for validate, the outbound guard's verdict on a URL. Events
    and secrets are parsed once, for every check and for the webhook or problem built after them."""

    def __init__(self, table: Mapping[str, Any], scope: SecretScope | None = None, targets: Targets | None = None) -> None:
        self.table, self.scope, self.targets = table, scope, targets

    def get(self, key: str, default: Any = None) -> Any:
        return self.table.get(key, default)

    @cached_property
    def events(self) -> tuple[frozenset[str] | None, str | None]:
        return parse_events(self.table.get("events"))

    @cached_property
    def secrets(self) -> tuple[tuple[str, ...], str | None]:
        """The secret(s); a pagerduty webhook's one secret is its routing key."""
        if self.table.get("format") == "pagerduty":
            return parse_secrets(self.table.get("routing_key"))
        if self.table.get("live") is True and self.table.get("format") == "slack":
            return parse_secrets(self.table.get("token"))
        return parse_secrets(self.table.get("secret"))


def unknown_keys(table: Mapping[str, Any], allowed: tuple[str, ...]) -> list[str]:
    """The keys not in ``allowed`` as one problem: the first MAX_REPORTED named with a did-you-mean,
    the rest counted, then the allowed keys (once)."""
    unknown = [key for key in table if key not in allowed]
    if not unknown:
        return []
    named = [f"unknown key '{shown(key)}'{did_you_mean(key, allowed)}" for key in unknown[:MAX_REPORTED]]
    if len(unknown) > MAX_REPORTED:
        named.append(f"... and {len(unknown) - MAX_REPORTED:,} more unknown keys")
    return ["; ".join(named) + f"; allowed keys are {', '.join(allowed)}"]


def _events(fields: Fields) -> list[str]:
    _, error = fields.events
    return [f"key 'events': {error}"] if error else []


def _url(fields: Fields) -> list[str]:
    url = fields.get("url")
    if url is None:
        return ["key 'url' is required"]
    if not isinstance(url, str):
        return [f"key 'url' must be a string, got {type(url).__name__}"]
    if not is_reference(url):
        url_errors = url_problems(url)
        if not url_errors and fields.targets is not None:
            refused = fields.targets(url)
            return [f"key 'url': {refused}"] if refused else []
        return [f"key 'url' {url_error}" for url_error in url_errors]
    if not REFERENCE.match(url):
        return ["key 'url' is not a valid reference (ssm:/path/name or secretsmanager:name[#key])"]
    if fields.scope is not None and not fields.scope.allows(url):
        return [f"key 'url': {fields.scope.rule(url)}"]
    return []


def _format(fields: Fields) -> list[str]:
    fmt = fields.get("format", DEFAULT_FORMAT)
    if not isinstance(fmt, str):
        return [f"key 'format' must be a string, got {type(fmt).__name__}"]
    if fmt not in FORMAT_NAMES:
        return [f"key 'format': unknown format '{shown(fmt)}'{did_you_mean(fmt, FORMAT_NAMES)}; expected one of {', '.join(FORMAT_NAMES)}"]
    return []


def _secret(fields: Fields) -> list[str]:
    if fields.get("format") == "pagerduty" or fields.get("live") is True:
        return []  # its routing key is _pagerduty's; a live webhook's token (and its refusal of a secret) live_keys'
    secrets, secrets_error = fields.secrets
    if secrets_error:
        return [f"key 'secret' {secrets_error}"]
    scope = fields.scope
    if scope is None:
        return []
    for number, secret in enumerate(secrets, start=1):
        if is_reference(secret) and not scope.allows(secret):
            entry_number = f" (entry {number})" if isinstance(fields.get("secret"), list) else ""
            return [f"key 'secret'{entry_number}: {scope.rule(secret)}"]
    return []


def _signature(fields: Fields) -> list[str]:
    signature = fields.get("signature", "hub-sha256")
    if signature not in SIGNATURES:
        hint = did_you_mean(signature, SIGNATURES) if isinstance(signature, str) else ""
        return [f"key 'signature': unknown scheme '{named(signature)}'{hint}; expected one of {', '.join(SIGNATURES)}"]
    if signature == "standard-webhooks" and fields.get("secret") is None:  # a broken secret is _secret's to report
        return ["key 'signature' = 'standard-webhooks' needs a secret"]
    return []


def _whsec(fields: Fields) -> list[str]:
    """Standard Webhooks secrets (signature = 'standard-webhooks', or any whsec_ secret) must be whsec_ + base64 of 24-64 bytes."""
    secrets, _ = fields.secrets
    if fields.get("signature") != "standard-webhooks" and not any(s.startswith("whsec_") for s in secrets):
        return []
    for number, secret in enumerate(secrets, start=1):
        whsec_error = None if is_reference(secret) else check_whsec(secret)
        if whsec_error:
            return [f"key 'secret' (entry {number}) {whsec_error}"]
    return []


def _headers(fields: Fields) -> list[str]:
    _, headers_error = parse_headers(fields.get("headers"))
    return [f"key 'headers': {headers_error}"] if headers_error else []


def _timeout(fields: Fields) -> list[str]:
    timeout = fields.get("timeout")
    timeout_problem = None if timeout is None else seconds_problem("timeout", timeout)
    return [timeout_problem] if timeout_problem else []


def _max_attempts(fields: Fields) -> list[str]:
    max_attempts, most = fields.get("max_attempts"), DEFAULTS.max_attempts_max
    if max_attempts is not None and (isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or not 1 <= max_attempts <= most):
        return [f"key 'max_attempts' must be a whole number from 1 to {most}"]
    return []


def _method(fields: Fields) -> list[str]:
    method = fields.get("method", "POST")
    if isinstance(method, str) and method.upper() in METHODS:
        return []
    return [f"key 'method': '{named(method)}' is not supported; use post or put"]


def _signature_scheme(fields: Fields) -> list[str]:
    scheme = fields.get("signature_scheme")
    if scheme is None:
        return []
    if scheme == "sha256-keyed":
        return ["key 'signature_scheme': oxo-flow's legacy 'sha256-keyed' (sha256 of secret + body) is not an HMAC "
                "and is not supported; use 'hmac-sha256', oxo-flow's default"]  # fmt: skip
    if scheme not in SIGNATURE_SCHEMES:
        hint = did_you_mean(scheme, SIGNATURE_SCHEMES) if isinstance(scheme, str) else ""
        return [f"key 'signature_scheme': unknown scheme '{named(scheme)}'{hint}; use hmac-sha256"]
    if fields.get("secret") is None:  # a broken secret is _secret's to report
        return ["key 'signature_scheme' needs a secret to sign with"]
    return []


def _id(fields: Fields) -> list[str]:
    if "id" in fields.table and not valid_id(fields.table["id"]):
        return ["key 'id' must be 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit, and not with 'wh_' "
                "(kept for ids derived from the url)"]  # fmt: skip
    return []


def _digest(fields: Fields) -> list[str]:
    value = fields.get("digest")
    if value is None:
        return []
    seconds = parse_duration(value)
    if seconds is None:
        return [f"key 'digest': '{named(value)}' is not a duration: write 90s, 2m or 1m30s"]
    if not DIGEST_RANGE[0] <= seconds <= DIGEST_RANGE[1]:
        return [f"key 'digest' must be from 1s to 15m (got {seconds:g} s)"]
    return []


def _rate_limit(fields: Fields) -> list[str]:
    value = fields.get("rate_limit")
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= RATE_LIMIT_MAX):
        return [f"key 'rate_limit' must be a number of POSTs per second from 0 (no limit) to {RATE_LIMIT_MAX:g}"]
    if isinstance(value, float) and 0 < value < 1 / 900:
        return ["key 'rate_limit' must allow at least one POST in 15 minutes (0.0012 per second), or be 0 for no limit"]
    return []


# One validator per key, in the order their problems are reported.
KEY_CHECKS: tuple[tuple[str, Check], ...] = (
    ("events", _events),
    ("url", _url),
    ("format", _format),
    ("secret", _secret),
    ("signature", _signature),
    ("secret", _whsec),  # after signature: which secrets must be whsec_ depends on it
    ("headers", _headers),
    ("timeout", _timeout),
    ("max_attempts", _max_attempts),
    ("method", _method),
    ("signature_scheme", _signature_scheme),
    ("id", _id),
    ("digest", _digest),
    ("rate_limit", _rate_limit),
    ("disable_after", _disable_after),
    ("routing_key", _pagerduty),
    ("incident_per", _one_of("incident_per", INCIDENT_PER)),
    ("severity", _one_of("severity", SEVERITIES)),
    ("overdue", _watch("overdue")),
    ("silent", _watch("silent")),
    *LIVE_CHECKS,
)


def fields_of(entry: Mapping[str, Any], scope: SecretScope | None = None, targets: Targets | None = None) -> tuple[list[str], Fields]:
    """The problems found before the key checks (unknown keys, or a translated entry's own), and what the checks read."""
    if isinstance(entry, Translated):
        return list(entry.problems), Fields({k: v for k, v in entry.items() if k not in entry.reported}, scope, targets)
    return unknown_keys(entry, WEBHOOK_KEYS), Fields(entry, scope, targets)


def parse_webhook(
    entry: Any, place: Place, index: int, scope: SecretScope | None = None, targets: Targets | None = None
) -> Webhook | ConfigProblem:
    """One entry as a Webhook, or a problem naming everything wrong with it, each at its key's line.
    Its id (the problem's too) is its explicit ``id`` when that is valid, whatever else is wrong,
    else the one derived from its url and format; whether ids clash between entries is parse_config's to check."""
    source = place.source
    if not isinstance(entry, Mapping):
        message, parts = place.report([f"must be a table, got {type(entry).__name__}"])
        return ConfigProblem(source, index, invalid_id(entry), message, None, parts)
    problems, fields = fields_of(entry, scope, targets)
    problems += [problem for _, check in KEY_CHECKS for problem in check(fields)]
    if problems:  # events are never a reported key: the translated entry's own are read
        message, parts = place.report(problems)
        return ConfigProblem(source, index, entry_id(entry), message, fields.events[0], parts)
    return _webhook(fields, entry_id(entry), source, index)


def _webhook(fields: Fields, webhook_id: str, source: str, index: int) -> Webhook:
    """The Webhook of an entry every check passed."""
    timeout = fields.get("timeout")
    return Webhook(
        id=webhook_id,
        url=fields.get("url"),
        format=fields.get("format", DEFAULT_FORMAT),
        events=fields.events[0] if fields.events[0] is not None or fields.get("format") != "pagerduty" else PAGERDUTY_DEFAULT_EVENTS,
        secrets=fields.secrets[0],
        source=source,
        position=index,
        signature=fields.get("signature", "hub-sha256"),
        max_attempts=fields.get("max_attempts"),
        headers=parse_headers(fields.get("headers"))[0],
        timeout=float(timeout) if timeout is not None else None,
        method=fields.get("method", "POST").upper(),
        oxoflow_signature=fields.get("signature_scheme") is not None,
        digest=parse_duration(fields.get("digest")) if fields.get("digest") is not None else None,
        rate_limit=float(fields.get("rate_limit")) if fields.get("rate_limit") is not None else None,
        disable_after=_seconds_or(fields.get("disable_after"), DEFAULTS.disable_after),
        incident_per=fields.get("incident_per", "workflow"),
        overdue=parse_duration(fields.get("overdue")) if fields.get("overdue") is not None else None,
        silent=parse_duration(fields.get("silent")) if fields.get("silent") is not None else None,
        live=fields.get("live") is True,
        live_interval=_seconds_or(fields.get("live_interval"), DEFAULTS.live_interval),
        channel=fields.get("channel"),
        entry_digest=entry_digest(fields),
        severity=fields.get("severity"),
    )


def entry_digest(fields: Fields) -> str:
    """A 64-bit digest of the entry as written (its URL, secrets or their references, headers,
    format, method, signature): what an endpoint's disable is tied to. Taken here, before any
    reference is resolved, so a resolved webhook still has the digest of its entry."""
    parts = [repr(fields.get(k)) for k in ("url", "format", "method", "signature", "secret", "routing_key", "headers")]
    parts += [f"{k}={fields.get(k)!r}" for k in ("token", "channel") if k in fields.table]  # (absent: the digest entries always had)
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _seconds_or(value: Any, default: float) -> float:
    """A checked duration key's seconds ("0" and 0: never), or the default when absent."""
    if value is None:
        return default
    return 0.0 if value in (0, "0") else float(parse_duration(value) or 0.0)

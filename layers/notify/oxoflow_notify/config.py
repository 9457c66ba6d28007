"""Parse the ``[[webhooks]]`` of an ``.oxoflow`` file.

A real oxo-flow workflow file has many other tables ([workflow], [config], [[rules]], ...); they
are accepted and ignored. One bad webhook does not silence the others: it becomes a
``ConfigProblem`` that the notifier dead-letters for each event it would have matched.
Messages never quote a URL or a secret (a Slack URL is itself a secret).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import tomli

from .errors import ConfigError, did_you_mean
from .events import EVENT_NAMES, canonical_event_name, unknown_event_message
from .formats import FORMATS

WEBHOOK_KEYS = ("url", "events", "format", "secret", "signature", "id", "headers", "timeout", "max_attempts", "method", "signature_scheme")
# oxo-flow's own singular [webhook] table (its 0.14 releases), accepted as it is written there.
OXOFLOW_KEYS = ("url", "method", "headers", "events", "secret", "signature_scheme", "timeout_secs", "max_retries", "format", "id")
OXOFLOW_DEFAULT_EVENTS = ["workflow_completed"]  # oxo-flow's default for [webhook]
SIGNATURES = ("hub-sha256", "standard-webhooks")
SIGNATURE_SCHEMES = ("hmac-sha256",)  # oxo-flow's X-OxoFlow-Signature
METHODS = ("POST", "PUT")
# A value may name where it is kept instead of holding it: ssm:/path/name or secretsmanager:name[#json-key].
_REFERENCE = re.compile(r"^(?:ssm:/[A-Za-z0-9_.\-/]+|secretsmanager:[A-Za-z0-9_/+=.@\-]+(?:#[^#\s]+)?)$")
TIMEOUT_RANGE = (0.5, 30.0)  # seconds; the function itself times out at 60
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$")
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
DEFAULT_FORMAT = "json"
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_HEADER_LINE = re.compile(r"^\s*\[\[\s*webhooks\s*\]\]")
_SINGULAR_LINE = re.compile(r"^\s*\[\s*webhook\s*\]")


@dataclass(frozen=True)
class Webhook:
    """One valid webhook. ``id`` is stable across deploys: retries find the webhook by it."""

    id: str
    url: str
    format: str
    events: frozenset[str] | None  # None: every event
    secrets: tuple[str, ...]  # newest first; several while a secret is rotated
    source: str
    position: int
    headers: tuple[tuple[str, str], ...] = ()  # values may be credentials: never logged
    timeout: float | None = None  # read timeout override, seconds
    signature: str = "hub-sha256"  # or "standard-webhooks" (implied by whsec_ secrets)
    max_attempts: int | None = None  # shortens the retry schedule for this webhook
    method: str = "POST"
    oxoflow_signature: bool = False  # also send X-OxoFlow-Signature: hmac-sha256=<hex>

    @property
    def secret(self) -> str | None:
        """The secret X-Hub-Signature-256 uses: the first."""
        return self.secrets[0] if self.secrets else None

    @property
    def standard_webhooks(self) -> bool:
        return self.signature == "standard-webhooks" or any(s.startswith("whsec_") for s in self.secrets)

    def matches(self, event: str) -> bool:
        return self.events is None or event in self.events

    @property
    def host(self) -> str:
        """The only part of the URL safe to log ('' while the URL is still a reference)."""
        return "" if is_reference(self.url) else (urlsplit(self.url).hostname or "")

    def __repr__(self) -> str:  # keep URL and secret out of tracebacks and debug logs
        return f"Webhook(id={self.id!r}, format={self.format!r}, host={self.host!r}, source={self.source!r})"


@dataclass(frozen=True)
class ConfigProblem:
    """A webhook entry that cannot be used, and the events it would have received."""

    source: str
    position: int
    webhook_id: str
    message: str
    events: frozenset[str] | None

    def matches(self, event: str) -> bool:
        return self.events is None or event in self.events


@dataclass(frozen=True)
class Config:
    source: str
    webhooks: tuple[Webhook, ...] = ()
    problems: tuple[ConfigProblem, ...] = ()

    def find(self, webhook_id: str) -> Webhook | None:
        return next((w for w in self.webhooks if w.id == webhook_id), None)


def is_reference(value: str) -> bool:
    return value.startswith(("ssm:", "secretsmanager:"))


def check_whsec(secret: str) -> str | None:
    """What is wrong with a Standard Webhooks secret (whsec_ + base64 of 24-64 bytes), without quoting it."""
    if not secret.startswith("whsec_"):
        return "must be a whsec_ secret (whsec_ + base64 of 24 to 64 random bytes)"
    try:
        raw = base64.b64decode(secret[6:], validate=True)
    except (ValueError, binascii.Error):
        return "is not whsec_ followed by base64"
    if not 24 <= len(raw) <= 64:
        return f"holds {len(raw)} bytes; Standard Webhooks secrets hold 24 to 64"
    return None


def webhook_id_for(url: str, fmt: str) -> str:
    """Derived id: a short digest, so the id names the webhook without revealing its URL."""
    return "wh_" + hashlib.sha256(f"{fmt}\n{url}".encode()).hexdigest()[:12]


def check_url(url: str) -> str | None:
    """Return what is wrong with a webhook URL, without quoting it; None when it is fine."""
    if not url.strip():
        return "is empty"
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        return "contains whitespace or control characters"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return f"is not a valid URL ({exc})"
    if parts.scheme not in ("http", "https"):
        shown = parts.scheme if parts.scheme and len(parts.scheme) <= 10 else "missing"
        return f"must use http or https (scheme is {shown})"
    if not parts.hostname:
        return "has no host"
    if parts.username is not None or parts.password is not None:
        return "must not carry credentials (user:password@); use the secret key for signing"
    if port == 0:
        return "has port 0"
    return None


def _header_lines(text: str) -> list[int]:
    """1-based line of each ``[[webhooks]]`` header, in order; tomli does not report positions."""
    return [i for i, line in enumerate(text.splitlines(), start=1) if _HEADER_LINE.match(line)]


def parse_config(raw: str | bytes, source: str) -> Config:
    """Parse one .oxoflow file. Raises ConfigError only when the whole file is unusable."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{source}: not UTF-8 text (byte {exc.start})") from None
    try:
        document = tomli.loads(text)
    except tomli.TOMLDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}" if getattr(exc, "lineno", None) else ""
        reason = getattr(exc, "msg", str(exc))
        raise ConfigError(
            f"{source}: TOML syntax error at {where}: {reason}" if where else f"{source}: TOML syntax error: {reason}"
        ) from None

    entries = document.get("webhooks", [])
    if not isinstance(entries, list):
        raise ConfigError(f"{source}: 'webhooks' must be an array of tables ([[webhooks]]), got {type(entries).__name__}")
    lines = _header_lines(text)
    located: list[tuple[Any, str]] = []
    for index, entry in enumerate(entries, start=1):
        line = lines[index - 1] if len(lines) == len(entries) else None
        located.append((entry, f"{source}: [[webhooks]] #{index}" + (f" (line {line})" if line else "")))
    if "webhook" in document:
        singular = document["webhook"]
        line = next((i for i, t in enumerate(text.splitlines(), start=1) if _SINGULAR_LINE.match(t)), None)
        where = f"{source}: [webhook]" + (f" (line {line})" if line else "")
        if isinstance(singular, list):
            raise ConfigError(f"{where}: oxo-flow's [webhook] is a single table; for several webhooks use [[webhooks]]")
        located.append((_from_oxoflow(singular) if isinstance(singular, Mapping) else singular, where))
    webhooks: list[Webhook] = []
    problems: list[ConfigProblem] = []
    seen_ids: set[str] = set()
    for index, (entry, where) in enumerate(located, start=1):
        result = _parse_webhook(entry, where, source, index, seen_ids)
        if isinstance(result, Webhook):
            seen_ids.add(result.id)
            webhooks.append(result)
        else:
            problems.append(result)
    return Config(source=source, webhooks=tuple(webhooks), problems=tuple(problems))


class _Oxoflow(dict[str, Any]):
    """A [webhook] table translated to [[webhooks]] terms, with what was wrong in oxo-flow's own
    spelling (named as written there)."""

    error: str | None = None


def _seconds_problem(key: str, value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not TIMEOUT_RANGE[0] <= value <= TIMEOUT_RANGE[1]:
        return f"key '{key}' must be a number of seconds from {TIMEOUT_RANGE[0]:g} to {TIMEOUT_RANGE[1]:g}"
    return None


def _from_oxoflow(table: Mapping[str, Any]) -> _Oxoflow:
    """oxo-flow's spelling -> ours: its defaults (events = ["workflow_completed"], its own
    payload, hmac-sha256 when there is a secret), timeout_secs -> timeout, max_retries -> max_attempts."""
    entry = _Oxoflow({k: v for k, v in table.items() if k not in ("timeout_secs", "max_retries")})
    entry.setdefault("events", OXOFLOW_DEFAULT_EVENTS)
    entry.setdefault("format", "oxoflow")
    if "secret" in table:
        entry.setdefault("signature_scheme", "hmac-sha256")
    errors: list[str] = [
        f"unknown key '{key}'{did_you_mean(key, OXOFLOW_KEYS)}; allowed keys are {', '.join(OXOFLOW_KEYS)}"
        for key in table
        if key not in OXOFLOW_KEYS
    ]
    if "timeout_secs" in table:
        entry["timeout"] = table["timeout_secs"]
        seconds = _seconds_problem("timeout_secs", table["timeout_secs"])
        if seconds:
            errors.append(seconds)
    retries = table.get("max_retries")
    if retries is not None:
        if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 49:
            errors.append("key 'max_retries' must be a whole number from 0 to 49")
        else:
            entry["max_attempts"] = retries + 1
    entry.error = errors[0] if errors else None
    return entry


def _parse_webhook(entry: Any, where: str, source: str, index: int, seen_ids: set[str]) -> Webhook | ConfigProblem:
    if not isinstance(entry, Mapping):
        return ConfigProblem(source, index, f"wh_invalid_{index}", f"{where}: must be a table, got {type(entry).__name__}", None)

    events, events_error = _parse_events(entry.get("events"))
    url = entry.get("url")
    fmt = entry.get("format", DEFAULT_FORMAT)
    fallback_id = webhook_id_for(url, str(fmt)) if isinstance(url, str) else f"wh_invalid_{index}"
    explicit_id = entry.get("id")
    webhook_id = explicit_id if isinstance(explicit_id, str) and _ID.match(explicit_id) else fallback_id

    def problem(message: str) -> ConfigProblem:
        return ConfigProblem(source, index, webhook_id, f"{where}: {message}", events)

    if isinstance(entry, _Oxoflow):
        if entry.error:
            return problem(entry.error)
    else:
        for key in entry:
            if key not in WEBHOOK_KEYS:
                return problem(f"unknown key '{key}'{did_you_mean(key, WEBHOOK_KEYS)}; allowed keys are {', '.join(WEBHOOK_KEYS)}")
    if events_error:
        return problem(f"key 'events': {events_error}")
    if url is None:
        return problem("key 'url' is required")
    if not isinstance(url, str):
        return problem(f"key 'url' must be a string, got {type(url).__name__}")
    if is_reference(url):
        if not _REFERENCE.match(url):
            return problem("key 'url' is not a valid reference (ssm:/path/name or secretsmanager:name[#key])")
    else:
        url_error = check_url(url)
        if url_error:
            return problem(f"key 'url' {url_error}")
    if not isinstance(fmt, str):
        return problem(f"key 'format' must be a string, got {type(fmt).__name__}")
    if fmt not in FORMATS:
        return problem(f"key 'format': unknown format '{fmt}'{did_you_mean(fmt, FORMATS)}; expected one of {', '.join(FORMATS)}")
    secrets, secrets_error = _parse_secrets(entry.get("secret"))
    if secrets_error:
        return problem(f"key 'secret' {secrets_error}")
    signature = entry.get("signature", "hub-sha256")
    if signature not in SIGNATURES:
        shown = signature if isinstance(signature, str) else type(signature).__name__
        hint = did_you_mean(str(shown), SIGNATURES)
        return problem(f"key 'signature': unknown scheme '{shown}'{hint}; expected one of {', '.join(SIGNATURES)}")
    if signature == "standard-webhooks" and not secrets:
        return problem("key 'signature' = 'standard-webhooks' needs a secret")
    if signature == "standard-webhooks" or any(s.startswith("whsec_") for s in secrets):
        for number, secret in enumerate(secrets, start=1):
            whsec_error = None if is_reference(secret) else check_whsec(secret)
            if whsec_error:
                return problem(f"key 'secret' (entry {number}) {whsec_error}")
    headers, headers_error = _parse_headers(entry.get("headers"))
    if headers_error:
        return problem(f"key 'headers': {headers_error}")
    timeout = entry.get("timeout")
    timeout_problem = None if timeout is None else _seconds_problem("timeout", timeout)
    if timeout_problem:
        return problem(timeout_problem)
    max_attempts = entry.get("max_attempts")
    if max_attempts is not None and (isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or not 1 <= max_attempts <= 50):
        return problem("key 'max_attempts' must be a whole number from 1 to 50")
    method = entry.get("method", "POST")
    if not isinstance(method, str) or method.upper() not in METHODS:
        shown = method if isinstance(method, str) else type(method).__name__
        return problem(f"key 'method': '{shown}' is not supported; use post or put")
    scheme = entry.get("signature_scheme")
    if scheme is not None and scheme not in SIGNATURE_SCHEMES:
        if scheme == "sha256-keyed":
            return problem("key 'signature_scheme': oxo-flow's legacy 'sha256-keyed' (sha256 of secret + body) is not an HMAC "
                           "and is not supported; use 'hmac-sha256', oxo-flow's default")  # fmt: skip
        shown = scheme if isinstance(scheme, str) else type(scheme).__name__
        return problem(f"key 'signature_scheme': unknown scheme '{shown}'{did_you_mean(str(shown), SIGNATURE_SCHEMES)}; use hmac-sha256")
    if scheme is not None and not secrets:
        return problem("key 'signature_scheme' needs a secret to sign with")
    if explicit_id is not None:
        if not isinstance(explicit_id, str) or not _ID.match(explicit_id):
            return problem("key 'id' must be 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit")
        if explicit_id in seen_ids:
            return problem(f"key 'id': '{explicit_id}' is already used by another webhook in this file")
    elif webhook_id in seen_ids:
        webhook_id = f"{webhook_id}_{index}"  # same URL and format twice: keep both addressable
    return Webhook(
        id=webhook_id,
        url=url,
        format=fmt,
        events=events,
        secrets=secrets,
        source=source,
        position=index,
        signature=signature,
        max_attempts=max_attempts,
        headers=headers,
        timeout=float(timeout) if timeout is not None else None,
        method=method.upper(),
        oxoflow_signature=scheme is not None,
    )


def _parse_secrets(value: Any) -> tuple[tuple[str, ...], str | None]:
    """One secret, or a list while rotating (newest first). Errors never quote a secret."""
    if value is None:
        return (), None
    items = value if isinstance(value, list) else [value]
    if not items:
        return (), "is an empty list; omit it for unsigned deliveries"
    for number, item in enumerate(items, start=1):
        if not isinstance(item, str) or not item:
            return (), f"entry {number} must be a non-empty string"
        if is_reference(item) and not _REFERENCE.match(item):
            return (), f"entry {number} is not a valid reference (ssm:/path/name or secretsmanager:name[#key])"
    return tuple(items), None


def _parse_headers(value: Any) -> tuple[tuple[tuple[str, str], ...], str | None]:
    """Custom headers. Errors name the header, never its value (it may be a token)."""
    if value is None:
        return (), None
    if not isinstance(value, Mapping):
        return (), f"must be a table of header names to values, got {type(value).__name__}"
    out: list[tuple[str, str]] = []
    for name, header_value in value.items():
        if not _TOKEN.match(name):
            return (), f"'{name[:40]}' is not a valid header name"
        if name.lower() in RESERVED_HEADERS or name.lower().startswith("x-oxoflow-"):
            return (), f"'{name}' is set by oxoflow-notify and cannot be overridden"
        if not isinstance(header_value, str):
            return (), f"the value of '{name}' must be a string, got {type(header_value).__name__}"
        if any(ch in header_value for ch in "\r\n\0") or len(header_value) > 4096:
            return (), f"the value of '{name}' contains a line break or NUL, or is over 4096 characters"
        out.append((name, header_value))
    return tuple(out), None


def _parse_events(value: Any) -> tuple[frozenset[str] | None, str | None]:
    """Return (events, error). On error, events holds the valid names so the problem is
    dead-lettered for exactly the events the user meant; None means all events."""
    if value is None:
        return None, None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        return None, f"must be a list of event names, got {type(value).__name__}"
    names: set[str] = set()
    errors: list[str] = []
    for item in value:
        if not isinstance(item, str):
            errors.append(f"{item!r} is not a string")
            continue
        if item == "*":
            return None, None
        name = canonical_event_name(item)
        if name is None:
            errors.append(unknown_event_message(item))
        else:
            names.add(name)
    if errors:
        return (frozenset(names) or None), "; ".join(errors)
    if not names:
        return None, "is empty; omit it to receive every event, or list some of " + ", ".join(EVENT_NAMES)
    return frozenset(names), None

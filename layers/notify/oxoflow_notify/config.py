"""Parse the ``[[webhooks]]`` of an ``.oxoflow`` file.

A real oxo-flow workflow file has many other tables ([workflow], [config], [[rules]], ...); they
are accepted and ignored. One bad webhook does not silence the others: it becomes a
``ConfigProblem`` that the notifier dead-letters for each event it would have matched.
Messages never quote a URL or a secret (a Slack URL is itself a secret), nor a header's value.

Hostile or broken input is refused here, at config time, with a message naming the file, the
webhook and the key, never left to fail at send time: header names and values HTTP cannot carry,
hosts DNS cannot hold, and files over the limits below (which make the whole file unusable).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import tomli

from .errors import ConfigError, did_you_mean, shown
from .events import EVENT_NAMES, WORKFLOW_NAME, canonical_event_name, unknown_event_message
from .formats import FORMATS

WEBHOOK_KEYS = ("url", "events", "format", "secret", "signature", "id", "headers", "timeout", "max_attempts", "method", "signature_scheme")
# oxo-flow's own singular [webhook] table (its 0.14 releases), accepted as it is written there.
OXOFLOW_KEYS = ("url", "method", "headers", "events", "secret", "signature_scheme", "timeout_secs", "max_retries", "format", "id")
OXOFLOW_DEFAULT_EVENTS = ["workflow_completed"]  # oxo-flow's default for [webhook]
SIGNATURES = ("hub-sha256", "standard-webhooks")
SIGNATURE_SCHEMES = ("hmac-sha256",)  # oxo-flow's X-OxoFlow-Signature
METHODS = ("POST", "PUT")
# A value may name where it is kept instead of holding it: ssm:/path/name or secretsmanager:name[#json-key].
# (Every pattern ends in \Z, not $: "$" also matches before a trailing newline.)
_REFERENCE = re.compile(r"^(?:ssm:/[A-Za-z0-9_.\-/]+|secretsmanager:[A-Za-z0-9_/+=.@\-]+(?:#[^#\s]+)?)\Z")
TIMEOUT_RANGE = (0.5, 30.0)  # seconds; the function itself times out at 60

# Limits (README "Limits"): past them a file, or one webhook's key, is refused with a message.
MAX_CONFIG_BYTES = 1_048_576  # 1 MiB per .oxoflow file
MAX_NESTING = 32  # levels of tables and arrays in a file (a [[webhooks]] entry's headers are level 3)
MAX_WEBHOOKS = 100  # [[webhooks]] entries plus oxo-flow's [webhook], per file
MAX_EVENTS = 64  # entries in one webhook's `events` (there are 8 events, in 2 spellings)
MAX_REPORTED = 3  # unknown events named in one problem; the rest are counted
MAX_HEADER_VALUE = 4096  # characters

# RFC 9110 token: the characters a header name may hold.
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}")
# RFC 9110 field-value, as a sender may write it: visible ASCII, space and tab.
_FIELD_VALUE = re.compile(r"[\t\x20-\x7e]*")
# IDNA's label separators (U+002E and its ideographic and full-width forms).
_DOTS = re.compile("[.\u3002\uff0e\uff61]")
_LABEL = re.compile(rb"[A-Za-z0-9_-]+")  # one label of a host name once IDNA-encoded
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
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")
_HEADER_LINE = re.compile(r"^\s*\[\[\s*webhooks\s*\]\]")
_SINGULAR_LINE = re.compile(r"^\s*\[\s*webhook\s*\]")


@dataclass(frozen=True)
class Webhook:
    """One valid webhook. ``id`` is stable across deploys: retries find the webhook by it. It is
    the entry's explicit ``id`` or ``wh_`` + a digest of format and URL, never its position, and
    no other entry of the file answers to it (parse_config refuses entries whose ids clash)."""

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
        """The valid webhook with this id, if the file has one."""
        return next((w for w in self.webhooks if w.id == webhook_id), None)

    def problem_for(self, webhook_id: str) -> ConfigProblem | None:
        """Why the entry with this id is refused, if the file has such an entry: a retry whose
        webhook was made invalid is dead-lettered with this problem rather than as removed.

        An entry's id is its explicit ``id`` when that is valid, whatever else is wrong with it,
        else the one derived from its url and format, so a webhook broken by an edit keeps the id
        its pending retries carry. No id is both a webhook's and a problem's (``find`` and this
        never both answer); entries refused together for sharing an id have the same reason."""
        return next((p for p in self.problems if p.webhook_id == webhook_id), None)


def is_reference(value: str) -> bool:
    return value.startswith(("ssm:", "secretsmanager:"))


# -- secret scopes ------------------------------------------------------------------------------
# Several teams share one deployment, each writing its own workflows' files: a file may reference
# only its own names. <ConfigPrefix><workflow>.oxoflow: <SecretsPrefix>workflows/<workflow>/...;
# <ConfigPrefix>_default.oxoflow (read for every workflow): <SecretsPrefix>shared/...
DEFAULT_CONFIG_NAME = "_default"  # <prefix>_default.oxoflow: the org-wide file
CONFIG_SUFFIX = ".oxoflow"
WORKFLOWS_SCOPE = "workflows"
SHARED_SCOPE = "shared"
DEFAULT_SECRETS_PREFIX = "oxoflow-notify/"
# The URL schemes a reason may name; any other scheme of a URL is not shown (it may be a
# fragment of a secret read from SSM or Secrets Manager).
NAMED_SCHEMES = ("http", "https", "ftp", "ftps", "sftp", "ssh", "ws", "wss", "file", "gopher", "mailto", "data")


def reference_segments(reference: str) -> tuple[str, ...] | None:
    """The path segments of the name a reference reads (``ssm:/a/b`` and ``secretsmanager:a/b#key``:
    ("a", "b")), or None for a name no scope can hold: not a valid reference, an empty segment
    (``//``, a trailing ``/``, a Secrets Manager name starting with ``/``), ``.`` or ``..``.
    Scopes are compared on these segments, so no spelling reaches outside its prefix."""
    if not _REFERENCE.match(reference):
        return None
    if reference.startswith("ssm:"):
        segments = reference[len("ssm:/") :].split("/")
    else:
        segments = reference[len("secretsmanager:") :].split("#", 1)[0].split("/")
    if any(segment in ("", ".", "..") for segment in segments):
        return None
    return tuple(segments)


def prefix_segments(prefix: str) -> tuple[str, ...]:
    """SECRETS_PREFIX as path segments ('oxoflow-notify/' -> ("oxoflow-notify",)); ValueError for a
    prefix with an empty, '.' or '..' segment."""
    segments = tuple(prefix.strip("/").split("/"))
    if any(segment in ("", ".", "..") for segment in segments):
        raise ValueError(f"the secrets prefix must be path segments separated by '/', without '.' or '..' (got {prefix!r})")
    return segments


def in_config_scopes(reference: str, secrets_prefix: str) -> bool:
    """Whether a reference names a secret in some config's scope: under <prefix>workflows/<workflow>/
    or <prefix>shared/. The only names the dispatch and retry functions may read."""
    segments = reference_segments(reference)
    base = prefix_segments(secrets_prefix)
    if segments is None or segments[: len(base)] != base:
        return False
    rest = segments[len(base) :]
    if rest[:1] == (SHARED_SCOPE,):
        return len(rest) >= 2
    return rest[:1] == (WORKFLOWS_SCOPE,) and len(rest) >= 3 and bool(WORKFLOW_NAME.match(rest[1]))


def workflow_of(source: str, config_prefix: str | None = None) -> str | None:
    """The workflow a config file belongs to: '<config_prefix><workflow>.oxoflow' (an S3 key), or,
    with no config prefix, the file name's '<workflow>.oxoflow' (a local file); '_default' for the
    org-wide file; None when the name says neither."""
    if config_prefix is not None:
        if not source.startswith(config_prefix):
            return None
        name = source[len(config_prefix) :]
    else:
        name = re.split(r"[\\/]", source)[-1]
    if not name.endswith(CONFIG_SUFFIX):
        return None
    workflow = name[: -len(CONFIG_SUFFIX)]
    return workflow if workflow == DEFAULT_CONFIG_NAME or WORKFLOW_NAME.match(workflow) else None


@dataclass(frozen=True)
class SecretScope:
    """The names the references of one config file may read.

    ``segments`` is <SecretsPrefix>workflows/<workflow> for a workflow's file, <SecretsPrefix>shared
    for _default.oxoflow, and empty when the file's workflow is not known (nothing is allowed)."""

    source: str
    segments: tuple[str, ...]
    shared: bool = False

    def allows(self, reference: str) -> bool:
        """Whether the reference names a secret strictly inside this scope (compared on path
        segments of a normalised name: no '..', no '//', no trailing '/', no prefix of a segment)."""
        segments = reference_segments(reference)
        if not self.segments or segments is None:
            return False
        return len(segments) > len(self.segments) and segments[: len(self.segments)] == self.segments

    def under(self, reference: str) -> str:
        """Where this scope is, spelled as a reference of the same kind: ssm:/a/b/ or secretsmanager:a/b/."""
        path = "/".join(self.segments) + "/"
        return f"secretsmanager:{path}" if reference.startswith("secretsmanager:") else f"ssm:/{path}"

    def rule(self, reference: str) -> str:
        """Why a reference is refused: the rule only. The reference is never quoted (it may be a
        probe of another team's names)."""
        if not self.segments:
            return (f"a reference in {self.source} is refused: the file's workflow, and so its scope, is not known "
                    f"(name the file <workflow>{CONFIG_SUFFIX}, or pass --workflow)")  # fmt: skip
        whose = "the shared scope, as _default.oxoflow is read for every workflow" if self.shared else "the workflow's scope"
        return f"a reference in {self.source} may only name secrets under {self.under(reference)} ({whose})"


def secret_scope(source: str, secrets_prefix: str, config_prefix: str | None = None, workflow: str | None = None) -> SecretScope:
    """The scope of the config file ``source``: for ``workflow`` when given, else for the workflow
    its name says (workflow_of)."""
    base = prefix_segments(secrets_prefix)
    name = workflow if workflow is not None else workflow_of(source, config_prefix)
    if name == DEFAULT_CONFIG_NAME:
        return SecretScope(source, (*base, SHARED_SCOPE), shared=True)
    if name is not None and WORKFLOW_NAME.match(name):
        return SecretScope(source, (*base, WORKFLOWS_SCOPE, name))
    return SecretScope(source, ())


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
    """Return what is wrong with a webhook URL, without quoting it or any part of it (not even
    the host or the port: either may be part of a secret); None when it is fine."""
    if not url.strip():
        return "is empty"
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        return "contains whitespace or control characters"
    try:
        parts = urlsplit(url)
    except ValueError:  # its text quotes the host: not repeated
        return "is not a valid URL (its host cannot be parsed; a host in [brackets] must be an IPv6 address)"
    if parts.scheme not in ("http", "https"):
        if not parts.scheme:
            return "must use http or https (scheme is missing)"
        if parts.scheme in NAMED_SCHEMES:
            return f"must use http or https (scheme is {parts.scheme})"
        return "must use http or https (another scheme)"  # not named: it may be part of a secret
    if not parts.hostname:
        return "has no host"
    if parts.username is not None or parts.password is not None:
        return "must not carry credentials (user:password@); use the secret key for signing"
    try:
        port = parts.port
    except ValueError:  # its text quotes the port: not repeated
        port = 0
    if port == 0:
        return "is not usable: the URL's port is not a number between 1 and 65535"
    host_problem = check_host(parts.hostname, bracketed="[" in parts.netloc)
    return f"is not usable: the URL's host {host_problem}" if host_problem else None


def check_host(host: str, bracketed: bool = False) -> str | None:
    """What stops a URL's host (as urlsplit gives it: lowercase, no brackets) from being looked up,
    as the rest of a sentence about it and without quoting it; None for a usable name or IP literal."""
    if bracketed:
        try:
            ipaddress.IPv6Address(host.split("%", 1)[0])  # an optional zone (%25eth0) follows the address
        except ValueError:
            return "is in [brackets] but is not an IPv6 address"
        return None
    try:
        ipaddress.IPv4Address(host)
        return None
    except ValueError:
        pass
    if not host.isascii():
        # Encoders disagree on international names (IDNA 2003 here, IDNA 2008 in urllib3, or none
        # where the idna package is missing): refuse them here rather than fail at send time.
        return "has characters outside ASCII; write an international name in its xn-- (punycode) form"
    name = host[:-1] if _DOTS.fullmatch(host[-1:]) else host  # one trailing dot: a fully qualified name
    labels = _DOTS.split(name)
    if any(not label for label in labels):
        return "has an empty label (two dots in a row, or a dot at the start)"
    if any(len(label) > 63 for label in labels):
        return "has a label longer than 63 characters"
    try:
        encoded = name.encode("idna")
    except UnicodeError as exc:  # labels are not empty and not too long: so the encoded form is
        if "too long" in str(exc):
            return "has a label longer than 63 characters once IDNA-encoded"
        return "cannot be encoded as an internationalised domain name (IDNA)"
    if len(encoded) > 253:
        return "is longer than 253 characters"
    for label in encoded.split(b"."):
        if len(label) > 63:
            return "has a label longer than 63 characters once IDNA-encoded"
        if not _LABEL.fullmatch(label):
            return "has a character no host name can hold (only letters, digits, '-' and '_' between dots)"
    return None


def _header_lines(text: str) -> list[int]:
    """1-based line of each ``[[webhooks]]`` header, in order; tomli does not report positions."""
    return [i for i, line in enumerate(text.splitlines(), start=1) if _HEADER_LINE.match(line)]


def too_big(source: str, size: int | None) -> ConfigError:
    """The error for a file over MAX_CONFIG_BYTES (the store and the command line say it too);
    ``size`` None when only "more than the limit" is known (a body read no further)."""
    shown_size = f"{size:,} bytes" if size is not None else f"over {MAX_CONFIG_BYTES:,} bytes"
    return ConfigError(f"{source}: the file is {shown_size}; the limit is {MAX_CONFIG_BYTES:,} bytes (1 MiB)")


def too_deep(source: str, text: str, key: str | None = None) -> ConfigError:
    """The error for a file nested past MAX_NESTING, with the key and line when they can be found."""
    line, top = _deep_place(text)
    key = key if key is not None else top
    what = f"key '{shown(key)}'" if key is not None else "the file"
    where = f", at line {line}" if line else ""
    return ConfigError(f"{source}: {what} is nested more than {MAX_NESTING} levels deep (tables and arrays){where}; "
                       f"the limit is {MAX_NESTING}")  # fmt: skip


_LONG_NUMBER = re.compile(r"(?<![\w.])[+-]?[0-9][0-9_]{4300,}")


def too_long_number(source: str, text: str) -> ConfigError:
    """The error for an integer tomli cannot convert (over Python's 4,300 digits), with its key and
    line when they can be found."""
    match = _LONG_NUMBER.search(text)
    if match is None:
        return ConfigError(f"{source}: a number in the file is too long to read (integers have at most 4,300 digits)")
    line_start = text.rfind("\n", 0, match.start()) + 1
    line = text.count("\n", 0, match.start()) + 1
    key = _first_key(text, line_start) if "=" in text[line_start : match.start()] else None
    what = f"key '{shown(key)}' holds" if key else "the file holds"
    return ConfigError(f"{source}: {what} an integer too long to read, at line {line} (integers have at most 4,300 digits)")


def parse_config(raw: str | bytes, source: str, scope: SecretScope | None = None) -> Config:
    """Parse one .oxoflow file. Raises ConfigError only when the whole file is unusable: not UTF-8,
    a TOML syntax error, or over a limit (MAX_CONFIG_BYTES, MAX_NESTING, MAX_WEBHOOKS).

    With a ``scope`` (secret_scope: what the file's workflow may read), a webhook whose ``url`` or
    ``secret`` references a name outside it is refused here, before anything is read from AWS."""
    if isinstance(raw, str) and len(raw) > MAX_CONFIG_BYTES:
        raise too_big(source, None)
    size = len(raw) if isinstance(raw, bytes) else len(raw.encode("utf-8", "surrogatepass"))
    if size > MAX_CONFIG_BYTES:
        raise too_big(source, size)
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{source}: not UTF-8 text (byte {exc.start})") from None
    try:
        document = tomli.loads(text)
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
    _check_nesting(document, source, text)

    entries = document.get("webhooks", [])
    if not isinstance(entries, list):
        raise ConfigError(f"{source}: 'webhooks' must be an array of tables ([[webhooks]]), got {type(entries).__name__}")
    lines = _header_lines(text)
    count = len(entries) + ("webhook" in document)
    if count > MAX_WEBHOOKS:
        first_extra = f" (webhook #{MAX_WEBHOOKS + 1} is at line {lines[MAX_WEBHOOKS]})" if len(lines) > MAX_WEBHOOKS else ""
        raise ConfigError(f"{source}: has {count:,} webhooks; at most {MAX_WEBHOOKS} are allowed in one file{first_extra}")
    located: list[tuple[Any, str]] = []  # (entry, label: "[[webhooks]] #3 (line 20)" or "[webhook] (line 9)")
    for index, entry in enumerate(entries, start=1):
        line = lines[index - 1] if len(lines) == len(entries) else None
        located.append((entry, f"[[webhooks]] #{index}" + (f" (line {line})" if line else "")))
    if "webhook" in document:
        singular = document["webhook"]
        line = next((i for i, t in enumerate(text.splitlines(), start=1) if _SINGULAR_LINE.match(t)), None)
        label = "[webhook]" + (f" (line {line})" if line else "")
        if isinstance(singular, list):
            raise ConfigError(f"{source}: {label}: oxo-flow's [webhook] is a single table; for several webhooks use [[webhooks]]")
        located.append((_from_oxoflow(singular) if isinstance(singular, Mapping) else singular, label))
    results = [_parse_webhook(entry, f"{source}: {label}", source, index, scope) for index, (entry, label) in enumerate(located, start=1)]
    clashes = _identity_clashes([entry for entry, _ in located], [label for _, label in located])
    webhooks: list[Webhook] = []
    problems: list[ConfigProblem] = []
    for position, result in enumerate(results):
        clash = clashes.get(position)
        if clash is not None:  # refused whatever else it holds: its id could name another entry
            webhook_id = result.id if isinstance(result, Webhook) else result.webhook_id
            result = ConfigProblem(source, position + 1, webhook_id, f"{source}: {located[position][1]}: {clash}", result.events)
        if isinstance(result, Webhook):
            webhooks.append(result)
        else:
            problems.append(result)
    return Config(source=source, webhooks=tuple(webhooks), problems=tuple(problems))


def _identity(entry: Any) -> tuple[str | None, str | None]:
    """(its explicit id when that is valid, the id derived from its url and format when its url is
    a string) for one entry, valid or not: the ids its problem or its webhook is known by."""
    if not isinstance(entry, Mapping):
        return None, None
    explicit, url = entry.get("id"), entry.get("url")
    derived = webhook_id_for(url, str(entry.get("format", DEFAULT_FORMAT))) if isinstance(url, str) else None
    return (explicit if isinstance(explicit, str) and _ID.match(explicit) else None), derived


def _identity_clashes(entries: list[Any], labels: list[str]) -> dict[int, str]:
    """Entries (by 0-based position) that must all be refused because their ids would clash, and
    why. Retries find a webhook by its id alone, so an id two entries could answer to (the same
    url and format with a derived id, or the same id twice) would let pending retries reach the
    wrong one (with its headers and secret) once the file changes; keeping the first or numbering
    the second would make the id depend on the entry's position. An entry that is refused for
    another reason counts too: its problem carries the same id."""
    identities = [_identity(entry) for entry in entries]
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


def _check_nesting(document: dict[str, Any], source: str, text: str) -> None:
    """Refuse tables and arrays nested deeper than MAX_NESTING, anywhere in the file (ignored
    tables included): walked iteratively, so no depth can exhaust the stack here or later."""
    stack: list[tuple[Any, int, str]] = [(value, 1, key) for key, value in document.items()]
    while stack:
        item, depth, top = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > MAX_NESTING:
            raise too_deep(source, text, top)
        stack.extend((child, depth + 1, top) for child in children)


# Where a too-deep file goes deepest, for the message (tomli reports no position): a scan of the
# tokens that make structure. Strings and comments are skipped whole, so their brackets and dots
# do not count. Approximate by design; it only ever runs for a file already refused.
_TOKENS = re.compile(
    r'"""(?:[^\\]|\\.)*?"""'  # multi-line basic string
    r"|'''.*?'''"  # multi-line literal string
    r'|"(?:[^"\\\n]|\\.)*"'  # basic string
    r"|'[^'\n]*'"  # literal string
    r"|#[^\n]*"  # comment
    r"|[\[\]{}=.\n]",
    re.DOTALL,
)
_HEADER = re.compile(r"[ \t]*(\[\[?)[ \t]*([^\]\n]*)")
_FIRST_KEY = re.compile(r"""[ \t]*(?:"([^"\n]*)"|'([^'\n]*)'|([A-Za-z0-9_-]+))""")


def _first_key(text: str, start: int) -> str | None:
    match = _FIRST_KEY.match(text, start)
    return next((g for g in match.groups() if g is not None), None) if match else None


def _deep_place(text: str) -> tuple[int | None, str | None]:
    """(line, top-level key) where the file nests deepest: [table.headers], dotted.keys and inline
    arrays and tables together."""
    best: tuple[int, int | None, str | None] = (0, None, None)

    def note(level: int, line: int, key: str | None) -> None:
        nonlocal best
        if level > best[0]:
            best = (level, line, key)

    line, line_start, depth = 1, 0, 0
    table_levels, table_key = 0, None  # the current [table] or [[array]] header
    in_key, key_dots, statement_key = True, 0, None  # the key of the current key = value
    skip_to = -1
    for token in _TOKENS.finditer(text):
        kind, at = token.group(), token.start()
        if at < skip_to:
            continue
        if kind == "\n" or kind.startswith(('"""', "'''")):
            line += kind.count("\n")
            if kind == "\n":
                line_start = token.end()
                if depth == 0:
                    in_key, key_dots, statement_key = True, 0, None
            continue
        if kind == "[" and depth == 0 and in_key and not text[line_start:at].strip():
            header = _HEADER.match(text, line_start)
            if header is not None:
                table_levels = header.group(2).count(".") + 1 + (header.group(1) == "[[")
                table_key = _first_key(text, header.start(2))
                note(table_levels, line, table_key)
                newline = text.find("\n", at)
                skip_to = len(text) if newline == -1 else newline
                continue
        if depth == 0 and in_key and kind in (".", "="):
            statement_key = statement_key or _first_key(text, line_start)
            if kind == ".":
                key_dots += 1
            else:
                in_key = False
                note(table_levels + key_dots, line, table_key or statement_key)
            continue
        if kind in ("[", "{"):
            depth += 1
            note(table_levels + key_dots + depth, line, table_key or statement_key or _first_key(text, line_start))
        elif kind in ("]", "}"):
            depth = max(0, depth - 1)
    return best[1], best[2]


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
        f"unknown key '{shown(key)}'{did_you_mean(key, OXOFLOW_KEYS)}; allowed keys are {', '.join(OXOFLOW_KEYS)}"
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


def _invalid_id(entry: Any) -> str:
    """The id of an entry no webhook can come from (not a table, or no string url): a digest of
    what it holds, so that, like every other id, it does not depend on the entry's position."""
    held = json.dumps(entry, sort_keys=True, default=str, ensure_ascii=False)
    return "wh_invalid_" + hashlib.sha256(held.encode("utf-8", "surrogatepass")).hexdigest()[:12]


def _parse_webhook(entry: Any, where: str, source: str, index: int, scope: SecretScope | None = None) -> Webhook | ConfigProblem:
    """One entry as a Webhook, or the first problem found in it. Its id (the problem's too) is its
    explicit ``id`` when that is valid, whatever else is wrong, else the one derived from its url
    and format; whether ids clash between entries is parse_config's to check."""
    if not isinstance(entry, Mapping):
        return ConfigProblem(source, index, _invalid_id(entry), f"{where}: must be a table, got {type(entry).__name__}", None)

    events, events_error = _parse_events(entry.get("events"))
    url = entry.get("url")
    fmt = entry.get("format", DEFAULT_FORMAT)
    explicit_id, derived_id = _identity(entry)
    webhook_id = explicit_id or derived_id or _invalid_id(entry)

    def problem(message: str) -> ConfigProblem:
        return ConfigProblem(source, index, webhook_id, f"{where}: {message}", events)

    if isinstance(entry, _Oxoflow):
        if entry.error:
            return problem(entry.error)
    else:
        for key in entry:
            if key not in WEBHOOK_KEYS:
                return problem(f"unknown key '{shown(key)}'{did_you_mean(key, WEBHOOK_KEYS)}; allowed keys are {', '.join(WEBHOOK_KEYS)}")
    if events_error:
        return problem(f"key 'events': {events_error}")
    if url is None:
        return problem("key 'url' is required")
    if not isinstance(url, str):
        return problem(f"key 'url' must be a string, got {type(url).__name__}")
    if is_reference(url):
        if not _REFERENCE.match(url):
            return problem("key 'url' is not a valid reference (ssm:/path/name or secretsmanager:name[#key])")
        if scope is not None and not scope.allows(url):
            return problem(f"key 'url': {scope.rule(url)}")
    else:
        url_error = check_url(url)
        if url_error:
            return problem(f"key 'url' {url_error}")
    if not isinstance(fmt, str):
        return problem(f"key 'format' must be a string, got {type(fmt).__name__}")
    if fmt not in FORMATS:
        return problem(f"key 'format': unknown format '{shown(fmt)}'{did_you_mean(fmt, FORMATS)}; expected one of {', '.join(FORMATS)}")
    secrets, secrets_error = _parse_secrets(entry.get("secret"))
    if secrets_error:
        return problem(f"key 'secret' {secrets_error}")
    if scope is not None:
        for number, secret in enumerate(secrets, start=1):
            if is_reference(secret) and not scope.allows(secret):
                entry_number = f" (entry {number})" if isinstance(entry.get("secret"), list) else ""
                return problem(f"key 'secret'{entry_number}: {scope.rule(secret)}")
    signature = entry.get("signature", "hub-sha256")
    if signature not in SIGNATURES:
        text = shown(signature) if isinstance(signature, str) else type(signature).__name__
        hint = did_you_mean(signature, SIGNATURES) if isinstance(signature, str) else ""
        return problem(f"key 'signature': unknown scheme '{text}'{hint}; expected one of {', '.join(SIGNATURES)}")
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
        text = shown(method) if isinstance(method, str) else type(method).__name__
        return problem(f"key 'method': '{text}' is not supported; use post or put")
    scheme = entry.get("signature_scheme")
    if scheme is not None and scheme not in SIGNATURE_SCHEMES:
        if scheme == "sha256-keyed":
            return problem("key 'signature_scheme': oxo-flow's legacy 'sha256-keyed' (sha256 of secret + body) is not an HMAC "
                           "and is not supported; use 'hmac-sha256', oxo-flow's default")  # fmt: skip
        text = shown(scheme) if isinstance(scheme, str) else type(scheme).__name__
        hint = did_you_mean(scheme, SIGNATURE_SCHEMES) if isinstance(scheme, str) else ""
        return problem(f"key 'signature_scheme': unknown scheme '{text}'{hint}; use hmac-sha256")
    if scheme is not None and not secrets:
        return problem("key 'signature_scheme' needs a secret to sign with")
    if "id" in entry and explicit_id is None:
        return problem("key 'id' must be 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit")
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


def _parse_events(value: Any) -> tuple[frozenset[str] | None, str | None]:
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
    names: set[str] = set()
    everything = False
    errors: list[str] = []
    reported: set[str] = set()
    unknown = more = 0
    for number, item in enumerate(value, start=1):
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
    if len(value) > MAX_EVENTS:
        errors.insert(0, f"has {len(value):,} entries; at most {MAX_EVENTS} are allowed ({len(EVENT_NAMES)} events exist; '*' means all)")
    events = None if everything else frozenset(names) or None
    if errors:
        return events, "; ".join(errors)
    if not names and not everything:
        return None, "is empty; omit it to receive every event, or list some of " + ", ".join(EVENT_NAMES)
    return events, None

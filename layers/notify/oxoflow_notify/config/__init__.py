"""What an ``.oxoflow`` file's ``[[webhooks]]`` become: the data model, and the vocabulary and limits users read about.

A real oxo-flow workflow file has many other tables ([workflow], [config], [[rules]], ...); they
are accepted and ignored. One bad webhook does not silence the others: it becomes a
``ConfigProblem`` that the notifier dead-letters for each event it would have matched.
Messages never quote a URL or a secret (a Slack URL is itself a secret), nor a header's value.

Where the rest lives (each a module of this package): ``parse`` reads a file (``parse_config``),
``limits`` refuses files over the limits below, ``webhook_keys`` checks one entry key by key
(``webhook_values`` reads the structured keys, ``urls`` the URL), ``webhook_ids`` gives each entry
its id, ``lines`` finds the line a problem is on, ``scopes`` says which secrets a file may reference,
``publish`` reads the ``[publish]`` table, ``format_names`` names the formats, and ``oxoflow_table``
translates oxo-flow's own ``[webhook]``. The numbers themselves live in ``oxoflow_notify.defaults``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from urllib.parse import urlsplit

from oxoflow_notify.defaults import DEFAULTS

WEBHOOK_KEYS = (
    "url",
    "events",
    "format",
    "secret",
    "signature",
    "id",
    "headers",
    "timeout",
    "max_attempts",
    "method",
    "signature_scheme",
    "digest",
    "rate_limit",
    "disable_after",
    "routing_key",
    "incident_per",
    "severity",
    "overdue",
    "silent",
    "live",
    "live_interval",
    "channel",
    "token",
)
SIGNATURES = ("hub-sha256", "standard-webhooks")
SIGNATURE_SCHEMES = ("hmac-sha256",)  # oxo-flow's X-OxoFlow-Signature
METHODS = ("POST", "PUT")
TIMEOUT_RANGE = (DEFAULTS.timeout_min, DEFAULTS.timeout_max)  # seconds; the function itself times out at 60
# seconds: a digest window closes by a delayed SQS message, and SQS delays at most 15 minutes
DIGEST_RANGE = (DEFAULTS.digest_min, DEFAULTS.digest_max)
RATE_LIMIT_MAX = DEFAULTS.rate_limit_max  # POSTs per second to one webhook
# Default POSTs per second by format, from the receivers' documented limits (0: no limit): Slack about
# one message a second per webhook, Google Chat 60 a minute per space (text), Discord 30 a minute per
# channel, Teams' connectors 4 a second. json and oxoflow receivers are the user's own.
DEFAULT_RATE_LIMITS = {"slack": DEFAULTS.rate_limit_slack, "text": DEFAULTS.rate_limit_text, "discord": DEFAULTS.rate_limit_discord,
                       "teams": DEFAULTS.rate_limit_teams, "json": 0.0, "oxoflow": 0.0}  # fmt: skip
# A value may name where it is kept instead of holding it: ssm:/path/name or secretsmanager:name[#json-key].
# (Every pattern ends in \Z, not $: "$" also matches before a trailing newline.)
REFERENCE = re.compile(r"^(?:ssm:/[A-Za-z0-9_.\-/]+|secretsmanager:[A-Za-z0-9_/+=.@\-]+(?:#[^#\s]+)?)\Z")

# Limits (README "Limits"): past them a file, or one webhook's key, is refused with a message.
MAX_CONFIG_BYTES = DEFAULTS.max_config_bytes  # 1 MiB per .oxoflow file
MAX_NESTING = DEFAULTS.max_nesting  # levels of tables and arrays in a file (a [[webhooks]] entry's headers are level 3)
MAX_WEBHOOKS = DEFAULTS.max_webhooks  # [[webhooks]] entries plus oxo-flow's [webhook], per file
MAX_EVENTS = DEFAULTS.max_events  # entries in one webhook's `events` (there are 8 events, in 2 spellings)
MAX_REPORTED = DEFAULTS.max_reported  # unknown events named in one problem; the rest are counted
MAX_HEADER_VALUE = DEFAULTS.max_header_value  # characters


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
    digest: float | None = None  # seconds: Rule* events of one run within this window go out as one message
    rate_limit: float | None = None  # POSTs per second across every instance; None: the format's default, 0: off
    disable_after: float = DEFAULTS.disable_after  # seconds without a 2xx, while failing, before it is disabled; 0: never
    incident_per: str = "workflow"  # pagerduty: one incident per workflow, or per run
    severity: str | None = None  # pagerduty: every trigger's severity (None: by event, failed "error")
    overdue: float | None = None  # seconds: a started run not ended by then is reported (WorkflowOverdue)
    entry_digest: str = ""  # 64 bits of the entry as written (references unresolved): a changed entry has another
    silent: float | None = None  # seconds: a started run with no event for this long is reported
    live: bool = False  # slack/discord: one message per run, edited as the run goes (pipeline.live), not one per event
    live_interval: float = DEFAULTS.live_interval  # seconds: at most one edit this often per live message
    channel: str | None = None  # live slack: the channel id chat.postMessage posts to

    @property
    def pace(self) -> float:
        """POSTs per second this webhook is held to (0: not limited)."""
        return DEFAULT_RATE_LIMITS.get(self.format, 0.0) if self.rate_limit is None else self.rate_limit

    @property
    def secret(self) -> str | None:
        """The secret X-Hub-Signature-256 uses: the first (none for pagerduty, whose one secret is its routing key, nor for
        a live webhook: it talks to the platform's API, which signatures mean nothing to)."""
        return self.secrets[0] if self.secrets and self.format != "pagerduty" and not self.live else None

    @property
    def token(self) -> str | None:
        """live slack: the bot token the Web API takes (Authorization: Bearer), kept as the webhook's one secret."""
        return self.secrets[0] if self.secrets and self.live and self.format == "slack" else None

    @property
    def routing_key(self) -> str | None:
        """pagerduty: the Events API v2 integration key, kept (and resolved, scrubbed) as a secret."""
        return self.secrets[0] if self.secrets and self.format == "pagerduty" else None

    @property
    def standard_webhooks(self) -> bool:
        if self.format == "pagerduty" or self.live:
            return False
        return self.signature == "standard-webhooks" or any(s.startswith("whsec_") for s in self.secrets)

    def matches(self, event: str) -> bool:
        """Whether the event is delivered to it on its own; never for a live webhook, which follows
        every event of a run in its one message (pipeline.live) instead."""
        return not self.live and (self.events is None or event in self.events)

    @cached_property
    def host(self) -> str:
        """The only part of the URL safe to log ('' while the URL is still a reference). Read for
        every attempt's metrics and logs: parsed once per webhook."""
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
    parts: tuple[tuple[int | None, str], ...] = ()  # each problem alone, with its key's line: what validate lists

    def matches(self, event: str) -> bool:
        return self.events is None or event in self.events


@dataclass(frozen=True)
class Config:
    source: str
    webhooks: tuple[Webhook, ...] = ()
    problems: tuple[ConfigProblem, ...] = ()
    # [publish] key: newest first; any verifies the oxoflow-signature of the workflow's events (config.publish)
    publish_keys: tuple[str, ...] = field(default=(), repr=False)
    publish_problem: ConfigProblem | None = None  # a [publish] table that cannot be used: the workflow's events are refused

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
    """Whether a url or secret names where its value is kept (ssm:, secretsmanager:) rather than holding it."""
    return value.startswith(("ssm:", "secretsmanager:"))

"""Every user-visible default and limit, once: the code reads them here and a test checks the docs against them.

Each entry is a field of ``Defaults`` (its value, typed) with its unit, what governs it (an environment
variable, an ``.oxoflow`` key, or ``""`` for a constant no setting changes), the range a setting accepts
and a line of meaning; ``rows()`` lists them as a table. This module imports nothing from the package,
so every layer (config, outbound, pipeline, aws) can read it without an import against the data path.
"""

from __future__ import annotations

from functools import cache
from typing import Any, NamedTuple, TypeVar

Value = bool | int | float | str | tuple[int, ...]
V = TypeVar("V", bool, int, float, str, tuple[int, ...])
_ABOUT: list[dict[str, Any]] = []  # each entry's description, in the order the class body declares them


def _entry(value: V, unit: str, governs: str, meaning: str, low: float | None = None, high: float | None = None) -> V:
    """``value`` as the field's default, its description kept in declaration order (read by ``rows``)."""
    _ABOUT.append({"unit": unit, "governs": governs, "meaning": meaning, "low": low, "high": high})
    return value


class Defaults:
    """The table. Field order is the order the docs read best in: settings, webhooks, limits, pacing, digests.

    A plain class, read-only (no instance attributes at all): a dataclass of this many fields costs
    a cold start about 3 ms to build, for nothing the table needs."""

    __slots__ = ()

    # Function settings (environment variables; the template sets some from its parameters).
    config_prefix: str = _entry("workflows/", "", "CONFIG_PREFIX", "where .oxoflow files live in the config bucket")
    retry_schedule: tuple[int, ...] = _entry(
        (5, 300, 1800, 7200, 18000, 36000, 36000), "s", "RETRY_SCHEDULE", "waits between attempts: 8 attempts over about 27.5 hours"
    )
    config_cache_seconds: float = _entry(60.0, "s", "CONFIG_CACHE_SECONDS", "a warm function trusts its cached config this long", 0, 86400)
    retry_jitter: float = _entry(0.2, "fraction", "RETRY_JITTER", "each retry's wait is spread by +/- this much", 0, 0.5)
    throttle_floor: float = _entry(60.0, "s", "RETRY_AFTER_THROTTLE_SECONDS", "the least wait after a 429 or a timeout", 0, 3600)
    circuit_threshold: int = _entry(5, "failures", "CIRCUIT_THRESHOLD", "retryable failures in a row before a circuit may open", 1, 1000)
    circuit_cooldown: float = _entry(30.0, "s", "CIRCUIT_COOLDOWN_SECONDS", "how long an open circuit holds its deliveries", 0, 3600)
    connect_timeout: float = _entry(3.05, "s", "CONNECT_TIMEOUT_SECONDS", "connect timeout of every POST", 0.1, 60)
    read_timeout: float = _entry(10.0, "s", "READ_TIMEOUT_SECONDS", "read timeout of a POST whose webhook sets no timeout", 0.1, 300)
    max_concurrency: int = _entry(64, "POSTs", "MAX_CONCURRENCY", "POSTs at once per invocation", 1, 256)
    secrets_prefix: str = _entry("oxoflow-notify/", "", "SECRETS_PREFIX", "where webhook URLs and secrets may be kept")
    secrets_cache_seconds: int = _entry(300, "s", "SECRETS_CACHE_SECONDS", "a resolved reference is reused this long", 0, 86400)
    require_https: bool = _entry(True, "", "REQUIRE_HTTPS", "refuse http:// webhook URLs")
    ledger_ttl_seconds: int = _entry(
        1_296_000, "s", "LEDGER_TTL_SECONDS", "15 days: outlives the retry schedule and the dead letters' 14", 3600, 31_536_000
    )
    invocation_reserve: float = _entry(
        5.0, "s", "INVOCATION_RESERVE_SECONDS", "kept back from POSTs at each invocation's end, to queue retries and dead letters", 0, 60
    )
    claim_wait: float = _entry(60.0, "s", "CLAIM_WAIT_SECONDS", "a claim left by a crashed run expires within that run's timeout", 0, 900)
    delivery_log_days: int = _entry(30, "days", "DELIVERY_LOG_DAYS", "how long the delivery log keeps each attempt", 1, 3650)
    retry_receives: int = _entry(
        5, "receives", "", "the retry queue's maxReceiveCount: on the last, a message still failing is dead-lettered with its fault"
    )

    # One webhook's keys (.oxoflow).
    timeout_min: float = _entry(0.5, "s", "timeout", "the shortest read timeout a webhook may set")
    timeout_max: float = _entry(30.0, "s", "timeout", "the longest read timeout a webhook may set (the function times out at 60)")
    max_attempts_max: int = _entry(50, "attempts", "max_attempts", "the most attempts a webhook may ask for")
    digest_min: int = _entry(1, "s", "digest", "the shortest digest window")
    digest_max: int = _entry(900, "s", "digest", "the longest digest window: its close is a delayed SQS message")
    rate_limit_max: float = _entry(100.0, "POSTs/s", "rate_limit", "the highest rate limit a webhook may set")
    disable_after: float = _entry(
        432_000.0, "s", "disable_after", "5 days: a webhook with no 2xx this long while its deliveries fail is disabled (0: never)"
    )
    disable_after_min: float = _entry(60.0, "s", "disable_after", "the shortest disable_after (other than 0, never)")
    disable_after_max: float = _entry(7_776_000.0, "s", "disable_after", "the longest disable_after: 90 days")
    watch_min: float = _entry(60.0, "s", "overdue", "the shortest overdue or silent a webhook may set")
    watch_max: float = _entry(604_800.0, "s", "overdue", "the longest overdue or silent: 7 days")
    live_interval: float = _entry(5.0, "s", "live_interval", "a live message is edited at most once this often (live = true)")
    live_interval_min: float = _entry(2.0, "s", "live_interval", "the shortest live_interval: Slack's chat.update allows about 50 a minute")
    live_interval_max: float = _entry(900.0, "s", "live_interval", "the longest live_interval: its timer is a delayed SQS message")
    live_replies: int = _entry(10, "replies", "live", "RuleFailed replies a live Slack message's thread gets at most; the rest are counted")
    live_lease: float = _entry(
        60.0, "s", "", "one instance edits a live message at a time, holding it this long, or as long as its invocation can still act"
    )
    notice_lease: float = _entry(
        1200.0, "s", "", "a disabled webhook's notice, claimed by an instance that died before it was sent, is sent by another after this"
    )
    rate_limit_slack: float = _entry(1.0, "POSTs/s", "rate_limit", "slack's default: about one message a second per webhook")
    rate_limit_text: float = _entry(1.0, "POSTs/s", "rate_limit", "text's default: Google Chat's 60 a minute per space")
    rate_limit_discord: float = _entry(0.5, "POSTs/s", "rate_limit", "discord's default: 30 a minute per channel")
    rate_limit_teams: float = _entry(4.0, "POSTs/s", "rate_limit", "teams' default: its connectors' 4 a second")

    # Limits of a config file and of an event.
    max_config_bytes: int = _entry(1_048_576, "bytes", "", "1 MiB per .oxoflow file")
    max_nesting: int = _entry(32, "levels", "", "tables and arrays nested in a config file")
    max_webhooks: int = _entry(100, "webhooks", "", "[[webhooks]] entries plus oxo-flow's [webhook], per file")
    max_events: int = _entry(64, "entries", "events", "entries in one webhook's events")
    max_reported: int = _entry(3, "names", "", "unknown names quoted in one problem; the rest are counted")
    max_header_value: int = _entry(4096, "characters", "headers", "one header value")
    max_message_bytes: int = _entry(262_144, "bytes", "", "one event: SNS's own limit")
    max_message: int = _entry(4096, "characters", "", "an event's message")
    max_event_nesting: int = _entry(32, "levels", "", "objects and arrays on any path of an event")
    max_int_digits: int = _entry(4300, "digits", "", "an integer in a config file or an event")
    min_publish_key: int = _entry(16, "characters", "", "a literal [publish] key")

    # Answers, retries, the breaker and caches.
    response_snippet: int = _entry(512, "characters", "", "of a receiver's answer kept in logs and dead letters")
    response_limit: int = _entry(65_536, "bytes", "", "of a receiver's answer read at most")
    retry_after_max: int = _entry(3600, "s", "", "the longest wait a receiver's Retry-After may ask for")
    secret_hold: float = _entry(30.0, "s", "", "a delivery whose secret or ledger claim a store could not give comes back after about this")
    circuit_min_failure_rate: float = _entry(
        0.8, "fraction", "", "of a circuit's last answers (4 x the threshold, at least half of them seen) that failed before it opens"
    )
    max_circuits: int = _entry(10_000, "circuits", "", "circuits one warm container remembers")
    max_cached_configs: int = _entry(1_000, "files", "", "parsed config files one warm container keeps")
    sqs_max_delay: int = _entry(900, "s", "", "the longest a queue holds a message back; longer waits hop")
    sqs_message_limit: int = _entry(262_144, "bytes", "", "the queues' MaximumMessageSize; a larger letter is kept in S3")

    # Pacing (rate limits).
    pace_wait: float = _entry(3.0, "s", "", "a POST may wait in its thread this long for its rate-limit slot")
    pace_early: float = _entry(2.0, "s", "", "a held delivery comes back this long before its slot")
    pace_early_max: float = _entry(30.0, "s", "", "... and earlier each time it came back too late, up to this")
    replay_wait: float = _entry(60.0, "s", "", "a replay waits this long for a letter's rate-limit slot")
    interval_margin: float = _entry(0.1, "fraction", "", "slots are 1/rate x 1.1 apart")
    max_skew: float = _entry(4.0, "s", "", "the most two senders' clocks are assumed to differ by")

    # Digests.
    keep_failed: int = _entry(10, "events", "", "RuleFailed events a window keeps in full")
    keep_other: int = _entry(10, "events", "", "other Rule* events a window keeps in full")
    keep_event_bytes: int = _entry(8_000, "bytes", "", "a larger event is kept trimmed (its stderr's tail, its message's head)")
    window_bytes: int = _entry(160_000, "bytes", "", "kept events per window: 20 x 8,000 fits, so a window never fills")
    stale_after: int = _entry(60, "s", "", "past its duration, an open window whose close never came is closed by the next event")
    recent_windows: int = _entry(16, "windows", "", "without a run_id, the latest windows a run's ending closes")


DEFAULTS = Defaults()
_NAMES = tuple(Defaults.__annotations__)  # the fields, in declaration order (one _entry each)
if len(_NAMES) != len(_ABOUT):
    raise RuntimeError("every field of Defaults must be declared with _entry(...)")


class Row(NamedTuple):
    """One line of the table, for the docs check and anyone printing it (a NamedTuple: a third of a
    dataclass's cost to a cold start)."""

    name: str
    value: Value
    unit: str
    governs: str
    meaning: str
    low: float | None
    high: float | None


def rows() -> tuple[Row, ...]:
    """The table, in field order."""
    return tuple(_by_name().values())


def row(name: str) -> Row:
    """One entry by its field name; KeyError names an entry that does not exist."""
    found = _by_name().get(name)
    if found is None:
        raise KeyError(f"no default named {name!r} in oxoflow_notify.defaults")
    return found


@cache
def _by_name() -> dict[str, Row]:
    return {name: Row(name, getattr(DEFAULTS, name), **about) for name, about in zip(_NAMES, _ABOUT, strict=True)}

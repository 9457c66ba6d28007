"""What an attempt's result means, decided in one place: delivered, already delivered, held,
retry (with the wait) or give up (with the reason code).

Metrics, logs, the circuit breaker, the ledger and the queues all act on the one ``Decision``
that ``decide`` returns, the way svix's worker has one result per dispatch. Holds (too little
invocation time, another run's claim, an open circuit) never spend an attempt, never count as a
failure and never touch the breaker.

Status codes decide most answers; a few receivers need their documented answers read:
- Slack answers ``ok``; 400 ``invalid_payload``, 403 ``action_prohibited``, 404 ``channel_not_found``
  and 410 ``channel_is_archived`` are permanent (the last two mean the webhook is gone).
- Discord answers 204; 404 is an unknown (deleted) webhook; a 429 carries ``retry_after`` in JSON.
- Teams answers 200 or 202, but its connectors also answered 200 with an error text in the body:
  that is a failure, retried.
The reason never quotes a URL, and quotes a receiver's body only as a short, cleaned snippet.
"""

from __future__ import annotations

import enum
import json
import math
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import assert_never

from oxoflow_notify.defaults import DEFAULTS
from oxoflow_notify.outbound.delivery import RETRYABLE_STATUS, Outcome
from oxoflow_notify.outbound.echoes import scrub
from oxoflow_notify.outbound.failures import Failure, Nature, nature

from . import deadletter as dl
from .retry import held, next_delay, parse_retry_after

# A delivery whose secret, or whose ledger claim, a store could not give (throttled, timed out) comes back after about
# this long (spread 0.5x-1.5x so a store's recovery is not met by every held delivery at once).
SECRET_HOLD_SECONDS = DEFAULTS.secret_hold
_URL = re.compile(r"https?://\S+", re.IGNORECASE)
_GONE = {
    ("slack", 404): "Slack: channel_not_found, the webhook's channel is gone",
    ("slack", 410): "Slack: channel_is_archived",
    ("discord", 404): "Discord: unknown webhook, it was deleted",
    ("teams", 404): "Teams: the workflow behind this webhook is gone",
}


class Kind(enum.Enum):
    """The five things an attempt can come to."""

    DELIVERED = "delivered"  # the receiver answered 2xx
    ALREADY_DELIVERED = "already_delivered"  # nothing sent: a 2xx (or this very attempt) is already on record
    HELD = "held"  # nothing sent, no attempt spent: look again after ``wait``
    RETRY = "retry"  # the attempt failed; the next one after ``wait``
    GIVE_UP = "give_up"  # dead-lettered with ``code``


@dataclass(frozen=True)
class Verdict:
    """What one answer (or failure to answer) means, before the schedule is consulted."""

    kind: Kind  # DELIVERED, RETRY or GIVE_UP (HELD / Failure.ALREADY_DELIVERED for the ledger's and our holds)
    reason: str  # one phrase for logs and dead letters
    retry_after: float | None = None  # seconds the receiver asked us to wait


@dataclass(frozen=True)
class Decision:
    """What to do with one attempt: the only thing the notifier acts on."""

    kind: Kind
    reason: str
    wait: float = 0.0  # HELD and RETRY: seconds until the delivery is looked at again
    code: str | None = None  # GIVE_UP: the dead letter's reason code; HELD without an attempt: why (circuit_open)
    endpoint_failed: bool | None = None  # what the circuit breaker learns: True, False, or nothing (None)

    @property
    def spends_attempt(self) -> bool:
        return self.kind in (Kind.DELIVERED, Kind.RETRY, Kind.GIVE_UP)


def snippet(body: str, limit: int = 80) -> str:
    """First line of a receiver's answer, URLs and key-like tokens removed, short: safe to log.
    The answer was cleaned of our secrets as it was read (delivery.redact); scrubbing again here
    keeps an Outcome built anywhere else from quoting a key."""
    line = scrub(_URL.sub("<url>", body.strip().splitlines()[0] if body.strip() else ""))
    line = "".join(ch for ch in line if ch.isprintable())
    return line[:limit] + ("…" if len(line) > limit else "")


def _discord_retry_after(body: str) -> float | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    value = data.get("retry_after") if isinstance(data, dict) else None
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        return None
    return held(float(value))  # the same hour at most as a Retry-After header


def judge(fmt: str, outcome: Outcome, now: float) -> Verdict:
    """Classify one result: a transport error by its class, an answer by its status and, for the
    chat services, by their documented answers."""
    if outcome.error is not None or outcome.status is None:
        return _unanswered(outcome)
    status = outcome.status
    if 200 <= status < 300:
        lowered = outcome.snippet.lower()
        if fmt == "teams" and ("error" in lowered or "failed" in lowered):
            return Verdict(Kind.RETRY, f"HTTP {status} with an error in the body: {snippet(outcome.snippet)}")
        return Verdict(Kind.DELIVERED, f"HTTP {status}")
    said = snippet(outcome.snippet)
    described = f"HTTP {status}" + (f" {said}" if said else "")
    retry_after = parse_retry_after(outcome.retry_after, now)
    if retry_after is None and fmt == "discord" and status == 429:
        retry_after = _discord_retry_after(outcome.snippet)
    if (fmt, status) in _GONE:
        return Verdict(Kind.GIVE_UP, f"HTTP {status} ({_GONE[fmt, status]})")
    if 300 <= status < 400:
        return Verdict(Kind.GIVE_UP, f"HTTP {status} (redirects are not followed)")
    if status in RETRYABLE_STATUS:
        return Verdict(Kind.RETRY, described, retry_after)
    return Verdict(Kind.GIVE_UP, described)


def _unanswered(outcome: Outcome) -> Verdict:
    """A failure without an answer, by its nature (``failures.nature``: every name placed)."""
    if outcome.error is None:
        return Verdict(Kind.RETRY, outcome.describe())  # no status and no error: nothing came back
    match nature(outcome.error):
        case Nature.DONE:
            return Verdict(Kind.ALREADY_DELIVERED, outcome.describe())
        case Nature.HOLD:
            return Verdict(Kind.HELD, outcome.describe())
        case Nature.REFUSED:
            return Verdict(Kind.GIVE_UP, outcome.describe())
        case Nature.OURS | Nature.TIMEOUT | Nature.RECEIVER:
            return Verdict(Kind.RETRY, outcome.describe())
        case unplaced:
            assert_never(unplaced)


def delivered(fmt: str, outcome: Outcome, now: float) -> bool:
    """Whether the ledger should record this answer as the delivery's 2xx."""
    return judge(fmt, outcome, now).kind is Kind.DELIVERED


@dataclass(frozen=True)
class Policy:
    """The retry policy ``decide`` applies: the settings' schedule and spreads."""

    schedule: tuple[int, ...]
    jitter: float = 0.0
    throttle_floor: float = 0.0
    claim_wait: float = 60.0
    rand: Callable[[], float] = random.random


def decide(fmt: str, outcome: Outcome, attempt: int, max_attempts: int | None, policy: Policy, now: float) -> Decision:
    """The one decision for attempt number ``attempt``: from the outcome, the receiver's answer
    and the retry schedule."""
    verdict = judge(fmt, outcome, now)
    if verdict.kind is Kind.DELIVERED:
        return Decision(Kind.DELIVERED, verdict.reason, endpoint_failed=False)
    if verdict.kind is Kind.ALREADY_DELIVERED:
        return Decision(Kind.ALREADY_DELIVERED, verdict.reason)
    if verdict.kind is Kind.HELD:
        return _held(outcome, verdict.reason, policy)
    # A failure of the receiver (an answer, or none in time) teaches the breaker; one of ours does not.
    failure = nature(outcome.error) if outcome.error is not None else Nature.RECEIVER
    blames = failure in (Nature.RECEIVER, Nature.TIMEOUT)
    if outcome.error == Failure.ENDPOINT_DISABLED:  # replayable once the webhook is enabled again
        return Decision(Kind.GIVE_UP, verdict.reason, code=dl.ENDPOINT_DISABLED)
    if verdict.kind is Kind.GIVE_UP:
        return Decision(Kind.GIVE_UP, f"{verdict.reason} (permanent; not retried)", code=dl.PERMANENT_FAILURE,
                        endpoint_failed=None)  # fmt: skip
    wait = next_delay(
        policy.schedule,
        attempt,
        verdict.retry_after,
        max_attempts=max_attempts,
        throttled=outcome.status == 429 or failure is Nature.TIMEOUT,
        throttle_floor=policy.throttle_floor,
        jitter=policy.jitter,
        rand=policy.rand,
    )
    if wait is None:
        return Decision(Kind.GIVE_UP, f"gave up after {attempt} attempts; last: {verdict.reason}", code=dl.RETRIES_EXHAUSTED,
                        endpoint_failed=blames or None)  # fmt: skip
    return Decision(Kind.RETRY, verdict.reason, wait=wait, endpoint_failed=blames or None)


def _held(outcome: Outcome, reason: str, policy: Policy) -> Decision:
    """A hold's wait. Out of invocation time: at once, by the next run. Another run's claim: when
    it expires. The rate limit: just before the slot reserved for it. A store's hiccup (a secret,
    the ledger): back soon, spread. No attempt is spent."""
    match outcome.error:
        case Failure.RATE_LIMITED:
            return Decision(Kind.HELD, reason, wait=max(0.0, outcome.hold_for or 0.0), code=Failure.RATE_LIMITED)
        case Failure.SECRET_UNAVAILABLE | Failure.LEDGER_UNAVAILABLE:
            return Decision(Kind.HELD, reason, wait=SECRET_HOLD_SECONDS * (0.5 + policy.rand()), code=outcome.error)
        case Failure.OUT_OF_TIME:
            return Decision(Kind.HELD, reason, wait=0.0)
        case _:
            return Decision(Kind.HELD, reason, wait=policy.claim_wait)


def pause_for(fmt: str, outcome: Outcome, now: float) -> float | None:
    """Seconds a 429 asked everyone to wait (Retry-After, or Discord's retry_after); None otherwise."""
    if outcome.status != 429:
        return None
    wait = parse_retry_after(outcome.retry_after, now)
    if wait is None and fmt == "discord":
        wait = _discord_retry_after(outcome.snippet)
    return wait


def circuit_open(wait: float) -> Decision:
    """The breaker's own hold: the endpoint is left alone for ``wait`` seconds."""
    return Decision(Kind.HELD, "endpoint circuit open", wait=wait, code="circuit_open")

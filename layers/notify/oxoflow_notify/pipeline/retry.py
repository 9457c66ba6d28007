"""The retry schedule and the retry-queue message.

Delays longer than SQS's 15-minute maximum hop through the queue: the message carries a
not-before time and is re-sent until it is due, one receive per 15 minutes of wait.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

from oxoflow_notify.defaults import DEFAULTS
from oxoflow_notify.errors import NotifyError, SettingsError

from .ports import SQS_MAX_DELAY

# Svix-like: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h -> 8 attempts over about 27.5 hours.
DEFAULT_RETRY_SCHEDULE: tuple[int, ...] = DEFAULTS.retry_schedule
RETRY_AFTER_MAX = DEFAULTS.retry_after_max  # a receiver cannot park a delivery for longer than an hour per answer
RETRY_SCHEMA = "oxoflow-notify/retry/v1"
CLOSE_SCHEMA = "oxoflow-notify/digest-close/v1"  # a digest window's close (pipeline.windows writes and reads it)
LIVE_SCHEMA = "oxoflow-notify/live/v1"  # a live message's timer (pipeline.live)


class RetryMessageError(NotifyError):
    code = "malformed_retry"


def parse_schedule(text: str) -> tuple[int, ...]:
    """``"5,300,1800"`` -> (5, 300, 1800). Empty entries are refused, so typos are loud."""
    delays: list[int] = []
    for position, part in enumerate(text.split(","), start=1):
        part = part.strip()
        try:
            value = float(part)
        except ValueError:
            raise SettingsError(f"RETRY_SCHEDULE entry {position} ({part!r}) is not a number of seconds") from None
        if not 0 <= value <= 7 * 86400 or math.isnan(value):
            raise SettingsError(f"RETRY_SCHEDULE entry {position} ({part!r}) must be between 0 and 604800 seconds")
        delays.append(math.ceil(value))
    return tuple(delays)


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Retry-After as seconds (``120``) or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - now
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    if math.isnan(seconds):
        return None
    return held(seconds)


def held(seconds: float) -> float:
    """A receiver's wait, as long as it asks but never past RETRY_AFTER_MAX (nor below nothing)."""
    return max(0.0, min(float(RETRY_AFTER_MAX), seconds))


def next_delay(
    schedule: tuple[int, ...],
    attempts_made: int,
    retry_after: float | None = None,
    *,
    max_attempts: int | None = None,
    throttled: bool = False,
    throttle_floor: float = 0.0,
    jitter: float = 0.0,
    rand: Callable[[], float] = random.random,
) -> float | None:
    """Seconds to wait before the next attempt, or None when no attempt is left.

    The schedule's delay, spread by +/- ``jitter`` (so a receiver's outage does not end in a
    thundering herd), at least ``throttle_floor`` after a 429 or a timeout, and never shorter
    than the receiver's ``Retry-After``. ``max_attempts`` (per webhook) may end the schedule early.
    """
    if max_attempts is not None and attempts_made >= max_attempts:
        return None
    if attempts_made < 1 or attempts_made - 1 >= len(schedule):
        return None
    delay = float(schedule[attempts_made - 1])
    if jitter:
        delay *= 1 + jitter * (2 * rand() - 1)
    if throttled:
        delay = max(delay, throttle_floor)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return max(0.0, delay)


FAR_FUTURE_MARGIN = 2 * 86400  # seconds past the longest scheduled wait that a not_before may still lie ahead


def far_future(schedule: tuple[int, ...], jitter: float) -> float:
    """How far ahead a retry message's not_before may lie: the schedule's longest wait (spread by
    its jitter) plus FAR_FUTURE_MARGIN, which covers every hold and Retry-After. Further is no wait
    of ours (``not_before = 1e15`` would hop through the queue every 15 minutes for ever)."""
    return max(schedule, default=0) * (1 + jitter) + FAR_FUTURE_MARGIN


def sqs_delay(not_before: float, now: float) -> int:
    return max(0, min(SQS_MAX_DELAY, math.ceil(not_before - now)))


@dataclass
class RetryTask:
    """What the retry queue carries: never the URL or the secret, only the webhook's id."""

    event: dict[str, Any]
    config_key: str
    webhook_id: str
    format: str
    delivery_id: str
    attempt: int  # the number of the attempt to make next (the first POST was attempt 1)
    not_before: float
    attempts: list[dict[str, Any]] = field(default_factory=list)
    schema: str = RETRY_SCHEMA
    slot: float | None = None  # a rate-limited delivery's reserved slot (epoch seconds)
    early: float = 2.0  # how long before its slot it comes back (grows each time it came back late)

    def to_message(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_message(cls, data: Any) -> RetryTask:
        if not isinstance(data, dict):
            raise RetryMessageError("retry message is not a JSON object")
        if data.get("schema") != RETRY_SCHEMA:
            raise RetryMessageError(f"retry message schema is {data.get('schema')!r}, expected {RETRY_SCHEMA!r}")
        try:
            task = cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})
        except TypeError as exc:
            raise RetryMessageError(f"retry message is missing fields: {exc}") from None
        texts = (task.config_key, task.webhook_id, task.format, task.delivery_id)
        if (
            not isinstance(task.event, dict)
            or not all(isinstance(t, str) for t in texts)
            or isinstance(task.attempt, bool)
            or not isinstance(task.attempt, int)
            or task.attempt < 1
            or isinstance(task.not_before, bool)
            or not isinstance(task.not_before, (int, float))
            or not math.isfinite(task.not_before)
            or not isinstance(task.attempts, list)
            or isinstance(task.early, bool)
            or not isinstance(task.early, (int, float))
            or not 0 <= task.early <= 60
            or (
                task.slot is not None
                and (isinstance(task.slot, bool) or not isinstance(task.slot, (int, float)) or not math.isfinite(task.slot))
            )
        ):
            raise RetryMessageError("retry message has fields of the wrong type")
        return task

"""Retry schedule, Retry-After and the retry-queue message."""

from __future__ import annotations

import pytest

from oxoflow_notify.errors import SettingsError
from oxoflow_notify.pipeline.retry import (
    DEFAULT_RETRY_SCHEDULE,
    RetryMessageError,
    RetryTask,
    next_delay,
    parse_retry_after,
    parse_schedule,
    sqs_delay,
)


def test_default_schedule_gives_eight_attempts_over_about_27_hours() -> None:
    assert len(DEFAULT_RETRY_SCHEDULE) + 1 == 8
    assert 27 * 3600 < sum(DEFAULT_RETRY_SCHEDULE) < 28 * 3600


def test_parse_schedule() -> None:
    assert parse_schedule("5, 300,1800") == (5, 300, 1800)
    assert parse_schedule("0,0,0") == (0, 0, 0)
    assert parse_schedule("0.5") == (1,)


@pytest.mark.parametrize(("text", "expected"), [("5,,10", "entry 2 ('')"), ("5,x", "entry 2 ('x')"), ("-1", "between 0 and 604800")])
def test_bad_schedules_name_the_entry(text: str, expected: str) -> None:
    with pytest.raises(SettingsError, match="RETRY_SCHEDULE") as caught:
        parse_schedule(text)
    assert expected in str(caught.value)


def test_next_delay_walks_the_schedule_then_stops() -> None:
    schedule = (5, 60)
    assert next_delay(schedule, 1) == 5
    assert next_delay(schedule, 2) == 60
    assert next_delay(schedule, 3) is None
    assert next_delay((), 1) is None


def test_retry_after_extends_but_never_shortens_the_wait() -> None:
    assert next_delay((5,), 1, retry_after=30) == 30
    assert next_delay((60,), 1, retry_after=2) == 60


def test_retry_after_seconds_and_http_dates_are_read_and_clamped() -> None:
    now = 1_000_000_000.0  # 2001-09-09T01:46:40Z
    assert parse_retry_after("120", now) == 120
    assert parse_retry_after("Sun, 09 Sep 2001 01:47:40 GMT", now) == pytest.approx(60)
    assert parse_retry_after("999999", now) == 3600
    assert parse_retry_after("-5", now) == 0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None


def test_sqs_delay_is_capped_at_15_minutes() -> None:
    assert sqs_delay(100.0, 0.0) == 100
    assert sqs_delay(36000.0, 0.0) == 900
    assert sqs_delay(0.0, 10.0) == 0


def test_retry_task_round_trips_and_rejects_garbage() -> None:
    task = RetryTask({"event": "RuleFailed"}, "workflows/wf.oxoflow", "wh_1", "json", "d-1", 2, 10.0, [{"attempt": 1}])
    assert RetryTask.from_message(task.to_message()) == task
    bads: list[object] = [[], {"schema": "other"}, {**task.to_message(), "attempt": "2"}]
    for bad in bads:
        with pytest.raises(RetryMessageError):
            RetryTask.from_message(bad)
    missing = task.to_message()
    del missing["webhook_id"]
    with pytest.raises(RetryMessageError, match="missing"):
        RetryTask.from_message(missing)


def test_jitter_spreads_delays_within_twenty_percent() -> None:
    assert next_delay((100,), 1, jitter=0.2, rand=lambda: 0.0) == pytest.approx(80)
    assert next_delay((100,), 1, jitter=0.2, rand=lambda: 1.0) == pytest.approx(120)
    delays = {next_delay((100,), 1, jitter=0.2) for _ in range(50)}
    assert len(delays) > 1 and all(80 <= d <= 120 for d in delays if d is not None)


def test_after_a_429_or_timeout_the_wait_is_at_least_the_floor() -> None:
    assert next_delay((5,), 1, throttled=True, throttle_floor=60) == 60
    assert next_delay((5,), 1, throttled=False, throttle_floor=60) == 5
    assert next_delay((5,), 1, retry_after=120, throttled=True, throttle_floor=60) == 120


def test_max_attempts_shortens_the_schedule() -> None:
    schedule = DEFAULT_RETRY_SCHEDULE
    assert next_delay(schedule, 1, max_attempts=2) is not None
    assert next_delay(schedule, 2, max_attempts=2) is None
    assert next_delay(schedule, 1, max_attempts=1) is None

"""The delivery log's entries and when they are written, without AWS: what an entry keeps of a
request (never a configured header's value or the URL), and that a write never outlives the
invocation nor fails it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import pytest

from oxoflow_notify.config import Webhook
from oxoflow_notify.inbound.events import Event
from oxoflow_notify.outbound.delivery import prepare
from oxoflow_notify.pipeline.budget import TimeBudget
from oxoflow_notify.pipeline.delivery_log import NOT_SHOWN, Entry, shown_headers
from oxoflow_notify.pipeline.invocation import Invocation
from oxoflow_notify.pipeline.settlement import Queues, Settlement

HOOK = Webhook(id="lims", url="https://lims.example.org/hook/T0KEN", format="json", events=None, secrets=("s3cret",),
               source="workflows/wf.oxoflow", position=0, headers=(("Authorization", "Bearer h3ader"),))  # fmt: skip
EVENT = Event(event="RuleFailed", workflow="wf", timestamp="2026-05-18T12:00:00.000Z", id="e1", message="m")


class Kept:
    def __init__(self, fail: bool = False) -> None:
        self.written: list[Entry] = []
        self.fail = fail

    def write(self, entries: Sequence[Entry]) -> None:
        if self.fail:
            raise ConnectionError("throttled")
        self.written.extend(entries)


def settlement(log: Kept, remaining_ms: int | None) -> Settlement:
    budget = TimeBudget(5.0)
    if remaining_ms is not None:
        budget.bind(lambda: remaining_ms)
    none = cast(Any, None)
    return Settlement(Queues(none, none), none, none, none, none, lambda: 0.0, log, None, budget)


def entry() -> Entry:
    return Entry(workflow="wf", delivery_id="d", attempt=1, at=0.0, event_id="e1", event="RuleFailed", run_id=None,
                 webhook_id="lims", config_key="workflows/wf.oxoflow", format="json", outcome="delivered")  # fmt: skip


def test_the_log_is_written_once_at_the_end_and_a_failing_write_is_counted_not_raised(capsys: pytest.CaptureFixture[str]) -> None:
    for fail in (False, True):
        log, inv = Kept(fail), Invocation()
        inv.entries.append(entry())
        settlement(log, 30_000).finish(inv)  # 30 s left
        assert len(log.written) == (0 if fail else 1) and inv.entries == []
        assert ("DeliveryLogFailed" in capsys.readouterr().out) is fail


def test_with_less_time_left_than_a_write_may_take_the_log_is_not_written_and_that_is_counted(capsys: pytest.CaptureFixture[str]) -> None:
    log, inv = Kept(), Invocation()
    inv.entries.append(entry())
    settlement(log, 800).finish(inv)
    assert log.written == [] and inv.entries == [] and "DeliveryLogFailed" in capsys.readouterr().out


def test_an_entry_shows_our_headers_and_only_the_names_of_the_configs() -> None:
    shown = shown_headers(prepare(EVENT, HOOK, "d", 1, now=0))
    assert shown["Authorization"] == NOT_SHOWN and shown["X-OxoFlow-Delivery"] == "d"
    assert "h3ader" not in str(shown) and "T0KEN" not in str(shown) and "s3cret" not in str(shown)


def test_a_duplicate_attempt_is_not_a_delivery() -> None:
    from oxoflow_notify.tools.deliveries import fold

    failed = {**entry().as_dict(), "outcome": "retrying", "status": 500, "reason": "HTTP 500", "at": 1.0}
    duplicate = {**entry().as_dict(), "outcome": "already_delivered", "error": "duplicate_attempt", "at": 2.0}
    (delivery,) = fold([failed, duplicate])
    assert delivery.status == "pending" and delivery.row()["reason"] == "HTTP 500"
    ledger = {**entry().as_dict(), "outcome": "already_delivered", "error": "already_delivered", "at": 3.0}
    assert fold([failed, ledger])[0].status == "delivered"


def test_a_write_against_a_throttled_table_is_bounded_within_the_time_kept_for_it() -> None:
    # given the delivery log's own client settings (wiring._LOG_BOTO)
    from oxoflow_notify.pipeline.settlement import LOG_TIME
    from oxoflow_notify.wiring import _LOG_BOTO

    # then one BatchWriteItem, every attempt timing out, ends within the time an invocation keeps for it
    attempts = _LOG_BOTO.retries["total_max_attempts"]
    worst = (
        attempts * (_LOG_BOTO.connect_timeout + _LOG_BOTO.read_timeout) + (attempts - 1) * 1.0
    )  # standard mode's backoff is under 1 s here
    assert worst <= LOG_TIME, (worst, LOG_TIME)

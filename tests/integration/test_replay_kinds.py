"""`replay` takes every letter kind it writes: an event the dispatcher failed on (internal_error) is
dispatched again with its own id, and a retry message whose not_before lies beyond any wait of ours
is dead-lettered (not re-queued for ever) and replayable. A "dead-lettered" log line is written only
once the letter is."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from oxoflow_notify.inbound.events import event_from_payload
from oxoflow_notify.pipeline.retry import RetryTask
from oxoflow_notify.tools.replay import Filters, replay, scan
from oxolocal.receivers import Answer, Receiver
from oxolocal.stack import Stack
from tests.conftest import message, sns_event


def dispatcher(stack: Stack) -> Any:
    """The dispatch function's warm Notifier (its handler imported as Lambda would)."""
    stack.handler("DispatchFunction")
    return stack.modules["DispatchFunction"].notifier


def record_errors(monkeypatch: pytest.MonkeyPatch, notifier: Any) -> list[str]:
    """The error lines settlement logs, in order (and logged as before)."""
    module, said = sys.modules[type(notifier.settlement).__module__], []
    real = module.logger

    class Log:
        def error(self, msg: str, **kwargs: Any) -> None:
            said.append(msg)
            real.error(msg, **kwargs)

        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

    monkeypatch.setattr(module, "logger", Log())
    return said


def two_webhooks(stack: Stack, receivers: Callable[..., Receiver]) -> tuple[Receiver, Receiver]:
    first, second = receivers(lambda n, r: Answer(200), "first"), receivers(lambda n, r: Answer(200), "second")
    stack.put_config(
        "variant-calling", f'[[webhooks]]\nid = "first"\nurl = "{first.url}"\n[[webhooks]]\nid = "second"\nurl = "{second.url}"\n'
    )
    return first, second


def test_an_event_failed_after_its_fan_out_began_is_replayed_with_its_own_id_and_not_posted_twice(
    stack: Stack, receivers: Callable[..., Receiver]
) -> None:
    # given an event without a timestamp of its own whose dispatch failed (a fault of ours) after
    # its first webhook was posted
    first, second = two_webhooks(stack, receivers)
    notifier = dispatcher(stack)
    deliver: Callable[..., list[Any]] = notifier.executor.run
    faults = [RuntimeError("a surprise in our own code")]

    def deliver_then_fail(inv: Any, attempts: list[Any]) -> list[Any]:
        if attempts and faults:
            deliver(inv, attempts[:1])
            raise faults.pop()
        return deliver(inv, attempts)

    notifier.executor.run = deliver_then_fail
    record = sns_event("rule-failed")
    record["Records"][0]["Sns"]["Message"] = json.dumps({k: v for k, v in message("rule-failed").items() if k != "timestamp"})
    sns_id = record["Records"][0]["Sns"]["MessageId"]
    assert stack.invoke("DispatchFunction", record)["dead_lettered"] == 1
    assert len(first.requests) == 1 and second.requests == []

    # when the dead-letter queue is replayed
    summary = replay(notifier, stack.sqs, stack.dead_letter_queue_url, Filters(reason="internal_error"), visibility=0)

    # then the event went to the webhook that had not had it, with the same event id, time and
    # delivery ids, and the one that had it got nothing more
    assert summary.results == {"delivered": 1}, summary.rows
    assert len(first.requests) == 1 and len(second.requests) == 1
    posted = [json.loads(r.requests[0].body) for r in (first, second)]
    assert posted[0]["id"] == posted[1]["id"] == sns_id
    assert posted[0]["timestamp"] == posted[1]["timestamp"]
    again = event_from_payload(posted[1])
    assert again.id == sns_id
    assert list(scan(stack.sqs, stack.dead_letter_queue_url, visibility=0)) == []


def far_future_retry(stack: Stack, not_before: float) -> None:
    event = event_from_payload({**message("rule-failed"), "id": "far-future"})
    task = RetryTask(event.to_payload(), "workflows/variant-calling.oxoflow", "first", "json", "d-far-future", 2, not_before)
    stack.sqs.send_message(QueueUrl=stack.retry_queue_url, MessageBody=json.dumps(task.to_message()))


def test_a_retry_message_due_in_the_far_future_is_dead_lettered_once_and_replay_delivers_it(
    stack: Stack, receivers: Callable[..., Receiver]
) -> None:
    # given a retry message whose not_before is 1e15 (some 31 million years ahead)
    first, _second = two_webhooks(stack, receivers)
    far_future_retry(stack, 1e15)
    # when the retry function takes it
    stack.drain_retries()
    # then it is not queued again but dead-lettered, saying why
    assert stack.depth(stack.retry_queue_url) == {"visible": 0, "delayed": 0, "in_flight": 0}
    (letter,) = [letter.body for letter in scan(stack.sqs, stack.dead_letter_queue_url, visibility=0)]
    assert letter["reason_code"] == "malformed_retry" and "not_before" in letter["reason"] and "replay it" in letter["reason"]
    assert first.requests == []
    # and replay delivers it, as the attempt it was
    summary = replay(stack.modules["RetryFunction"].notifier, stack.sqs, stack.dead_letter_queue_url, Filters(), visibility=0)
    assert summary.results == {"delivered": 1}, summary.rows
    assert [r.header("X-OxoFlow-Delivery") for r in first.requests] == ["d-far-future"]


def test_a_retry_message_due_within_the_schedule_still_hops(stack: Stack, receivers: Callable[..., Receiver]) -> None:
    two_webhooks(stack, receivers)
    far_future_retry(stack, time.time() + 36_000)  # the default schedule's longest wait
    stack.drain_retries(rounds=1)
    assert stack.depth(stack.retry_queue_url)["delayed"] == 1
    assert list(scan(stack.sqs, stack.dead_letter_queue_url, visibility=0)) == []


def test_dead_lettered_is_logged_only_once_the_letter_is_written(
    stack: Stack, receivers: Callable[..., Receiver], monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a webhook that answers 404 and a dead-letter queue that refuses the letter
    gone = receivers(lambda n, r: Answer(404), "gone")
    stack.put_config("variant-calling", f'[[webhooks]]\nid = "gone"\nurl = "{gone.url}"\n')
    notifier = dispatcher(stack)
    said = record_errors(monkeypatch, notifier)
    send, refusing = notifier.dead_letters.send, [True]

    def refuse(letter: dict[str, Any], delay_seconds: int = 0) -> None:
        if refusing:
            raise ClientError({"Error": {"Code": "InvalidParameterValue", "Message": "too big"}}, "SendMessage")
        send(letter, delay_seconds)

    monkeypatch.setattr(notifier.dead_letters, "send", refuse)
    # when the event is dispatched, the letter cannot be written: the invocation fails for Lambda to retry
    with pytest.raises(ClientError):
        stack.invoke("DispatchFunction", sns_event("rule-failed"))
    # then no line claims it was dead-lettered
    assert len(gone.requests) == 1 and "delivery dead-lettered" not in said
    # and once the queue takes it, the line is there
    refusing.clear()
    stack.invoke("DispatchFunction", sns_event("workflow-failed"))
    assert said.count("delivery dead-lettered") == 1

"""One retry chain per delivery: each attempt is posted, and its successor queued, at most once,
whatever re-runs it (a retry batch handed back after a crash, a SendMessage that looked failed,
an SNS redelivery, a stale ledger claim)."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from oxolocal.receivers import Receiver, always, fail_first
from oxolocal.stack import Stack, sqs_event
from tests.conftest import sns_event


class InjectedCrash(BaseException):
    """The function dies here, as a process does: nothing of ours catches it."""


def config(*hooks: str) -> str:
    return '[workflow]\nname = "variant-calling"\n\n' + "\n".join(f"[[webhooks]]\n{h}\n" for h in hooks)


def attempts_seen(receiver: Receiver) -> list[str | None]:
    return [r.header("X-OxoFlow-Attempt") for r in receiver.requests]


def throttled(operation: str) -> ClientError:
    return ClientError({"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}}, operation)


def test_a_retry_batch_handed_back_after_a_crash_keeps_one_chain_per_delivery(stack: Stack, receivers: Callable[..., Receiver]) -> None:
    # given ten deliveries to dead receivers, three attempts each, their second attempts due together
    dead = [receivers(always(503), f"dead{i}") for i in range(10)]
    stack.put_config("variant-calling", config(*(f'id = "d{i}"\nurl = "{r.url}"\nmax_attempts = 3' for i, r in enumerate(dead))))
    stack.invoke("DispatchFunction", sns_event("rule-failed"))
    batch = stack.receive(stack.retry_queue_url)
    assert len(batch) == 10
    # when the retry function dies after handing on 5 of the 10 (its 6th queue send never returns)
    stack.handler("RetryFunction")
    queue = stack.modules["RetryFunction"].notifier.retry_queue
    real_send, sends = queue.send, []

    def dies_on_the_sixth(*args: Any, **kwargs: Any) -> None:
        sends.append(1)
        if len(sends) == 6:
            raise InjectedCrash
        real_send(*args, **kwargs)

    queue.send = dies_on_the_sixth
    with pytest.raises(InjectedCrash):
        stack.invoke("RetryFunction", sqs_event(batch, stack.physical["RetryQueue"]["Arn"]))
    queue.send = real_send
    # and SQS hands the whole batch back, and the rest of the schedule runs
    stack.invoke("RetryFunction", sqs_event(batch, stack.physical["RetryQueue"]["Arn"]))
    for message in batch:
        stack.sqs.delete_message(QueueUrl=stack.retry_queue_url, ReceiptHandle=message["ReceiptHandle"])
    stack.drain_retries()
    # then every receiver saw attempts 1, 2 and 3 once each: no attempt posted twice, no second chain
    assert all(attempts_seen(r) == ["1", "2", "3"] for r in dead), [attempts_seen(r) for r in dead]
    # and each delivery was dead-lettered once, when its schedule ended
    letters = stack.drain(stack.dead_letter_queue_url)
    assert Counter(letter["webhook"]["id"] for letter in letters) == {f"d{i}": 1 for i in range(10)}
    assert {letter["reason_code"] for letter in letters} == {"retries_exhausted"}
    assert stack.depth(stack.retry_queue_url) == {"visible": 0, "delayed": 0, "in_flight": 0}


def test_the_same_sns_message_handled_twice_after_a_503_posts_once_and_starts_one_chain(
    stack: Stack, receivers: Callable[..., Receiver]
) -> None:
    # given a receiver that answers 503 once
    flaky = receivers(fail_first(1, 503))
    stack.put_config("variant-calling", config(f'id = "lims"\nurl = "{flaky.url}"'))
    # when SNS delivers the same message twice
    first = stack.invoke("DispatchFunction", sns_event("rule-failed"))
    second = stack.invoke("DispatchFunction", sns_event("rule-failed"))
    # then the first attempt was posted once, the second run did nothing, and one retry is queued
    assert attempts_seen(flaky) == ["1"]
    assert [d["result"] for d in first["deliveries"]] == ["retrying"]
    assert [d["result"] for d in second["deliveries"]] == ["already_delivered"]
    assert stack.drain_retries() == 1
    assert attempts_seen(flaky) == ["1", "2"] and stack.drain(stack.dead_letter_queue_url) == []


def test_a_send_message_that_looked_failed_does_not_split_the_chain(stack: Stack, receivers: Callable[..., Receiver]) -> None:
    # given a dead receiver with three attempts, and a retry-queue send that succeeds but answers an error
    dead = receivers(always(503))
    stack.put_config("variant-calling", config(f'id = "lims"\nurl = "{dead.url}"\nmax_attempts = 3'))
    stack.handler("DispatchFunction")
    queue = stack.modules["DispatchFunction"].notifier.retry_queue
    real_send = queue.send

    def sent_but_looked_failed(*args: Any, **kwargs: Any) -> None:
        real_send(*args, **kwargs)
        queue.send = real_send
        raise throttled("SendMessage")

    queue.send = sent_but_looked_failed
    # when the dispatcher fails on it and Lambda retries the invocation
    with pytest.raises(ClientError):
        stack.invoke("DispatchFunction", sns_event("rule-failed"))
    stack.invoke("DispatchFunction", sns_event("rule-failed"))
    stack.drain_retries()
    # then the schedule ran once: three POSTs, one dead letter
    assert attempts_seen(dead) == ["1", "2", "3"]
    (letter,) = stack.drain(stack.dead_letter_queue_url)
    assert letter["reason_code"] == "retries_exhausted" and letter["attempt_count"] == 3


def test_a_stale_ledger_claim_costs_no_attempt_and_no_false_dead_letter(stack: Stack, receivers: Callable[..., Receiver]) -> None:
    # given functions that time out after 2 s (a crashed run's claim expires that soon), a receiver
    # that answers 503 once, and a ledger whose delete of the failed attempt's claim is throttled
    stack.overrides.update({"CONNECT_TIMEOUT_SECONDS": "0.5", "INVOCATION_RESERVE_SECONDS": "0.2", "CLAIM_WAIT_SECONDS": "2"})
    flaky = receivers(fail_first(1, 503))
    stack.put_config("variant-calling", config(f'id = "lims"\nurl = "{flaky.url}"\ntimeout = 1\nmax_attempts = 2'))
    stack.handler("DispatchFunction")
    ddb = stack.modules["DispatchFunction"].notifier.ledger._client()
    real_delete = ddb.delete_item

    def throttled_once(**kwargs: Any) -> Any:
        ddb.delete_item = real_delete
        raise throttled("DeleteItem")

    ddb.delete_item = throttled_once
    stack.invoke("DispatchFunction", sns_event("rule-failed"), timeout_seconds=2)
    # when the retry comes while the stale claim still stands
    held = stack.invoke("RetryFunction", sqs_event(stack.receive(stack.retry_queue_url), stack.physical["RetryQueue"]["Arn"]))
    # then it is held, not posted and not counted: attempt 2 is still to come
    assert held == {"batchItemFailures": []} and attempts_seen(flaky) == ["1"]
    # and once the claim has expired it is delivered as attempt 2, with no dead letter
    time.sleep(2.5)
    stack.drain_retries(settle=2.5)
    assert attempts_seen(flaky) == ["1", "2"] and [r.answered for r in flaky.requests] == [503, 200]
    assert stack.drain(stack.dead_letter_queue_url) == []


def test_a_retry_whose_webhook_became_invalid_is_dead_lettered_with_that_problem(stack: Stack, receivers: Callable[..., Receiver]) -> None:
    down = receivers(always(503))
    stack.put_config("variant-calling", config(f'id = "lims"\nurl = "{down.url}"'))
    stack.invoke("DispatchFunction", sns_event("rule-failed"))
    # when the webhook is broken by an edit while its retry waits
    stack.put_config("variant-calling", config(f'id = "lims"\nurl = "{down.url}"\nformat = "slak"'))
    stack.drain_retries()
    # then the retry is dead-lettered with the problem, not as "no longer in the file"
    (letter,) = stack.drain(stack.dead_letter_queue_url)
    assert letter["reason_code"] == "invalid_webhook" and "format" in letter["reason"] and "slack" in letter["reason"]
    assert len(down.requests) == 1


def test_a_retry_whose_webhook_no_longer_subscribes_is_dead_lettered_as_unsubscribed(
    stack: Stack, receivers: Callable[..., Receiver]
) -> None:
    down = receivers(always(503))
    stack.put_config("variant-calling", config(f'id = "lims"\nurl = "{down.url}"'))
    stack.invoke("DispatchFunction", sns_event("rule-failed"))
    stack.put_config("variant-calling", config(f'id = "lims"\nurl = "{down.url}"\nevents = ["WorkflowFailed"]'))
    stack.drain_retries()
    (letter,) = stack.drain(stack.dead_letter_queue_url)
    assert letter["reason_code"] == "unsubscribed" and "RuleFailed" in letter["reason"]
    assert json.loads(json.dumps(letter))["event"]["event"] == "RuleFailed" and len(down.requests) == 1

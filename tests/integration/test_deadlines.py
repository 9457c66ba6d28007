"""An invocation never outlives its Lambda, and the retry batch is posted all at once."""

from __future__ import annotations

import json
from collections.abc import Callable

from oxolocal.receivers import Receiver, always, drip, ok
from oxolocal.stack import Stack, sqs_event
from tests.conftest import in_flight_counter, sns_event


def config(*hooks: str) -> str:
    return '[workflow]\nname = "variant-calling"\n\n' + "\n".join(f"[[webhooks]]\n{h}\n" for h in hooks)


def test_a_dripping_receiver_does_not_keep_the_others_retries_from_being_queued(stack: Stack, receivers: Callable[..., Receiver]) -> None:
    # given a receiver that drips its answer (each byte in time, the whole never) beside one that answers 503
    dripping, failing = receivers(drip(0.5), "drip"), receivers(always(503), "down")
    stack.put_config("variant-calling", config(f'id = "drip"\nurl = "{dripping.url}"\ntimeout = 1', f'id = "down"\nurl = "{failing.url}"'))
    # when the dispatcher posts to both
    report = stack.invoke("DispatchFunction", sns_event("rule-failed"))
    # then the dripping POST was cut at its deadline and both deliveries wait in the retry queue
    errors = {d["webhook_id"]: (d["error"], d["status"], d["result"]) for d in report["deliveries"]}
    assert errors == {"drip": ("deadline_exceeded", None, "retrying"), "down": (None, 503, "retrying")}
    queued = {json.loads(m["Body"])["webhook_id"] for m in stack.receive(stack.retry_queue_url)}
    assert queued == {"drip", "down"}


def test_a_delivery_that_cannot_finish_in_time_is_held_not_spending_an_attempt(stack: Stack, receivers: Callable[..., Receiver]) -> None:
    # given an invocation with less time left than one delivery's deadline (connect + 10 s timeout)
    receiver = receivers(ok())
    stack.put_config("variant-calling", config(f'id = "lims"\nurl = "{receiver.url}"\ntimeout = 10'))
    report = stack.invoke("DispatchFunction", sns_event("rule-failed"), timeout_seconds=12)
    # then nothing was posted and the delivery waits in the retry queue, still at attempt 1
    assert receiver.requests == []
    assert [(d["error"], d["attempt"], d["result"]) for d in report["deliveries"]] == [("out_of_time", 1, "held")]
    peek = stack.sqs.receive_message(QueueUrl=stack.retry_queue_url, VisibilityTimeout=0)["Messages"]
    (task,) = [json.loads(m["Body"]) for m in peek]
    assert task["attempt"] == 1 and task["attempts"] == []
    # and the retry function, with its full time, delivers it as the first attempt
    assert stack.drain_retries() == 1
    (got,) = receiver.requests
    assert got.header("X-OxoFlow-Attempt") == "1"


def test_the_retry_function_posts_its_whole_batch_at_once(stack: Stack, receivers: Callable[..., Receiver]) -> None:
    # given ten due retries, each to its own slow receiver
    holding, seen = in_flight_counter()
    slow = [receivers(holding(1.0), f"slow{i}") for i in range(10)]
    stack.put_config("variant-calling", config(*(f'id = "slow{i}"\nurl = "{r.url}"\ntimeout = 5' for i, r in enumerate(slow))))
    # whose first attempts failed
    for receiver in slow:
        receiver.behaviour = always(503)
    stack.invoke("DispatchFunction", sns_event("rule-failed"))
    for receiver in slow:
        receiver.behaviour = holding(1.0)
    batch = stack.receive(stack.retry_queue_url)
    assert len(batch) == 10
    # when the retry function gets them as one SQS batch
    result = stack.invoke("RetryFunction", sqs_event(batch, stack.physical["RetryQueue"]["Arn"]))
    # then all ten were in flight at the receivers together, and every one was delivered
    assert result == {"batchItemFailures": []}
    assert seen["most"] == 10
    assert all([r.answered for r in receiver.requests][-1] == 200 for receiver in slow)

"""No letter too big to keep: an event at SNS's 262,144-byte limit, failing at three webhooks, on
queues capped at 262,144 bytes, leaves every retry message and dead letter in its queue (the body in
S3 behind a pointer), and `replay` delivers them once the receivers are fixed, then removes the
S3 copies."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from oxoflow_notify.aws.letters import CLAIM_SCHEMA, SQS_MESSAGE_LIMIT, message_size
from oxoflow_notify.errors import EventError
from oxoflow_notify.inbound.events import MAX_MESSAGE_BYTES, parse_event
from oxoflow_notify.tools.replay import Filters, replay
from oxolocal.receivers import Answer, Received, Receiver
from oxolocal.stack import Stack
from tests.conftest import RECEIVED_AT, sns_event


class Switch:
    """Answers ``failing`` until switched up, then 200."""

    def __init__(self, failing: int) -> None:
        self.failing, self.up = failing, False

    def __call__(self, n: int, r: Received) -> Answer:
        return Answer(200) if self.up else Answer(self.failing)


def refuse_over_limit(params: dict[str, Any], **_: Any) -> None:
    """SQS's own check (moto counts characters, not bytes, and no attributes): refuse a message
    whose body and attributes are over the queues' MaximumMessageSize."""
    if message_size(params["MessageBody"], params.get("MessageAttributes")) > SQS_MESSAGE_LIMIT:
        error = {"Code": "InvalidParameterValue", "Message": f"Message must be shorter than {SQS_MESSAGE_LIMIT} bytes."}
        raise ClientError({"Error": error}, "SendMessage")


@pytest.fixture
def capped(stack: Stack) -> Iterator[Stack]:
    """The stack, its SQS sends refused over the limit by bytes, as SQS refuses them (registered
    before the handlers build their clients, which copy the session's event hooks)."""
    session = boto3.DEFAULT_SESSION
    assert session is not None
    session.events.register("before-parameter-build.sqs.SendMessage", refuse_over_limit)
    yield stack
    session.events.unregister("before-parameter-build.sqs.SendMessage", refuse_over_limit)


def event_at_the_limit() -> str:
    """A RuleFailed message as big as SNS takes (multi-byte text included), that the dispatcher accepts."""
    for pad in range(MAX_MESSAGE_BYTES - 1000, 0, -50):
        message = json.dumps({"event": "RuleFailed", "workflow": "variant-calling", "rule": "align_reads",
                              "details": {"note": "é" * 500, "log": "x" * pad}}, ensure_ascii=False)  # fmt: skip
        try:
            parse_event(message, message_id="probe", received_at=RECEIVED_AT)
        except EventError:
            continue
        return message
    raise AssertionError("no message fits")


def test_every_letter_of_an_event_at_the_limit_is_kept_and_replayable(capped: Stack, receivers: Callable[..., Receiver]) -> None:
    # given queues capped at 262,144 bytes (as the template sets them) and three failing webhooks
    stack = capped
    attrs = stack.sqs.get_queue_attributes(QueueUrl=stack.dead_letter_queue_url, AttributeNames=["MaximumMessageSize"])
    assert attrs["Attributes"]["MaximumMessageSize"] == str(SQS_MESSAGE_LIMIT)
    switches = {"gone": Switch(404), "busy": Switch(503), "broken": Switch(410)}
    hooks = {name: receivers(switch, name) for name, switch in switches.items()}
    stack.put_config("variant-calling", "".join(f'[[webhooks]]\nid = "{n}"\nurl = "{h.url}"\n' for n, h in hooks.items()))
    message = event_at_the_limit()
    assert len(message.encode()) > MAX_MESSAGE_BYTES - 1100
    record = sns_event("rule-failed")
    record["Records"][0]["Sns"]["Message"] = message

    # when the event is dispatched and its retries run out
    report = stack.invoke("DispatchFunction", record)
    assert (report["dead_lettered"], report["retrying"]) == (2, 1)
    stack.drain_retries()

    # then all three dead letters are in the queue, each a pointer to its body in S3
    raw = stack.sqs.receive_message(QueueUrl=stack.dead_letter_queue_url, MaxNumberOfMessages=10, VisibilityTimeout=0)["Messages"]
    pointers = [json.loads(m["Body"]) for m in raw]
    assert [p["schema"] for p in pointers] == [CLAIM_SCHEMA] * 3
    assert all(p["s3"]["key"].startswith("letters/") and p["bytes"] > SQS_MESSAGE_LIMIT for p in pointers)
    letters = [json.loads(stack.resolve(m["Body"])) for m in raw]
    assert sorted(letter["reason_code"] for letter in letters) == ["permanent_failure", "permanent_failure", "retries_exhausted"]
    assert all(letter["event"]["details"]["log"] == json.loads(message)["details"]["log"] for letter in letters)
    # and when the receivers are fixed and the letters replayed
    for switch in switches.values():
        switch.up = True
    summary = replay(stack.modules["DispatchFunction"].notifier, stack.sqs, stack.dead_letter_queue_url, Filters(), visibility=0)

    # then each webhook got the whole event, under its first delivery id
    assert summary.results == {"delivered": 3}, summary.rows
    for name, hook in hooks.items():
        first, last = hook.requests[0], hook.requests[-1]
        assert last.answered == 200 and last.header("X-OxoFlow-Delivery") == first.header("X-OxoFlow-Delivery"), name
        assert json.loads(last.body)["details"]["log"] == json.loads(message)["details"]["log"]
    # and the queue is empty and the letters' S3 copies are gone
    assert stack.receive(stack.dead_letter_queue_url) == []
    kept = {o["Key"] for o in stack.s3.list_objects_v2(Bucket=stack.bucket, Prefix="letters/").get("Contents", [])}
    assert not kept & {p["s3"]["key"] for p in pointers}

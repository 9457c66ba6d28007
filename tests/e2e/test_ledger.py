"""The delivery ledger: redelivered SNS and retry messages never post twice to a webhook that answered 2xx."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from oxoflow_notify.inbound.events import parse_event, parse_timestamp
from oxoflow_notify.outbound.delivery import delivery_id_for
from oxoflow_notify.pipeline.answers import Kind
from oxolocal.receivers import Receiver, fail_first, ok
from oxolocal.stack import Stack, sns_event, sqs_event


def hooks(*urls: str) -> str:
    return '[workflow]\nname = "variant-calling"\n\n' + "".join(f'[[webhooks]]\nid = "h{i}"\nurl = "{u}"\n\n' for i, u in enumerate(urls))


def published_envelope(stack: Stack, message: dict[str, Any]) -> dict[str, Any]:
    stack.publish(message)
    (body,) = [m["Body"] for m in stack.receive(stack.tap_url)]
    envelope: dict[str, Any] = json.loads(body)
    return envelope


def test_a_redelivered_sns_message_is_not_posted_again(stack: Stack, receivers: Callable[..., Receiver]) -> None:
    # given a webhook that answered 2xx for an event
    lims = receivers(ok())
    stack.put_config("variant-calling", hooks(lims.url))
    envelope = published_envelope(stack, {"event": "WorkflowStarted", "workflow": "variant-calling"})
    first = stack.invoke("DispatchFunction", sns_event(envelope))
    # when SNS delivers the same message again (at least once) and Lambda retries the invocation
    second = stack.invoke("DispatchFunction", sns_event(envelope))
    third = stack.invoke("DispatchFunction", sns_event(envelope))
    # then the receiver got exactly one POST, and the re-runs say why they sent nothing
    (only,) = lims.requests
    assert json.loads(only.body)["id"] == envelope["MessageId"]
    assert first["delivered"] == 1
    assert second["delivered"] == third["delivered"] == 0
    assert second["already_delivered"] == third["already_delivered"] == 1
    # and the ledger holds one COMPLETED record for the delivery id, expiring in about 15 days
    table = stack.physical["DeliveryLedger"]["Ref"]
    (item,) = stack.dynamodb.scan(TableName=table)["Items"]
    assert item["status"]["S"] == "COMPLETED"
    assert 14.9 * 86400 < int(item["expiration"]["N"]) - time.time() < 15.1 * 86400
    event = parse_event(envelope["Message"], message_id=envelope["MessageId"], received_at=parse_timestamp(envelope["Timestamp"]))
    assert only.header("X-OxoFlow-Delivery") == delivery_id_for(event, "workflows/variant-calling.oxoflow", "h0")


def test_a_rerun_posts_only_to_the_webhooks_that_did_not_answer_2xx(stack: Stack, receivers: Callable[..., Receiver]) -> None:
    # given two webhooks, one up and one failing on its first POST
    up, flaky = receivers(ok(), "up"), receivers(fail_first(1, 500), "flaky")
    stack.put_config("variant-calling", hooks(up.url, flaky.url))
    envelope = published_envelope(stack, {"event": "RuleFailed", "workflow": "variant-calling", "rule": "bwa_mem"})
    # when the dispatcher runs twice for the same message (the first run's failure also queued a retry)
    stack.invoke("DispatchFunction", sns_event(envelope))
    stack.invoke("DispatchFunction", sns_event(envelope))
    stack.drain_retries()
    # then the healthy webhook got one POST; the failing one got its failure and then one success
    assert len(up.requests) == 1
    assert [r.answered for r in flaky.requests] == [500, 200]
    assert len({r.header("X-OxoFlow-Delivery") for r in flaky.requests}) == 1
    # and the retry queued by the first run found the delivery done and posted nothing
    assert stack.drain(stack.dead_letter_queue_url) == []


def test_a_redelivered_retry_message_is_not_posted_again(stack: Stack, receivers: Callable[..., Receiver]) -> None:
    # given a delivery that failed once and sits in the retry queue
    flaky = receivers(fail_first(1, 503))
    stack.put_config("variant-calling", hooks(flaky.url))
    envelope = published_envelope(stack, {"event": "WorkflowFailed", "workflow": "variant-calling"})
    stack.invoke("DispatchFunction", sns_event(envelope))
    (message,) = stack.receive(stack.retry_queue_url)
    arn = stack.physical["RetryQueue"]["Arn"]
    # when SQS hands the same retry message over twice (the first receive's delete was lost)
    first = stack.invoke("RetryFunction", sqs_event([message], arn))
    second = stack.invoke("RetryFunction", sqs_event([message], arn))
    # then the receiver saw the failure and one success, and the second run is a clean no-op
    assert [r.answered for r in flaky.requests] == [503, 200]
    assert first == second == {"batchItemFailures": []}
    depth = stack.depth(stack.retry_queue_url)
    assert depth["visible"] + depth["delayed"] == 0  # nothing queued again


def test_a_failed_post_leaves_no_record_so_the_retry_posts(stack: Stack, receivers: Callable[..., Receiver]) -> None:
    # given a receiver that fails twice
    flaky = receivers(fail_first(2, 502))
    stack.put_config("variant-calling", hooks(flaky.url))
    envelope = published_envelope(stack, {"event": "WorkflowCompleted", "workflow": "variant-calling"})
    # when the event is dispatched and its retries drained
    stack.invoke("DispatchFunction", sns_event(envelope))
    table = stack.physical["DeliveryLedger"]["Ref"]

    def ledger_records() -> list[dict[str, Any]]:  # the Powertools records; the hand-off log's marks share the table
        # the ledger's own records: not the hand-off log's marks, nor the failing webhook's state (pipeline.endpoints)
        items = stack.dynamodb.scan(TableName=table)["Items"]
        return [i for i in items if not i["id"]["S"].startswith(("oxoflow-attempt#", "oxoflow-endpoint#"))]

    def handed_on() -> list[str]:
        return sorted(i["id"]["S"].rsplit("#", 1)[1] for i in stack.dynamodb.scan(TableName=table)["Items"] if "state" in i)

    assert ledger_records() == [] and handed_on() == ["1"]  # a failure releases its claim; attempt 1 was handed on
    stack.drain_retries()
    # then the third attempt delivered it, and only then was it recorded
    assert [r.answered for r in flaky.requests] == [502, 502, 200]
    assert [i["status"]["S"] for i in ledger_records()] == ["COMPLETED"] and handed_on() == ["1", "2"]


def test_a_replay_of_a_delivery_that_since_succeeded_posts_nothing(stack: Stack, receivers: Callable[..., Receiver]) -> None:
    # given a delivery that a receiver answered 2xx (say, a duplicate retry message got through)
    lims = receivers(ok())
    stack.put_config("variant-calling", hooks(lims.url))
    envelope = published_envelope(stack, {"event": "WorkflowFailed", "workflow": "variant-calling"})
    stack.invoke("DispatchFunction", sns_event(envelope))
    event = json.loads(lims.requests[0].body)
    delivery_id = lims.requests[0].header("X-OxoFlow-Delivery") or ""
    # when a dead letter for it is replayed
    notifier = stack.modules["DispatchFunction"].notifier
    verdict, reason = notifier.attempt_once(event, "workflows/variant-calling.oxoflow", "h0", delivery_id, 2)
    # then replay counts it as delivered (so it deletes the letter) without posting again
    assert verdict is Kind.ALREADY_DELIVERED and "already delivered" in reason
    assert len(lims.requests) == 1


def test_an_event_cannot_be_silenced_by_publishing_a_fake_under_its_id(stack: Stack, receivers: Callable[..., Receiver]) -> None:
    # given a publisher who knows (or guesses) the id the real completion event will carry
    lims = receivers(ok())
    stack.put_config("variant-calling", hooks(lims.url))
    fake = {"event": "WorkflowCompleted", "workflow": "variant-calling", "id": "run-42-completed", "message": "nothing to see"}
    real = {"event": "WorkflowCompleted", "workflow": "variant-calling", "id": "run-42-completed", "details": {"outputs": 12},
            "timestamp": "2026-05-18T12:30:00Z"}  # fmt: skip
    # when the fake is published first, then the real one, then the real one again (the pipeline
    # retried its publish: the same content, its own timestamp included)
    for message in (fake, real, real):
        stack.publish(message)
    reports = stack.carry_published()
    # then the real event was delivered too, under a delivery id of its own, and only once
    bodies = [json.loads(r.body) for r in lims.requests]
    assert [b.get("details") for b in bodies] == [{}, {"outputs": 12}]
    assert len({r.header("X-OxoFlow-Delivery") for r in lims.requests}) == 2
    assert [r["delivered"] for r in reports] == [1, 1, 0] and reports[2]["already_delivered"] == 1

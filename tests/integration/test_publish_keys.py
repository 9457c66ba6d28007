"""A workflow's [publish] key binds its events to the team that holds it: on the shared topic, an event
for that workflow not signed with the key is dead-lettered whole and reaches no receiver."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest

from oxoflow_notify.inbound.topic import publish_message
from oxoflow_notify.tools.cli import main
from oxoflow_notify.tools.recovery import republish_on_failure
from oxoflow_notify.tools.replay import Filters, replay
from oxolocal.receivers import Receiver, ok
from oxolocal.stack import REGION, Stack, sns_event

KEY = "team-b-publish-key-0123456789"
WORKFLOW = "variant-calling"
EVENT = {"event": "RuleFailed", "workflow": WORKFLOW, "rule": "align_reads", "details": {"exit_code": 1}}


def bound_workflow(stack: Stack, receivers: Callable[..., Receiver], key_line: str = f'key = "{KEY}"') -> tuple[Receiver, Receiver]:
    """The workflow's receiver (its own file holds the publish key) and an org-wide one in _default.oxoflow."""
    own, org = receivers(ok(), "own"), receivers(ok(), "org")
    stack.put_config(WORKFLOW, f'[[webhooks]]\nid = "lims"\nurl = "{own.url}"\n\n[publish]\n{key_line}\n')
    stack.put_config("_default", f'[[webhooks]]\nid = "org"\nurl = "{org.url}"\n')
    return own, org


def tapped(stack: Stack) -> list[dict[str, Any]]:
    """The SNS notifications the topic sent, as its SQS subscriber got them (removed from the tap)."""
    envelopes = []
    while batch := stack.receive(stack.tap_url):
        for message in batch:
            envelopes.append(json.loads(message["Body"]))
            stack.sqs.delete_message(QueueUrl=stack.tap_url, ReceiptHandle=message["ReceiptHandle"])
    return envelopes


def letters(stack: Stack) -> list[dict[str, Any]]:
    return stack.drain(stack.dead_letter_queue_url)


def test_an_unsigned_event_is_dead_lettered_whole_and_no_receiver_gets_it(stack: Stack, receivers: Callable[..., Receiver]) -> None:
    # given a workflow bound to a publish key, and an org-wide webhook in _default.oxoflow
    own, org = bound_workflow(stack, receivers)
    # when anyone allowed on the topic publishes an event for it without the key
    publish_message(stack.sns, stack.topic_arn, EVENT)
    (report,) = stack.carry_published()
    # then nothing is delivered to either receiver, and one letter keeps the raw message, not the key
    assert report["delivered"] == 0 and report["dead_lettered"] == 1
    assert own.requests == [] and org.requests == []
    (letter,) = letters(stack)
    assert letter["reason_code"] == "unauthenticated_event"
    assert "no oxoflow-signature" in letter["reason"] and "publish it again signed with the workflow's publish key" in letter["reason"]
    assert json.loads(letter["raw_message"])["rule"] == "align_reads" and letter["workflow"] == WORKFLOW
    assert KEY not in json.dumps(letter)


def test_a_wrongly_signed_event_is_refused_and_a_correctly_signed_one_is_delivered(
    stack: Stack, receivers: Callable[..., Receiver]
) -> None:
    # given a workflow bound to a publish key
    own, org = bound_workflow(stack, receivers)
    # when one event is signed with another key and one with the workflow's
    publish_message(stack.sns, stack.topic_arn, {**EVENT, "rule": "forged"}, key="a-squatters-guess-0123456789")
    publish_message(stack.sns, stack.topic_arn, {**EVENT, "rule": "real"}, key=KEY)
    reports = stack.carry_published()
    # then only the signed one reached the workflow's and the org-wide receivers
    assert sorted(r["delivered"] for r in reports) == [0, 2]
    assert [json.loads(r.body)["rule"] for r in own.requests] == ["real"]
    assert [json.loads(r.body)["rule"] for r in org.requests] == ["real"]
    (letter,) = letters(stack)
    assert letter["reason_code"] == "unauthenticated_event" and "matches none of the workflow's publish keys" in letter["reason"]
    assert json.loads(letter["raw_message"])["rule"] == "forged"


def test_any_key_of_a_rotation_list_verifies(stack: Stack, receivers: Callable[..., Receiver]) -> None:
    # given a workflow rotating from an old key to a new one (newest first)
    own, _ = bound_workflow(stack, receivers, f'key = ["new-key-0123456789abcdef", "{KEY}"]')
    # when a publisher still signs with the old key
    publish_message(stack.sns, stack.topic_arn, EVENT, key=KEY)
    (report,) = stack.carry_published()
    # then it is delivered
    assert report["delivered"] == 2 and len(own.requests) == 1


def test_a_workflow_without_a_key_still_takes_unsigned_events(stack: Stack, receivers: Callable[..., Receiver]) -> None:
    # given another workflow bound to a key, and this one with no [publish] table
    bound_workflow(stack, receivers)
    free = receivers(ok(), "free")
    stack.put_config("assembly", f'[[webhooks]]\nid = "lims"\nurl = "{free.url}"\n')
    # when an unsigned event is published for it
    publish_message(stack.sns, stack.topic_arn, {**EVENT, "workflow": "assembly"})
    (report,) = stack.carry_published()
    # then it is delivered as before, and nothing is dead-lettered
    assert len(free.requests) == 1 and report["dead_lettered"] == 0


def test_an_exact_replay_of_signed_bytes_is_posted_once(stack: Stack, receivers: Callable[..., Receiver]) -> None:
    # given a signed event as the topic delivered it
    own, _ = bound_workflow(stack, receivers)
    publish_message(stack.sns, stack.topic_arn, EVENT, key=KEY)
    (envelope,) = tapped(stack)
    signature = envelope["MessageAttributes"]["oxoflow-signature"]["Value"]
    # when someone who saw it publishes the same bytes with the same attribute again (a new SNS MessageId)
    attributes = {"oxoflow-signature": {"DataType": "String", "StringValue": signature}}
    stack.sns.publish(TopicArn=stack.topic_arn, Message=envelope["Message"], MessageAttributes=attributes)
    (copy,) = tapped(stack)
    first = stack.invoke("DispatchFunction", sns_event(envelope))
    again = stack.invoke("DispatchFunction", sns_event(copy))
    # then the receiver got it once: the replay's delivery ids are the original's
    assert copy["MessageId"] != envelope["MessageId"]
    assert first["delivered"] == 2 and again["delivered"] == 0 and again["already_delivered"] == 2
    assert len(own.requests) == 1


def test_a_key_reference_is_read_from_the_workflows_scope_and_a_missing_one_refuses_the_event(
    stack: Stack, receivers: Callable[..., Receiver]
) -> None:
    # given a workflow whose key is a parameter in its own scope
    name = f"/oxoflow-notify/workflows/{WORKFLOW}/publish-key"
    boto3.client("ssm", region_name=REGION).put_parameter(Name=name, Value=KEY, Type="SecureString")
    own, org = bound_workflow(stack, receivers, f'key = "ssm:{name}"')
    # when an event signed with the parameter's value is published
    publish_message(stack.sns, stack.topic_arn, EVENT, key=KEY)
    (signed,) = stack.carry_published()
    # then it is delivered
    assert signed["delivered"] == 2
    # and when the file names a parameter that does not exist
    stack.put_config(WORKFLOW, f'[[webhooks]]\nid = "lims"\nurl = "{own.url}"\n\n[publish]\nkey = "ssm:{name}-gone"\n')
    stack.modules["DispatchFunction"].notifier.store._cache.clear()
    publish_message(stack.sns, stack.topic_arn, EVENT, key=KEY)
    (missing,) = stack.carry_published()
    # then the event is dead-lettered as a config problem naming the reference, and delivered nowhere
    assert missing["delivered"] == 0 and len(own.requests) == 1 and len(org.requests) == 1
    (letter,) = letters(stack)
    assert letter["reason_code"] == "invalid_config" and "does not exist" in letter["reason"] and KEY not in json.dumps(letter)


def test_replay_skips_unauthenticated_letters_saying_what_to_do(stack: Stack, receivers: Callable[..., Receiver]) -> None:
    # given an unsigned event for a bound workflow, dead-lettered
    own, _ = bound_workflow(stack, receivers)
    publish_message(stack.sns, stack.topic_arn, EVENT)
    stack.carry_published()
    notifier = stack.modules["DispatchFunction"].notifier
    # when replay runs, filtered on the new reason code
    summary = replay(notifier, stack.sqs, stack.dead_letter_queue_url, Filters(reason="unauthenticated_event"), visibility=0)
    # then it is skipped with the way out, delivered nowhere, and left in the queue
    assert summary.results == {"skipped": 1}
    assert "publish it again signed with the workflow's publish key" in summary.rows[0][3]
    assert own.requests == [] and len(letters(stack)) == 1


def on_failure_record(envelope: dict[str, Any]) -> dict[str, Any]:
    """Lambda's on-failure destination record for an SNS event the dispatcher failed on every time."""
    return {"requestContext": {"requestId": str(uuid.uuid4()), "condition": "RetriesExhausted"}, "requestPayload": sns_event(envelope)}


def test_replay_on_failure_republishes_a_signed_message_byte_for_byte(stack: Stack, receivers: Callable[..., Receiver]) -> None:
    # given a signed event the dispatcher failed on, as Lambda's on-failure record in the dead-letter queue
    own, _ = bound_workflow(stack, receivers)
    publish_message(stack.sns, stack.topic_arn, EVENT, key=KEY)
    (envelope,) = tapped(stack)
    stack.sqs.send_message(QueueUrl=stack.dead_letter_queue_url, MessageBody=json.dumps(on_failure_record(envelope)))
    # when replay --on-failure recovers it
    summary = republish_on_failure(stack.sns, stack.topic_arn, stack.sqs, stack.dead_letter_queue_url, Filters(), visibility=0)
    # then the same bytes and signature were published again, and it is delivered
    assert summary.results == {"republished": 1}
    (again,) = tapped(stack)
    assert again["Message"] == envelope["Message"]
    assert again["MessageAttributes"]["oxoflow-signature"] == envelope["MessageAttributes"]["oxoflow-signature"]
    assert stack.invoke("DispatchFunction", sns_event(again))["delivered"] == 2
    assert len(own.requests) == 1


def test_replay_on_failure_leaves_a_signed_message_without_id_and_timestamp_as_invalid(stack: Stack) -> None:
    # given an on-failure record of a message signed by hand, with no id or timestamp of its own
    body = json.dumps(EVENT)
    signature = "sha256=" + hmac.new(KEY.encode(), body.encode(), hashlib.sha256).hexdigest()
    envelope = {"MessageId": str(uuid.uuid4()), "Message": body, "Timestamp": "2026-05-18T12:00:00.250Z", "TopicArn": stack.topic_arn,
                "MessageAttributes": {"oxoflow-signature": {"Type": "String", "Value": signature}}}  # fmt: skip
    stack.sqs.send_message(QueueUrl=stack.dead_letter_queue_url, MessageBody=json.dumps(on_failure_record(envelope)))
    # when replay --on-failure runs
    summary = republish_on_failure(stack.sns, stack.topic_arn, stack.sqs, stack.dead_letter_queue_url, Filters(), visibility=0)
    # then nothing is published, and it stays in the queue, listed as invalid with what to do
    assert summary.results == {"invalid": 1}
    assert "publish it again signed with the workflow's publish key" in summary.rows[0][3]
    assert tapped(stack) == [] and len(letters(stack)) == 1


@pytest.mark.parametrize("source", ["file", "env"])
def test_publish_signs_with_a_key_file_or_the_environment(
    stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], source: str
) -> None:
    # given the workflow's key in a file (with the newline editors add) or in the environment
    monkeypatch.setenv("OXOFLOW_NOTIFY_TOPIC_ARN", stack.topic_arn)
    args = ["publish", "--event", "RuleFailed", "--workflow", WORKFLOW, "--rule", "align_reads"]
    if source == "file":
        (tmp_path / "publish.key").write_text(KEY + "\n", encoding="utf-8")
        args += ["--publish-key-file", str(tmp_path / "publish.key")]
    else:
        monkeypatch.setenv("OXOFLOW_NOTIFY_PUBLISH_KEY", KEY)
    # when oxoflow-notify publish runs
    code = main(args)
    # then the topic got an oxoflow-signature an independent HMAC of the exact message verifies
    assert code == 0, capsys.readouterr().err
    (envelope,) = tapped(stack)
    expected = "sha256=" + hmac.new(KEY.encode(), envelope["Message"].encode(), hashlib.sha256).hexdigest()
    assert envelope["MessageAttributes"]["oxoflow-signature"]["Value"] == expected
    # and the message carries its own id and timestamp, so a replay of it keeps its delivery ids
    message = json.loads(envelope["Message"])
    assert message["id"] and message["timestamp"].endswith("Z")
    assert envelope["MessageId"] in capsys.readouterr().out

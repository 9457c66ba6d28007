"""oxo-flow's own webhook in: signed native POST -> IngestFunction -> topic -> dispatcher -> receiver."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Any

import boto3
import pytest

from oxolocal.receivers import Receiver, ok
from oxolocal.stack import REGION, Stack
from tests.conftest import EVENTS

SECRET = "sample-ingest-secret"  # what events/url-oxoflow-workflow-completed.json is signed with
OLDER = "older-ingest-secret"  # still accepted while rotating: the stored value is the JSON list [new, old]


def sample() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EVENTS / "url-oxoflow-workflow-completed.json").read_text(encoding="utf-8"))
    return data


def signed(native: dict[str, Any], secret: str = SECRET) -> dict[str, Any]:
    event = sample()
    event["body"] = json.dumps(native)
    event["headers"]["x-oxoflow-signature"] = "hmac-sha256=" + hmac.new(secret.encode(), event["body"].encode(), hashlib.sha256).hexdigest()
    return event


@pytest.fixture
def ingest_stack(stack: Stack) -> Stack:
    boto3.client("ssm", region_name=REGION).put_parameter(
        Name="/oxoflow-notify-ingest/secret", Value=json.dumps([SECRET, OLDER]), Type="SecureString", Overwrite=True
    )
    return stack


def test_a_signed_oxoflow_post_reaches_the_workflows_webhooks(
    ingest_stack: Stack, receivers: Callable[..., Receiver], capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    # given a workflow whose config is oxo-flow's own [webhook] table, signed, and a receiver behind it
    stack, lims = ingest_stack, receivers(ok())
    stack.put_config("variant-calling", f'[workflow]\nname = "variant-calling"\n\n[webhook]\nurl = "{lims.url}"\nsecret = "lims-key"\n')
    # when oxo-flow POSTs its native, signed workflow_completed (2 of 12 rules failed) to the ingest URL
    answer = stack.invoke("IngestFunction", sample())
    # then it is accepted and published with the attributes subscribers filter on
    assert answer["statusCode"] == 202, answer
    accepted = json.loads(answer["body"])
    assert accepted["event"] == "WorkflowCompleted" and accepted["workflow"] == "variant-calling"
    (envelope,) = [json.loads(m["Body"]) for m in stack.receive(stack.tap_url)]
    assert envelope["MessageAttributes"]["event"]["Value"] == "WorkflowCompleted"
    published = json.loads(envelope["Message"])
    assert published["event"] == "workflow_completed"  # a completed run with failures stays completed
    assert published["details"] == {"total_rules": 12, "succeeded": 10, "failed": 2, "skipped": 0, "duration_ms": 2467000,
                                    "oxoflow_version": "0.14.2"}  # fmt: skip
    # and when the dispatcher handles it, the receiver gets oxo-flow's payload with oxo-flow's signature
    from oxolocal.stack import sns_event

    stack.invoke("DispatchFunction", sns_event(envelope))
    (got,) = lims.requests
    expected = hmac.new(b"lims-key", got.body, hashlib.sha256).hexdigest()
    assert got.header("X-OxoFlow-Signature") == f"hmac-sha256={expected}"
    body = json.loads(got.body)
    assert body["event"] == "workflow_completed" and body["workflow_name"] == "variant-calling"
    assert body["data"] == {"total_rules": 12, "succeeded": 10, "failed": 2, "skipped": 0, "duration_ms": 2467000}
    # and neither secret nor the receiver's URL is in the functions' logs and metrics
    logs = capsys.readouterr().out + caplog.text + " ".join(str(r.__dict__) for r in caplog.records)
    assert "ingested" in logs and SECRET not in logs and "lims-key" not in logs and lims.url not in logs


def test_oxoflow_retrying_the_same_post_is_delivered_once(ingest_stack: Stack, receivers: Callable[..., Receiver]) -> None:
    stack, lims = ingest_stack, receivers(ok())
    stack.put_config("variant-calling", f'[webhook]\nurl = "{lims.url}"\n')
    first = json.loads(stack.invoke("IngestFunction", sample())["body"])
    second = json.loads(stack.invoke("IngestFunction", sample())["body"])  # oxo-flow's own retry, same body
    assert first["id"] == second["id"]
    stack.carry_published()
    assert len(lims.requests) == 1  # same event id -> same delivery id -> the ledger posts it once


@pytest.mark.parametrize(
    ("mutate", "status", "says"),
    [
        (lambda e: e["headers"].pop("x-oxoflow-signature"), 401, "missing X-OxoFlow-Signature"),
        (lambda e: e["headers"].update({"x-oxoflow-signature": "hmac-sha256=" + "0" * 64}), 401, "does not match"),
        (lambda e: e.update({"body": e["body"].replace("succeeded", "succeedeD")}), 401, "does not match"),
        (lambda e: e["requestContext"]["http"].update({"method": "GET"}), 405, "GET is not accepted"),
    ],
)
def test_unsigned_or_tampered_requests_are_refused_and_never_published(
    ingest_stack: Stack, mutate: Callable[[dict[str, Any]], Any], status: int, says: str
) -> None:
    event = copy.deepcopy(sample())
    mutate(event)
    answer = ingest_stack.invoke("IngestFunction", event)
    assert answer["statusCode"] == status and says in json.loads(answer["body"])["error"]
    assert ingest_stack.receive(ingest_stack.tap_url) == []


def test_a_rotated_secret_still_verifies_and_a_bad_payload_is_named(ingest_stack: Stack) -> None:
    native = {"event": "rule_failed", "workflow_name": "variant-calling", "data": {"rule": "bwa", "exit_code": 137}}
    assert ingest_stack.invoke("IngestFunction", signed(native, OLDER))["statusCode"] == 202
    answer = ingest_stack.invoke("IngestFunction", signed({"event": "workflow_finished", "workflow_name": "wf"}))
    assert answer["statusCode"] == 400
    assert "unknown event 'workflow_finished' (did you mean 'workflow_failed'?)" in json.loads(answer["body"])["error"]
    # signed, so it is oxo-flow's: kept in the dead-letter queue with its reason, as the dispatcher keeps bad events
    (letter,) = ingest_stack.drain(ingest_stack.dead_letter_queue_url)
    assert letter["reason_code"] == "invalid_event" and "workflow_finished" in letter["raw_message"]


def test_a_stored_secret_with_a_comma_is_refused_not_split(ingest_stack: Stack) -> None:
    # given the stored ingest secret holds a comma (the old rotation separator) before a short tail
    boto3.client("ssm", region_name=REGION).put_parameter(
        Name="/oxoflow-notify-ingest/secret", Value="k3y-long-part-of-it,X", Type="SecureString", Overwrite=True
    )
    native = {"event": "rule_failed", "workflow_name": "variant-calling", "data": {"rule": "bwa"}}
    # when a body signed with the tail arrives
    answer = ingest_stack.invoke("IngestFunction", signed(native, "X"))
    # then it is refused with 503 (the operator must store a JSON list to rotate), never published
    assert answer["statusCode"] == 503 and "misconfigured" in json.loads(answer["body"])["error"]
    assert ingest_stack.receive(ingest_stack.tap_url) == []

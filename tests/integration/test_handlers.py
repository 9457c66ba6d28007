"""The dispatch and retry handlers against S3 and SQS (mock_aws) and real loopback receivers."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Any

import pytest

from oxoflow_notify.errors import is_infrastructure
from oxolocal.receivers import Answer, Receiver, always, fail_first, ok
from oxolocal.stack import Stack, sqs_event
from tests.conftest import EVENTS, sns_event


def retry_event() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EVENTS / "sqs-retry.json").read_text(encoding="utf-8"))
    return data


def config(*hooks: str) -> str:
    return '[workflow]\nname = "variant-calling"\n\n' + "\n".join(f"[[webhooks]]\n{h}\n" for h in hooks)


def test_dispatch_posts_signed_json_to_the_matching_webhooks(stack: Stack, receivers: Callable[..., Receiver]) -> None:
    # given a workflow with one signed json webhook for all events and one for WorkflowFailed only
    lims, other = receivers(ok()), receivers(ok())
    stack.put_config("variant-calling", config(f'url = "{lims.url}"\nsecret = "k1"', f'url = "{other.url}"\nevents = ["WorkflowFailed"]'))
    # when the sample RuleFailed SNS event is handled
    result = stack.invoke("DispatchFunction", sns_event("rule-failed"))
    # then only the matching webhook got it, signed over the exact bytes
    assert result["delivered"] == 1 and result["retrying"] == 0 and result["dead_lettered"] == 0
    (got,) = lims.requests
    assert other.requests == []
    assert got.header("X-Hub-Signature-256") == "sha256=" + hmac.new(b"k1", got.body, hashlib.sha256).hexdigest()
    body = json.loads(got.body)
    assert body["event"] == "RuleFailed" and body["rule"] == "align_reads"
    assert body["id"] == sns_event("rule-failed")["Records"][0]["Sns"]["MessageId"]


def test_a_workflow_without_config_is_not_an_error(stack: Stack) -> None:
    assert stack.invoke("DispatchFunction", sns_event("workflow-started"))["deliveries"] == []
    assert stack.drain(stack.dead_letter_queue_url) == []


def test_default_file_applies_to_every_workflow(stack: Stack, receivers: Callable[..., Receiver]) -> None:
    org = receivers(ok())
    stack.put_config("_default", f'[[webhooks]]\nurl = "{org.url}"\nevents = ["WorkflowFailed"]\n')
    stack.invoke("DispatchFunction", sns_event("workflow-failed"))
    stack.invoke("DispatchFunction", sns_event("rule-failed"))
    assert [json.loads(r.body)["event"] for r in org.requests] == ["WorkflowFailed"]


def test_5xx_goes_to_the_retry_queue_and_the_retry_handler_delivers_it(stack: Stack, receivers: Callable[..., Receiver]) -> None:
    flaky = receivers(fail_first(1, 503))
    stack.put_config("variant-calling", config(f'url = "{flaky.url}"'))
    # when dispatch meets a 503
    assert stack.invoke("DispatchFunction", sns_event("rule-failed"))["retrying"] == 1
    (message,) = stack.receive(stack.retry_queue_url)
    task = json.loads(message["Body"])
    # then the retry message names the webhook by id, never by URL
    assert task["attempt"] == 2 and task["attempts"][0]["status"] == 503
    assert flaky.url not in message["Body"] and f":{flaky.port}" not in message["Body"]
    # when the retry handler gets it
    result = stack.invoke("RetryFunction", sqs_event([message], "arn:aws:sqs:us-east-1:123456789012:q"))
    # then it is delivered with the same delivery id, attempt 2
    assert result == {"batchItemFailures": []}
    first, second = flaky.requests
    assert second.answered == 200 and second.header("X-OxoFlow-Attempt") == "2"
    assert first.header("X-OxoFlow-Delivery") == second.header("X-OxoFlow-Delivery")


def test_404_is_dead_lettered_with_reason_and_without_url(stack: Stack, receivers: Callable[..., Receiver]) -> None:
    gone = receivers(always(404))
    stack.put_config("variant-calling", config(f'id = "old"\nurl = "{gone.url}"\nsecret = "TOPSECRET"'))
    stack.invoke("DispatchFunction", sns_event("rule-failed"))
    (letter,) = stack.drain(stack.dead_letter_queue_url)
    assert letter["reason_code"] == "permanent_failure" and "HTTP 404" in letter["reason"]
    assert letter["webhook"] == {"id": "old", "format": "json", "host": "localhost", "source": "workflows/variant-calling.oxoflow"}
    assert letter["event"]["event"] == "RuleFailed" and letter["last_status"] == 404 and letter["attempt_count"] == 1
    assert "TOPSECRET" not in json.dumps(letter) and gone.url not in json.dumps(letter)
    assert stack.drain(stack.retry_queue_url) == []


def test_exhausted_schedule_is_dead_lettered_with_every_attempt(stack: Stack, receivers: Callable[..., Receiver]) -> None:
    down = receivers(always(500))
    stack.put_config("variant-calling", config(f'url = "{down.url}"'))
    stack.invoke("DispatchFunction", sns_event("rule-failed"))
    stack.drain_retries()
    (letter,) = stack.drain(stack.dead_letter_queue_url)
    assert letter["reason_code"] == "retries_exhausted"
    assert [a["attempt"] for a in letter["attempts"]] == [1, 2, 3] and len(down.requests) == 3


def test_broken_toml_dead_letters_the_event_with_line_and_column(stack: Stack) -> None:
    stack.put_config("variant-calling", '[[webhooks]]\nurl = "https://x.example.org"\nevents = [\n')
    stack.invoke("DispatchFunction", sns_event("rule-failed"))
    (letter,) = stack.drain(stack.dead_letter_queue_url)
    assert letter["reason_code"] == "invalid_config"
    assert "workflows/variant-calling.oxoflow: TOML syntax error at line 4, column 1" in letter["reason"]
    assert letter["event"]["rule"] == "align_reads"


def test_malformed_message_is_dead_lettered_not_dropped(stack: Stack) -> None:
    event = sns_event("rule-failed")
    event["Records"][0]["Sns"]["Message"] = json.dumps({"event": "RuleFailed", "workflow": "variant-calling"})
    stack.invoke("DispatchFunction", event)
    (letter,) = stack.drain(stack.dead_letter_queue_url)
    assert letter["reason_code"] == "invalid_event" and letter["reason"] == "field 'rule' is required"
    assert json.loads(letter["raw_message"]) == {"event": "RuleFailed", "workflow": "variant-calling"}
    assert letter["message_id"] == event["Records"][0]["Sns"]["MessageId"]


def test_retry_of_a_removed_webhook_is_dead_lettered(stack: Stack) -> None:
    stack.put_config("variant-calling", config('url = "https://elsewhere.example.org/x"'))
    result = stack.invoke("RetryFunction", retry_event())
    assert result == {"batchItemFailures": []}
    (letter,) = stack.drain(stack.dead_letter_queue_url)
    assert letter["reason_code"] == "webhook_removed" and "lims" in letter["reason"]
    assert letter["attempt_count"] == 1


def test_the_sample_retry_event_is_delivered_when_its_webhook_exists(stack: Stack, receivers: Callable[..., Receiver]) -> None:
    lims = receivers(ok())
    stack.put_config("variant-calling", config(f'id = "lims"\nurl = "{lims.url}"\nsecret = "k"'))
    event: dict[str, Any] = retry_event()
    assert stack.invoke("RetryFunction", event) == {"batchItemFailures": []}
    (got,) = lims.requests
    assert got.header("X-OxoFlow-Attempt") == "2" and json.loads(got.body)["event"] == "RuleFailed"


def test_s3_trouble_in_the_retry_handler_is_a_partial_batch_failure(stack: Stack) -> None:
    # given the bucket is gone (S3 answers NoSuchBucket: a deployment fault, not "no webhooks")
    stack.s3.delete_bucket(Bucket=stack.bucket)
    event = retry_event()
    broken = {**event["Records"][0], "messageId": "malformed-1", "body": "{}"}
    event["Records"].append(broken)
    # when a batch holds that record and one that needs no S3
    result = stack.invoke("RetryFunction", event)
    # then only the S3 one is reported failed, for SQS to deliver again (and redrive to the DLQ)
    assert result == {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}


def test_a_batch_that_fails_entirely_fails_the_invocation_with_its_fault(stack: Stack) -> None:
    # given the bucket is gone, and a batch whose every record needs it
    stack.s3.delete_bucket(Bucket=stack.bucket)
    # when the retry function runs it, then the invocation fails with the AWS fault itself (Lambda retries the batch)
    with pytest.raises(Exception) as raised:
        stack.invoke("RetryFunction", retry_event())
    assert is_infrastructure(raised.value)


def test_malformed_retry_message_is_dead_lettered_and_not_retried(stack: Stack) -> None:
    event = retry_event()
    event["Records"][0]["body"] = '{"schema": "nope"}'
    assert stack.invoke("RetryFunction", event) == {"batchItemFailures": []}
    (letter,) = stack.drain(stack.dead_letter_queue_url)
    assert letter["reason_code"] == "malformed_retry" and letter["raw_message"] == '{"schema": "nope"}'


def test_max_attempts_ends_a_webhooks_schedule_early(stack: Stack, receivers: Callable[..., Receiver]) -> None:
    down = receivers(always(503))
    stack.put_config("variant-calling", config(f'url = "{down.url}"\nmax_attempts = 2'))
    stack.invoke("DispatchFunction", sns_event("rule-failed"))
    stack.drain_retries()
    (letter,) = stack.drain(stack.dead_letter_queue_url)
    assert letter["reason_code"] == "retries_exhausted" and letter["attempt_count"] == 2 and len(down.requests) == 2


def test_a_dead_endpoint_is_left_alone_while_the_others_still_deliver(stack: Stack, receivers: Callable[..., Receiver]) -> None:
    # given a dead endpoint and a healthy one, and a breaker that opens after 3 failures
    dead, alive = receivers(always(503)), receivers(ok())
    stack.overrides.update({"CIRCUIT_THRESHOLD": "3", "CIRCUIT_COOLDOWN_SECONDS": "600"})
    stack.put_config("variant-calling", config(f'id = "dead"\nurl = "{dead.url}"', f'id = "alive"\nurl = "{alive.url}"'))
    # when eight events arrive
    event = sns_event("rule-failed")
    reports = []
    for n in range(8):
        event["Records"][0]["Sns"]["MessageId"] = f"m-{n}"
        reports.append(stack.invoke("DispatchFunction", event))
    # then the dead endpoint was called until its failure was sustained (3 in a row, over at least
    # half a window of 12 answers: 6 calls), the healthy one 8 times, and nothing was lost:
    assert len(dead.requests) == 6 and len(alive.requests) == 8
    held = [d for r in reports for d in r["deliveries"] if d["error"] == "circuit_open"]
    assert len(held) == 2 and all(d["webhook_id"] == "dead" and d["attempt"] == 1 and d["result"] == "held" for d in held)
    # 6 failed attempts due now (compressed schedule), 2 held back for the cool-down, attempt unspent
    assert stack.depth(stack.retry_queue_url) == {"visible": 6, "delayed": 2, "in_flight": 0}


def test_the_breaker_judges_answers_as_the_retry_policy_does(stack: Stack, receivers: Callable[..., Receiver]) -> None:
    # given a Teams endpoint that answers 200 with an error in the body (a failure, retried)
    teams = receivers(lambda n, r: Answer(200, b"Webhook message delivery failed with error: 429"))
    stack.overrides.update({"CIRCUIT_THRESHOLD": "2", "CIRCUIT_COOLDOWN_SECONDS": "600"})
    stack.put_config("variant-calling", config(f'id = "teams"\nurl = "{teams.url}"\nformat = "teams"'))
    # when six events arrive
    event = sns_event("rule-failed")
    for n in range(6):
        event["Records"][0]["Sns"]["MessageId"] = f"t-{n}"
        stack.invoke("DispatchFunction", event)
    # then those answers opened the circuit like any other retryable failure (after 4: 2 in a row,
    # over half a window of 8)
    assert len(teams.requests) == 4
    assert stack.depth(stack.retry_queue_url)["delayed"] == 2


def test_a_message_failing_on_its_last_receive_is_dead_lettered_with_its_fault_and_replays(
    stack: Stack, receivers: Callable[..., Receiver]
) -> None:
    from oxoflow_notify.defaults import DEFAULTS
    from oxoflow_notify.tools.replay import Filters, replay

    # given a retry message whose config cannot be read (the bucket is gone: S3 answers NoSuchBucket)
    lims = receivers(ok())
    stack.s3.delete_bucket(Bucket=stack.bucket)
    event = retry_event()
    body = event["Records"][0]["body"]
    # when SQS hands it out before its last receive, it fails for SQS to deliver again
    event["Records"][0]["attributes"]["ApproximateReceiveCount"] = str(DEFAULTS.retry_receives - 1)
    with pytest.raises(Exception) as raised:
        stack.invoke("RetryFunction", event)
    assert is_infrastructure(raised.value) and stack.drain(stack.dead_letter_queue_url) == []
    # and on the last receive the queue allows (the template's maxReceiveCount), it is dead-lettered
    # by the function with the fault named and the message kept whole, not moved bare by SQS's redrive
    event["Records"][0]["attributes"]["ApproximateReceiveCount"] = str(DEFAULTS.retry_receives)
    assert stack.invoke("RetryFunction", event) == {"batchItemFailures": []}
    (letter,) = stack.drain(stack.dead_letter_queue_url)
    assert letter["reason_code"] == "retry_faulted" and letter["raw_message"] == body
    assert "NoSuchBucket" in letter["reason"] and f"{DEFAULTS.retry_receives} receives" in letter["reason"]
    assert lims.requests == []
    # then once S3 answers again, replay delivers it as the attempt it was
    stack.s3.create_bucket(Bucket=stack.bucket)
    stack.put_config("variant-calling", config(f'id = "lims"\nurl = "{lims.url}"\nsecret = "k"'))
    stack.sqs.send_message(QueueUrl=stack.dead_letter_queue_url, MessageBody=json.dumps(letter))
    summary = replay(stack.modules["RetryFunction"].notifier, stack.sqs, stack.dead_letter_queue_url, Filters(), visibility=0)
    assert summary.results == {"delivered": 1}
    (got,) = lims.requests
    assert got.header("X-OxoFlow-Attempt") == "2" and json.loads(got.body)["event"] == "RuleFailed"


def test_the_templates_redrive_is_the_receive_the_function_dead_letters_on() -> None:
    from oxoflow_notify.defaults import DEFAULTS
    from oxolocal import template as tpl

    redrive = tpl.load()["Resources"]["RetryQueue"]["Properties"]["RedrivePolicy"]
    assert redrive["maxReceiveCount"] == DEFAULTS.retry_receives

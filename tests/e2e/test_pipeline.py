"""Publish to SNS -> dispatch -> real receivers -> retry queue -> retry handler -> dead letters."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import logging
from collections.abc import Callable

import boto3
import pytest

from oxoflow_notify.inbound.events import EVENT_NAMES
from oxolocal.receivers import Receiver, always, fail_first, ok, reset, stall, verify_hub, wrong_name_cert
from oxolocal.stack import Stack
from tests.conftest import EVENT_KINDS, message


def hooks(*entries: str) -> str:
    return '[workflow]\nname = "variant-calling"\n[config]\nthreads = 8\n\n' + "\n".join(f"[[webhooks]]\n{e}\n" for e in entries)


def test_published_events_arrive_signed_and_verifiable(stack: Stack, receivers: Callable[..., Receiver]) -> None:
    # given a signed json webhook for every event and a slack webhook for failures
    secret = "e2e-shared-secret"
    lims = receivers(verify_hub(secret), "lims")
    slack = receivers(ok(), "slack")
    stack.put_config(
        "variant-calling",
        hooks(
            f'url = "{lims.url}"\nsecret = "{secret}"', f'url = "{slack.url}"\nformat = "slack"\nevents = ["RuleFailed", "WorkflowFailed"]'
        ),
    )
    # when the eight sample events are published to the SNS topic and carried to the dispatcher
    for kind in EVENT_KINDS:
        stack.publish(message(kind))
    reports = stack.carry_published()
    # then every event reached lims once, each signature verifying independently of our code
    assert len(reports) == 8 and sum(r["delivered"] for r in reports) == 10
    assert sorted(json.loads(r.body)["event"] for r in lims.requests) == sorted(EVENT_NAMES)
    for got in lims.requests:
        assert got.answered == 200
        assert got.header("X-Hub-Signature-256") == "sha256=" + hmac.new(secret.encode(), got.body, hashlib.sha256).hexdigest()
        assert got.header("Content-Type") == "application/json"
        assert (got.header("User-Agent") or "").startswith("oxoflow-notify/")
        assert got.header("X-OxoFlow-Event") == json.loads(got.body)["event"]
    # and slack got exactly the two failures, in Slack's shape, unsigned
    assert sorted(json.loads(r.body)["attachments"][0]["color"] for r in slack.requests) == ["#e01e5a", "#e01e5a"]
    assert all(r.header("X-Hub-Signature-256") is None for r in slack.requests)
    assert len({r.header("X-OxoFlow-Delivery") for r in lims.requests + slack.requests}) == 10
    assert stack.drain(stack.dead_letter_queue_url) == []
    # over https to a hostname, as every real receiver is: SNI and Host named it
    assert lims.url.startswith("https://localhost:") and set(lims.handshakes) == {"localhost"}
    assert {r.header("Host") for r in lims.requests} == {f"localhost:{lims.port}"}


def test_a_certificate_for_another_name_is_warned_about_retried_and_dead_lettered_with_that_reason(
    stack: Stack, receivers: Callable[..., Receiver], caplog: pytest.LogCaptureFixture
) -> None:
    # given a receiver whose certificate (from a trusted CA) is for another name
    impostor = receivers(ok(), "impostor", certificate=wrong_name_cert())
    stack.put_config("variant-calling", hooks(f'id = "lims"\nurl = "{impostor.url}"\nmax_attempts = 2'))
    # when an event is published and the retries run their course
    stack.publish(message("rule-failed"))
    stack.carry_published()
    warned = [r.__dict__ for r in caplog.records if r.getMessage() == "delivery failed, will retry"]
    stack.drain_retries()
    # then the first attempt was logged at WARNING with the reason, nothing was ever sent,
    assert len(warned) == 1 and warned[0]["levelname"] == "WARNING" and warned[0]["error"] == "tls_wrong_name"
    assert "TLS certificate is for another name" in warned[0]["reason"]
    assert impostor.requests == [] and impostor.refused_handshakes == 2
    # and the delivery was dead-lettered with that reason when the schedule ended
    (letter,) = stack.drain(stack.dead_letter_queue_url)
    assert letter["reason_code"] == "retries_exhausted" and "TLS certificate is for another name" in letter["reason"]
    assert [a["error"] for a in letter["attempts"]] == ["tls_wrong_name", "tls_wrong_name"]


def test_a_5xx_is_retried_through_sqs_and_delivered(stack: Stack, receivers: Callable[..., Receiver]) -> None:
    flaky = receivers(fail_first(2, 503))
    stack.put_config("variant-calling", hooks(f'url = "{flaky.url}"'))
    stack.publish(message("rule-failed"))
    assert stack.carry_published()[0]["retrying"] == 1
    assert stack.drain_retries() == 2
    assert [r.answered for r in flaky.requests] == [503, 503, 200]
    assert [r.header("X-OxoFlow-Attempt") for r in flaky.requests] == ["1", "2", "3"]
    assert len({r.header("X-OxoFlow-Delivery") for r in flaky.requests}) == 1
    assert len({r.body for r in flaky.requests}) == 1  # the same bytes on every attempt
    assert stack.drain(stack.dead_letter_queue_url) == []


@pytest.mark.parametrize("behaviour", [reset(), stall(2.0)], ids=["reset", "stall"])
def test_resets_and_stalls_are_retried_until_the_schedule_runs_out(
    stack: Stack, receivers: Callable[..., Receiver], behaviour: object
) -> None:
    bad = receivers(behaviour)
    stack.overrides["READ_TIMEOUT_SECONDS"] = "0.3"
    stack.put_config("variant-calling", hooks(f'id = "bad"\nurl = "{bad.url}"'))
    stack.publish(message("workflow-failed"))
    stack.carry_published()
    stack.drain_retries()
    (letter,) = stack.drain(stack.dead_letter_queue_url)
    assert letter["reason_code"] == "retries_exhausted" and letter["attempt_count"] == 3
    assert {a["error"] for a in letter["attempts"]} == {"connection_reset" if bad.requests[0].answered == "reset" else "read_timeout"}
    assert len(bad.requests) == 3


def test_a_404_lands_in_the_dead_letter_queue(stack: Stack, receivers: Callable[..., Receiver]) -> None:
    gone = receivers(always(404))
    stack.put_config("variant-calling", hooks(f'id = "gone"\nurl = "{gone.url}"\nsecret = "s-404-secret"'))
    stack.publish(message("workflow-completed"))
    stack.carry_published()
    assert stack.drain_retries() == 0
    (letter,) = stack.drain(stack.dead_letter_queue_url)
    assert letter["reason_code"] == "permanent_failure" and letter["webhook"]["id"] == "gone"
    assert letter["event"]["event"] == "WorkflowCompleted" and letter["last_status"] == 404
    assert "s-404-secret" not in json.dumps(letter) and gone.url not in json.dumps(letter)


def test_a_broken_config_dead_letters_the_event_with_its_line(stack: Stack) -> None:
    stack.put_config("variant-calling", '[workflow]\nname = "variant-calling"\n\n[[webhooks]]\nurl = "https://x.example.org\n')
    stack.publish(message("rule-failed"))
    stack.carry_published()
    (letter,) = stack.drain(stack.dead_letter_queue_url)
    assert letter["reason_code"] == "invalid_config"
    assert "workflows/variant-calling.oxoflow: TOML syntax error at line 5" in letter["reason"]
    assert letter["event"]["event"] == "RuleFailed"


def test_no_secret_or_webhook_url_in_logs_metrics_or_queues(
    stack: Stack, receivers: Callable[..., Receiver], capsys: pytest.CaptureFixture[str]
) -> None:
    # given distinctive secrets and URL tokens: literal, in SSM, in Secrets Manager, whsec_ for Standard
    # Webhooks, and receivers that succeed, fail once, refuse, and a webhook that is misconfigured
    secret, token = "SECRET-f00dfeed", "URLTOKEN-c0ffee"
    whsec = "whsec_" + base64.b64encode(b"WHSEC-LEAK-CANARY-0123456789abcdef").decode()
    whsec_sm = "whsec_" + base64.b64encode(b"SM-LEAK-CANARY-0123456789abcdefgh").decode()
    good = receivers(ok(), f"{token}-good")
    flaky = receivers(fail_first(1, 500), f"{token}-flaky")
    gone = receivers(always(410), f"{token}-gone")
    referenced = receivers(ok(), f"{token}-ssm")
    name = f"oxoflow-notify/workflows/variant-calling/{stack.name_prefix}"  # in the workflow's secret scope
    boto3.client("ssm").put_parameter(Name=f"/{name}", Value=f"{referenced.url}?t={token}", Type="SecureString")
    boto3.client("secretsmanager").create_secret(Name=name, SecretString=json.dumps({"k": whsec_sm}))
    entries = [
        f'url = "{r.url}?t={token}"\nsecret = "{secret}"\nformat = "{f}"' for r, f in ((good, "json"), (flaky, "slack"), (gone, "json"))
    ]
    entries.append(f'url = "ssm:/{name}"\nsecret = ["{whsec}", "secretsmanager:{name}#k"]')
    entries.append(f'url = "https://{token}.example.org/x"\nsecret = "{secret}"\nevents = ["NoSuchEvent"]')
    stack.put_config("variant-calling", hooks(*entries))
    from oxoflow_notify.observability import logger

    level = logger.log_level
    logger.setLevel("DEBUG")  # every line, successes included

    handler = logger.registered_handler
    assert isinstance(handler, logging.StreamHandler)
    logs = io.StringIO()
    previous = handler.setStream(logs)
    try:
        # when events flow through dispatch, retry and dead letters
        stack.publish(message("rule-failed"))
        stack.publish(message("workflow-failed"))
        stack.carry_published()
        retry_bodies = [m["Body"] for m in stack.receive(stack.retry_queue_url)]
        stack.drain_retries()
    finally:
        handler.setStream(previous)
        logger.setLevel(level)
    letters = json.dumps(stack.drain(stack.dead_letter_queue_url))
    printed = capsys.readouterr().out  # EMF metrics are printed
    everything = logs.getvalue() + printed + letters + "".join(retry_bodies)
    # then the run really happened (including the referenced, Standard-Webhooks-signed webhook) ...
    assert len(good.requests) == 2 and len(gone.requests) == 2 and retry_bodies and "DeadLettered" in printed
    assert [r.answered for r in referenced.requests] == [200, 200] and referenced.requests[0].header("webhook-signature")
    assert "delivered" in logs.getvalue() and "permanent_failure" in letters and "invalid_webhook" in letters
    # ... and no secret, no URL token, no whsec appears in any log line, metric or queue message
    signatures = referenced.requests[0].header("webhook-signature") or ""
    assert len(signatures.split(" ")) == 2  # one per secret: rotation
    for canary in (secret, token, whsec, whsec[6:], whsec_sm[6:], "WHSEC-LEAK-CANARY", "SM-LEAK-CANARY"):
        assert canary not in everything, canary


def test_private_and_metadata_targets_are_dead_lettered_without_being_contacted(stack: Stack, receivers: Callable[..., Receiver]) -> None:
    # given the guard as deployed (no allowlist) and webhooks pointing inside
    inside = receivers(ok())
    stack.overrides["TARGET_ALLOWLIST"] = ""
    port = inside.url.split(":")[2].split("/")[0]
    stack.put_config(
        "variant-calling",
        hooks(
            f'id = "inside"\nurl = "{inside.url}"',
            f'id = "decimal"\nurl = "https://2130706433:{port}/x"',
            'id = "metadata"\nurl = "https://169.254.169.254/latest/meta-data/"',
        ),
    )
    # when an event is published
    stack.publish(message("workflow-failed"))
    stack.carry_published()
    # then nothing was contacted, nothing is retried, and each refusal says why
    letters = {letter["webhook"]["id"]: letter for letter in stack.drain(stack.dead_letter_queue_url)}
    assert inside.requests == [] and stack.drain(stack.retry_queue_url) == []
    assert "target resolves to 127.0.0.1, which is loopback and blocked" in letters["inside"]["reason"]
    assert "target resolves to 127.0.0.1, which is loopback and blocked" in letters["decimal"]["reason"]
    assert "169.254.169.254, which is the instance metadata service (link-local) and blocked" in letters["metadata"]["reason"]
    assert all(letter["reason_code"] == "permanent_failure" and letter["last_error"] == "blocked_target" for letter in letters.values())

"""The pagerduty format end to end (moto, an HTTPS receiver answering as PagerDuty's Events API v2
does, deduplicating incidents by dedup_key): a failed run opens one incident, the next good run
resolves it, per workflow and per run; the routing key reaches PagerDuty and nothing else."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from oxoflow_notify.aws.delivery_log_table import DeliveryLogReader
from oxoflow_notify.config.parse import parse_config
from oxolocal.receivers import Answer, PagerDutyLike, Receiver
from oxolocal.stack import Stack
from tests.conftest import message

ROUTING_KEY = "R0ut1ngKeyCanary0000000000000042"  # 32 letters and digits, as PagerDuty's


def config(url: str, extra: str = "") -> str:
    return (f'[workflow]\nname = "variant-calling"\n\n[[webhooks]]\nid = "on-call"\nurl = "{url}"\nformat = "pagerduty"\n'
            f'routing_key = "{ROUTING_KEY}"\n{extra}')  # fmt: skip


def send(stack: Stack, kind: str, n: int, **fields: Any) -> None:
    body = {**message(kind), **fields, "id": f"evt-{kind}-{n}"}
    sns = {"MessageId": f"m-{kind}-{n}", "Message": json.dumps(body), "Timestamp": "2026-05-18T12:00:00.000Z", "MessageAttributes": {}}
    stack.invoke("DispatchFunction", {"Records": [{"EventSource": "aws:sns", "Sns": sns}]})


def test_a_failed_run_opens_one_incident_and_the_next_good_run_resolves_it(
    stack: Stack, receivers: Callable[..., Receiver], capsys: pytest.CaptureFixture[str]
) -> None:
    # given a pagerduty webhook (one incident per workflow) and PagerDuty's API emulated
    pagerduty = PagerDutyLike()
    hook = receivers(pagerduty)
    stack.put_config("variant-calling", config(hook.url))
    # when two runs fail (with a rule event in between, which this webhook does not take)
    send(stack, "workflow-failed", 1, run_id="run-1")
    send(stack, "rule-failed", 2, run_id="run-2")
    send(stack, "workflow-failed", 3, run_id="run-2")
    # then one incident is open, alerted twice, every request accepted (202)
    assert pagerduty.opened == 1 and pagerduty.incidents == {"oxoflow-notify/variant-calling": "triggered"}
    assert pagerduty.alerts["oxoflow-notify/variant-calling"] == 2 and [r.answered for r in hook.requests] == [202, 202]
    first = json.loads(hook.requests[0].body)
    assert first["routing_key"] == ROUTING_KEY and first["payload"]["severity"] == "error"
    assert first["payload"]["custom_details"]["event"] == "WorkflowFailed"
    # when the next run completes, then the incident is resolved
    send(stack, "workflow-completed", 4, run_id="run-3")
    assert pagerduty.incidents == {"oxoflow-notify/variant-calling": "resolved"}
    assert json.loads(hook.requests[-1].body)["event_action"] == "resolve"
    # and the routing key went to PagerDuty only: not in the logs, the letters or the delivery log
    log = DeliveryLogReader(stack.dynamodb, stack.physical["DeliveryLog"]["Ref"])
    kept = json.dumps(list(log.recent("variant-calling", 0, {})))
    assert ROUTING_KEY not in capsys.readouterr().out + kept + json.dumps(stack.drain(stack.dead_letter_queue_url))
    assert "X-Hub-Signature-256" not in hook.requests[0].headers  # nothing signs with the routing key


def test_per_run_each_run_has_its_incident_resolved_by_its_own_completion(stack: Stack, receivers: Callable[..., Receiver]) -> None:
    pagerduty = PagerDutyLike()
    hook = receivers(pagerduty)
    stack.put_config("variant-calling", config(hook.url, 'incident_per = "run"\nseverity = "critical"\n'))
    send(stack, "workflow-failed", 1, run_id="run-1")
    send(stack, "workflow-failed", 2, run_id="run-2")
    send(stack, "workflow-completed", 3, run_id="run-1")
    assert pagerduty.opened == 2
    assert pagerduty.incidents == {
        "oxoflow-notify/variant-calling/run/run-1": "resolved",
        "oxoflow-notify/variant-calling/run/run-2": "triggered",
    }
    assert json.loads(hook.requests[0].body)["payload"]["severity"] == "critical"


def test_an_event_pagerduty_refuses_is_dead_lettered_not_retried(stack: Stack, receivers: Callable[..., Receiver]) -> None:
    # given a receiver that refuses every event as invalid (400), as PagerDuty does a bad routing key's shape
    refusal = b'{"status":"invalid event","message":"Event object is invalid","errors":["routing_key is incorrect"]}'
    hook = receivers(lambda n, r: Answer(400, refusal))
    stack.put_config("variant-calling", config(hook.url))
    send(stack, "workflow-failed", 1)
    (letter,) = stack.drain(stack.dead_letter_queue_url)
    assert letter["reason_code"] == "permanent_failure" and "400" in letter["reason"] and len(hook.requests) == 1
    assert ROUTING_KEY not in json.dumps(letter)


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ('format = "pagerduty"', "key 'routing_key' is required for format 'pagerduty'"),
        (f'format = "pagerduty"\nrouting_key = "{ROUTING_KEY}"\nevents = ["RuleStarted"]', "RuleStarted has no meaning for an incident"),
        (f'format = "pagerduty"\nrouting_key = "{ROUTING_KEY}"\nsecret = "s"', "key 'secret' does not apply to format 'pagerduty'"),
        (f'format = "pagerduty"\nrouting_key = "{ROUTING_KEY}"\nincident_per = "runs"', "did you mean 'run'"),
        (f'format = "pagerduty"\nrouting_key = "{ROUTING_KEY}"\nseverity = "fatal"', "is not one of critical, error, warning, info"),
        ('format = "pagerduty"\nrouting_key = "short"', "must be the 32-letter-and-digit integration key"),
        (f'routing_key = "{ROUTING_KEY}"', "key 'routing_key' applies to format 'pagerduty' only"),
        ('format = "pagerdty"', "did you mean 'pagerduty'"),
    ],
)
def test_validate_names_each_pagerduty_mistake_and_never_quotes_the_key(entry: str, problem: str) -> None:
    text = f'[[webhooks]]\nurl = "https://events.pagerduty.com/v2/enqueue"\n{entry}\n'
    parsed = parse_config(text.encode(), "workflows/wf.oxoflow")
    (found,) = parsed.problems
    assert problem in found.message and ROUTING_KEY not in found.message

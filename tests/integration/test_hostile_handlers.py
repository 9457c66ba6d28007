"""Hostile configs and events thrown at the real handlers: they return, and every (event, webhook)
pair is accounted for — delivered, queued for retry, or dead-lettered with a reason."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from oxolocal.receivers import Receiver, ok
from oxolocal.stack import LOCAL_ENV, Stack, sqs_event
from tests.conftest import sns_event

GOOD = "GOOD_URL"  # replaced by the receiver's URL
URLS = [
    GOOD,
    "https://hooks..example.com/x",
    "https://" + "a" * 64 + ".example.com/x",
    "https://localhost:SSMCANARY/x",
    "http://localhost:1/plain",
    "ftp://example.com/x",
    "https://[not-v6]/x",
    "https://exa mple.com/x",
]
HEADERS = [None, '{ "X-Team" = "genomics" }', '{ "X-A\\n" = "v" }', '{ "X-Price" = "5 €" }', '{ "Authorization: Bearer t" = "x" }']
FORMATS = [None, "json", "slack", "teams", "discord", "text", "oxoflow", "nope"]
TIMEOUTS = [None, "1", "0", "31", '"x"', "nan", "inf"]
FILE_DAMAGE = [
    "",
    "\n[config]\nx = " + "[" * 500 + "]" * 500 + "\n",
    "\n[config]\n" + "".join(f"[config.{'.'.join(['t'] * n)}]\n" for n in range(1, 3)) + "deep = " + "{a = " * 40 + "1" + "}" * 40 + "\n",
    "\n[[webhooks]\nurl = \n",
]
EVENT_DAMAGE: list[Callable[[dict[str, Any]], str] | None] = [
    None,
    lambda m: json.dumps({**m, "timestamp": "9999-12-31T23:59:59-23:59"}),
    lambda m: json.dumps({**m, "details": {"duration_s": 1}}).replace('"duration_s": 1', '"duration_s": Infinity'),
    lambda m: json.dumps({**m, "details": {"duration_ms": 1}}).replace('"duration_ms": 1', '"duration_ms": 1e999'),
    lambda m: json.dumps({**m, "details": {"x": 1}}).replace('"x": 1', '"x": NaN'),
    lambda m: json.dumps({**m, "details": {"deep": 0}}).replace("0", "[" * 10_000 + "]" * 10_000),
    lambda m: json.dumps({**m, "event": "RuleFaild"}),
    lambda m: "{not json",
]


@pytest.fixture(scope="module")
def hostile_stack() -> Iterator[tuple[Stack, Receiver]]:
    import os

    saved = dict(os.environ)
    os.environ.update(LOCAL_ENV)
    os.environ.pop("AWS_ENDPOINT_URL", None)
    with mock_aws(), Receiver(ok(), "good") as receiver:
        yield Stack(overrides={"RETRY_SCHEDULE": "0,0", "CONFIG_CACHE_SECONDS": "0"}).provision(), receiver
    os.environ.clear()
    os.environ.update(saved)


webhook_specs = st.lists(
    st.tuples(st.sampled_from(URLS), st.sampled_from(HEADERS), st.sampled_from(FORMATS), st.sampled_from(TIMEOUTS)), min_size=1, max_size=4
)


def render_config(specs: list[tuple[str, str | None, str | None, str | None]], good_url: str, damage: str) -> str:
    text = '[workflow]\nname = "variant-calling"\n'
    for i, (url, headers, fmt, timeout) in enumerate(specs):
        text += f'\n[[webhooks]]\nid = "h{i}"\nurl = "{good_url if url == GOOD else url}"\n'
        if headers:
            text += f"headers = {headers}\n"
        if fmt:
            text += f'format = "{fmt}"\n'
        if timeout:
            text += f"timeout = {timeout}\n"
    return text + damage


def dispatch(stack: Stack, message: str | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Run the dispatcher on the sample RuleFailed event (or another message); its report and dead letters."""
    event = copy.deepcopy(sns_event("rule-failed"))
    event["Records"][0]["Sns"]["MessageId"] = str(uuid.uuid4())  # a new event each time: the ledger would skip a repeat
    if message is not None:
        event["Records"][0]["Sns"]["Message"] = message
    report = stack.invoke("DispatchFunction", event)  # returns: it never raises for bad input
    letters = stack.drain(stack.dead_letter_queue_url)
    stack.drain(stack.retry_queue_url)
    return report, letters


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(specs=webhook_specs, damage=st.sampled_from(["", "", "", *FILE_DAMAGE[1:]]))
def test_hostile_configs_never_crash_the_dispatcher_and_every_webhook_is_accounted_for(
    hostile_stack: tuple[Stack, Receiver], specs: Any, damage: str
) -> None:
    stack, receiver = hostile_stack
    receiver.requests.clear()
    # given a hostile config
    stack.put_config("variant-calling", render_config(specs, receiver.url, damage))
    # when the dispatcher handles an event
    report, letters = dispatch(stack)
    # then a file broken as a whole is one invalid_config dead letter, and nothing is posted
    if damage:
        assert [letter["reason_code"] for letter in letters] == ["invalid_config"] and receiver.requests == []
        return
    # and otherwise every webhook is settled exactly once: posted (delivered, retrying, dead) or refused
    assert report["already_delivered"] == 0
    settled = [d["webhook_id"] for d in report["deliveries"]]
    refused = [letter["webhook"]["id"] for letter in letters if letter["reason_code"] == "invalid_webhook"]
    assert sorted(settled + refused) == [f"h{i}" for i in range(len(specs))]
    assert len(receiver.requests) == report["delivered"]
    for letter in letters:  # reasons never quote what a secret could hide in
        assert "SSMCANARY" not in json.dumps(letter) and "Bearer" not in json.dumps(letter)
    for got in receiver.requests:  # and every body that went out is strict JSON
        json.loads(got.body, parse_constant=lambda c: pytest.fail(f"non-finite {c} in a body"))


@pytest.mark.parametrize("damage", EVENT_DAMAGE[1:])
def test_a_hostile_event_is_dead_lettered_naming_the_problem_and_nothing_is_posted(
    hostile_stack: tuple[Stack, Receiver], damage: Callable[[dict[str, Any]], str]
) -> None:
    stack, receiver = hostile_stack
    receiver.requests.clear()
    stack.put_config("variant-calling", render_config([(GOOD, None, None, None)], receiver.url, ""))
    report, letters = dispatch(stack, damage(json.loads(sns_event("rule-failed")["Records"][0]["Sns"]["Message"])))
    (letter,) = letters
    assert letter["reason_code"] == "invalid_event" and letter["raw_message"] and receiver.requests == []
    assert report["dead_lettered"] == 1


def test_a_clean_event_and_config_are_delivered(hostile_stack: tuple[Stack, Receiver]) -> None:
    # the control for the two tests above: the same path, nothing hostile, a POST
    stack, receiver = hostile_stack
    receiver.requests.clear()
    stack.put_config("variant-calling", render_config([(GOOD, HEADERS[1], "slack", "1")], receiver.url, ""))
    report, letters = dispatch(stack)
    assert report["delivered"] == 1 and letters == [] and len(receiver.requests) == 1


@pytest.mark.parametrize(
    "body",
    ["{not json", "[" * 10_000 + "]" * 10_000, '{"schema": "oxoflow-notify/retry/v1"}', "null", '{"event": NaN}'],
)
def test_a_hostile_retry_message_is_dead_lettered_not_raised(hostile_stack: tuple[Stack, Receiver], body: str) -> None:
    stack, _ = hostile_stack
    message = {"MessageId": "m-1", "ReceiptHandle": "r", "Body": body, "Attributes": {}}
    result = stack.invoke("RetryFunction", sqs_event([message], stack.physical["RetryQueue"]["Arn"]))
    assert result == {"batchItemFailures": []}
    (letter,) = stack.drain(stack.dead_letter_queue_url)
    assert letter["reason_code"] == "malformed_retry"

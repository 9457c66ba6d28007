"""One POST as prepared (headers, signature, delivery ids) and its classification; no socket.
What a POST meets on the wire (receivers that misbehave on purpose) is in tests/integration/test_delivery_io.py."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oxoflow_notify import USER_AGENT
from oxoflow_notify.config import Webhook
from oxoflow_notify.inbound.events import parse_event
from oxoflow_notify.outbound.delivery import Outcome, delivery_id_for, prepare, uuid5_text
from oxoflow_notify.outbound.failures import Failure
from oxoflow_notify.pipeline.answers import Kind, judge
from tests.conftest import RECEIVED_AT, message

SUCCESS, RETRYABLE, PERMANENT = Kind.DELIVERED, Kind.RETRY, Kind.GIVE_UP


def kind(outcome: Outcome) -> Kind:
    """What an outcome means for a json webhook (answers.judge: the one place that decides)."""
    return judge("json", outcome, 0.0).kind


EVENT = parse_event(json.dumps(message("rule-failed")), message_id="m-1", received_at=RECEIVED_AT)


def hook(url: str, secret: str | None = None, fmt: str = "json") -> Webhook:
    return Webhook(
        id="wh_test", url=url, format=fmt, events=None, secrets=(secret,) if secret else (), source="workflows/wf.oxoflow", position=1
    )


def test_headers_and_signature_match_the_exact_body() -> None:
    prepared = prepare(EVENT, hook("http://127.0.0.1:1/x", secret="s3cret"), "d-1", attempt=3)
    expected = "sha256=" + hmac.new(b"s3cret", prepared.body, hashlib.sha256).hexdigest()
    assert prepared.headers == {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-OxoFlow-Event": "RuleFailed",
        "X-OxoFlow-Delivery": "d-1",
        "X-OxoFlow-Attempt": "3",
        "X-Hub-Signature-256": expected,
    }


def test_no_secret_no_signature_header() -> None:
    assert "X-Hub-Signature-256" not in prepare(EVENT, hook("http://127.0.0.1:1/x"), "d", 1).headers


def test_delivery_ids_are_deterministic_and_distinct_per_webhook() -> None:
    other = dataclasses.replace(EVENT, id="e2")
    assert delivery_id_for(EVENT, "k", "a") == delivery_id_for(EVENT, "k", "a")
    assert len({delivery_id_for(EVENT, "k", "a"), delivery_id_for(EVENT, "k", "b"), delivery_id_for(other, "k", "a")}) == 3


def test_a_different_event_reusing_an_id_gets_its_own_delivery_id_and_a_redelivery_does_not() -> None:
    # given the real event and a fake one published under the same id
    fake = dataclasses.replace(EVENT, event="WorkflowCompleted", message="all good")
    forged = dataclasses.replace(EVENT, timestamp="2020-01-01T00:00:00Z")  # the same fields, a forged timestamp
    redelivered = dataclasses.replace(EVENT)  # the same message received again: SNS keeps its Timestamp
    # then the fakes are deliveries of their own, while a redelivery of the same content is the same delivery
    assert delivery_id_for(fake, "k", "a") != delivery_id_for(EVENT, "k", "a")
    assert delivery_id_for(forged, "k", "a") != delivery_id_for(EVENT, "k", "a")
    assert delivery_id_for(redelivered, "k", "a") == delivery_id_for(EVENT, "k", "a")


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        (200, SUCCESS),
        (204, SUCCESS),
        (301, PERMANENT),
        (400, PERMANENT),
        (404, PERMANENT),
        (410, PERMANENT),
        (408, RETRYABLE),
        (425, RETRYABLE),
        (429, RETRYABLE),
        (500, RETRYABLE),
        (503, RETRYABLE),
        (599, RETRYABLE),
    ],
)
def test_status_classification(status: int, verdict: Kind) -> None:
    assert kind(Outcome(status, None, 1.0)) is verdict


def test_transport_errors_are_retryable() -> None:
    assert kind(Outcome(None, Failure.READ_TIMEOUT, 1.0)) is RETRYABLE


@pytest.mark.parametrize(
    ("said", "kept"),
    [
        ("no such hook", "no such hook"),
        ("no such hook a1B2c3D4e5F6g7H8", "no such hook <redacted>"),
        ("unknown webhook id 1234567890", "unknown webhook id <redacted>"),
        ("POST /hooks/1234567890/a1B2c3D4e5F6g7H8 not found", "POST <redacted> not found"),
        ("invalid token for path", "invalid token for path"),
    ],
)
def test_a_receivers_answer_keeps_plain_words_of_the_url_and_loses_its_secret_parts(said: str, kept: str) -> None:
    # given a webhook whose secret URL's path has plain words ('hooks') and secret parts (an id, a token)
    from oxoflow_notify.outbound.delivery import redact

    prepared = prepare(EVENT, hook("https://host.example/hooks/1234567890/a1B2c3D4e5F6g7H8?token=x"), "d", 1)
    # when its answer is cleaned for a reason, then what the receiver said reads as it was, minus the secret
    assert redact(said, prepared) == kept


@settings(max_examples=300, deadline=None)
@given(name=st.text(alphabet=st.characters(exclude_categories=["Cs"])), namespace=st.uuids())
def test_delivery_ids_are_the_uuid5_of_the_standard_library(name: str, namespace: uuid.UUID) -> None:
    # given any name (any text a delivery id is made of) and namespace
    # when / then: the fast form is exactly uuid5's text (ids must never change across versions)
    assert uuid5_text(namespace, name) == str(uuid.uuid5(namespace, name))


def test_a_delivery_id_is_unchanged_since_it_was_first_defined() -> None:
    # given: an event and webhook whose id was recorded with uuid.uuid5 (ledgers hold such ids)
    event = parse_event(message("rule-failed"), message_id="m-1", received_at=RECEIVED_AT)
    # when / then: the id the version before the fast form made (recorded from it)
    assert delivery_id_for(event, "workflows/w.oxoflow", "slack") == "5869339d-322f-5aaa-8604-23991b3dad4b"

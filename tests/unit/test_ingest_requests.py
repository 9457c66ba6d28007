"""The ingest URL is public: whatever a request holds, the function answers 4xx or 2xx, never an
error; and the stored secret is used only as the operator meant it (rotation as a JSON list)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oxoflow_notify.aws.queues import MemoryQueue
from oxoflow_notify.pipeline.ingest import MAX_BODY, Ingest, IngestSecretError, secrets_from
from tests.unit.test_hostile_input import Sns  # the same fake topic

SECRET = "ingest-secret-of-32-characters-x"
NATIVE = json.dumps({"event": "workflow_completed", "workflow_name": "wf", "timestamp": "2026-05-18T12:00:00Z"})


def sign(body: bytes, secret: str = SECRET) -> str:
    return "hmac-sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def handle(request: Any, stored: str = SECRET) -> tuple[dict[str, Any], Sns]:
    sns = Sns()
    ingest = Ingest("arn:aws:sns:eu-west-1:1:t", lambda: secrets_from("ssm:/ingest", lambda _: stored), lambda: sns, MemoryQueue())
    return ingest.handle(request), sns


def request(body: str, signature: str | None, **extra: Any) -> dict[str, Any]:
    headers = {} if signature is None else {"X-OxoFlow-Signature": signature}
    return {"requestContext": {"http": {"method": "POST"}, "requestId": "r-1"}, "headers": headers, "body": body, **extra}


def test_a_non_ascii_signature_header_is_a_401_not_a_crash() -> None:
    # given an unauthenticated request whose signature header is not ASCII
    # when the ingest function handles it
    answer, sns = handle(request(NATIVE, "hmac-sha256=é" + "0" * 63))
    # then it answers 401 and publishes nothing
    assert answer["statusCode"] == 401 and "does not match" in json.loads(answer["body"])["error"]
    assert sns.published == []


@pytest.mark.parametrize(
    ("req", "status"),
    [
        (None, 400),
        ([1, 2], 400),
        ({"requestContext": "x", "headers": ["a"], "body": NATIVE}, 401),
        ({"requestContext": {"http": {"method": ["GET"]}}}, 405),
        ({**request(NATIVE, sign(NATIVE.encode())), "body": b"bytes"}, 400),
        (request("é not base64", "x", isBase64Encoded=True), 400),
        (request("\ud800", "x"), 400),
        (request("x" * (MAX_BODY + 1), "x"), 413),
        (request("", None), 401),
    ],
    ids=["none", "list", "odd-shapes", "method-not-text", "body-not-text", "base64-non-ascii", "lone-surrogate", "huge", "empty"],
)
def test_malformed_requests_get_a_4xx(req: Any, status: int) -> None:
    answer, sns = handle(req)
    assert answer["statusCode"] == status, answer
    assert sns.published == []


def test_signed_invalid_utf8_is_a_400_naming_the_payload() -> None:
    raw = b'{"event": "workflow_completed", "workflow_name": "\xff"}'
    answer, sns = handle(request(base64.b64encode(raw).decode(), sign(raw), isBase64Encoded=True))
    assert answer["statusCode"] == 400 and "the payload" in json.loads(answer["body"])["error"]
    assert sns.published == []


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
HEADER_NAMES = st.sampled_from(["X-OxoFlow-Signature", "x-oxoflow-signature", "content-type"]) | st.text(max_size=10)


@st.composite
def requests(draw: st.DrawFn) -> Any:
    """Function URL requests, mostly well-formed enough to reach deep, with anything anywhere."""
    if draw(st.integers(0, 9)) == 0:
        return draw(JSON)
    raw = draw(st.sampled_from([NATIVE.encode(), b""]) | st.binary(max_size=64) | JSON.map(lambda v: json.dumps(v).encode()))
    encoded = draw(st.booleans())
    body: Any = base64.b64encode(raw).decode() if encoded else raw.decode("utf-8", "replace")
    signed = raw if encoded else body.encode()
    signature = draw(st.sampled_from([sign(signed), sign(signed).upper(), ""]) | st.text(max_size=80) | JSON)
    headers: Any = draw(st.dictionaries(HEADER_NAMES, st.text(max_size=20) | JSON, max_size=2))
    if isinstance(headers, dict) and draw(st.booleans()):
        headers[draw(st.sampled_from(["X-OxoFlow-Signature", "x-oxoflow-signature"]))] = signature
    method = draw(st.sampled_from(["POST", "GET", "post"]) | JSON)
    context: Any = draw(st.just({"http": {"method": method}, "requestId": "r"}) | JSON)
    out = {"requestContext": context, "headers": draw(st.just(headers) | JSON), "body": draw(st.just(body) | JSON)}
    out["isBase64Encoded"] = draw(st.just(encoded) | JSON)
    return {k: v for k, v in out.items() if draw(st.integers(0, 7)) > 0}


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests())
def test_no_request_crashes_the_ingest_function(req: Any) -> None:
    # given any request at all, when the ingest function handles it
    answer, _ = handle(req)
    # then it answers with a 2xx or a 4xx and a JSON body, and never raises
    assert 200 <= answer["statusCode"] < 300 or 400 <= answer["statusCode"] < 500, answer
    assert isinstance(json.loads(answer["body"]), dict)


# -- rotation: explicit, so a secret can never be split by accident --------------------------------


def test_a_comma_in_the_stored_secret_is_refused_not_split() -> None:
    # given a stored secret that holds a comma (not a rotation list)
    stored = "k3y-long-part-of-the-secret,X"
    # when a body signed with what follows the comma arrives
    answer, sns = handle(request(NATIVE, sign(NATIVE.encode(), "X")), stored=stored)
    # then it is not accepted: 503, the operator must fix the secret; nothing is published
    assert answer["statusCode"] == 503 and "misconfigured" in json.loads(answer["body"])["error"]
    assert sns.published == []
    with pytest.raises(IngestSecretError, match=r'holds a comma: while rotating store a JSON list \["new", "old"\]'):
        secrets_from("ssm:/ingest", lambda _: stored)


def test_rotation_is_a_json_list_of_secrets_each_long_enough() -> None:
    older = "older-ingest-secret-16+"
    # given the stored value ["new", "old"] while rotating, then both verify
    for secret in (SECRET, older):
        answer, sns = handle(request(NATIVE, sign(NATIVE.encode(), secret)), stored=json.dumps([SECRET, older]))
        assert answer["statusCode"] == 202 and len(sns.published) == 1
    # and a list holding a short or non-text part is refused without quoting the secret
    for stored in (json.dumps([SECRET, "X"]), json.dumps([SECRET, 3]), "[not json", "[]", "short"):
        with pytest.raises(IngestSecretError) as caught:
            secrets_from("ssm:/ingest", lambda _, s=stored: s)  # type: ignore[misc]
        assert SECRET not in str(caught.value)
    assert secrets_from("ssm:/ingest", lambda _: SECRET + "\n") == (SECRET,)  # a trailing newline is not part of it


def test_an_alarm_watches_the_ingest_functions_errors() -> None:
    # given the template, then one alarm on the ingest function's Errors tells the alarm topic
    from oxolocal import template as tpl

    resources = tpl.load()["Resources"]
    alarm = resources["IngestErrorsAlarm"]
    props = alarm["Properties"]
    assert alarm["Type"] == "AWS::CloudWatch::Alarm" and alarm.get("Condition") == resources["IngestFunction"].get("Condition")
    assert (props["Namespace"], props["MetricName"], props["Threshold"]) == ("AWS/Lambda", "Errors", 0)
    assert props["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": "IngestFunction"}}]
    assert props["AlarmActions"] == [{"Ref": "AlarmTopic"}]

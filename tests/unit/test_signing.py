"""Both signature schemes against the shared known-answer vectors and an independent verifier."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from standardwebhooks import Webhook as StandardWebhook

from oxoflow_notify.config import Webhook
from oxoflow_notify.config.webhook_values import check_whsec
from oxoflow_notify.inbound.events import parse_event
from oxoflow_notify.outbound.delivery import prepare
from oxoflow_notify.outbound.signing import hub_signature, standard_headers, standard_signature
from oxoflow_notify.outbound.verify import verify_hub, verify_standard
from tests.conftest import RECEIVED_AT, message

NEW = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OLD = "whsec_" + "b2xkLXNlY3JldC1vbGQtc2VjcmV0LW9sZC1zZWNyZXQ="


def test_every_hub_vector_is_reproduced(vectors: dict[str, Any]) -> None:
    cases = vectors["x_hub_signature_256"]["cases"]
    assert cases, "the shared vector file has no X-Hub-Signature-256 cases"
    for case in cases:
        assert hub_signature(case["secret"], case["body"].encode("utf-8")) == case["expected"]


def test_every_standard_webhooks_vector_is_reproduced(vectors: dict[str, Any]) -> None:
    cases = vectors["standard_webhooks"]["cases"]
    assert cases
    for case in cases:
        got = standard_signature(case["secret"], case["id"], int(case["timestamp"]), case["body"].encode())
        assert got == case["expected"]


def test_verify_hub_accepts_the_vectors_and_rejects_changes(vectors: dict[str, Any]) -> None:
    for case in vectors["x_hub_signature_256"]["cases"]:
        body = case["body"].encode("utf-8")
        assert verify_hub(case["secret"], body, case["expected"])
        assert not verify_hub(case["secret"], body + b" ", case["expected"])
        assert not verify_hub(case["secret"] + "x", body, case["expected"])


@pytest.mark.parametrize("header", [None, "", "sha1=abc", "sha256=" + "0" * 64])
def test_verify_hub_rejects_missing_or_wrong_headers(header: str | None) -> None:
    assert not verify_hub("s", b"body", header)


def test_verify_standard_accepts_the_vectors_within_the_tolerance_only(vectors: dict[str, Any]) -> None:
    for case in vectors["standard_webhooks"]["cases"]:
        headers = {"webhook-id": case["id"], "webhook-timestamp": case["timestamp"], "webhook-signature": case["expected"]}
        at = float(case["timestamp"])
        assert verify_standard(case["secret"], headers, case["body"].encode(), now=at + 299)
        assert not verify_standard(case["secret"], headers, case["body"].encode(), now=at + 301)  # replayed later
        assert not verify_standard(case["secret"], headers, case["body"].encode() + b" ", now=at)
        assert not verify_standard(case["secret"], {**headers, "webhook-id": "other"}, case["body"].encode(), now=at)


def test_rotation_signs_with_every_secret_and_either_verifies() -> None:
    headers = standard_headers([NEW, OLD], "dlv-1", 1_700_000_000, b"{}")
    assert len(headers["webhook-signature"].split(" ")) == 2
    assert verify_standard(NEW, headers, b"{}", now=1_700_000_000)
    assert verify_standard([OLD], headers, b"{}", now=1_700_000_000)
    assert not verify_standard("whsec_" + "c29tZW9uZS1lbHNlcy1zZWNyZXQtMTIzNDU2Nzg=", headers, b"{}", now=1_700_000_000)


def test_our_deliveries_verify_with_the_standardwebhooks_package() -> None:
    # given a webhook rotating from OLD to NEW, and an event
    webhook = Webhook("wh", "https://x.example.org/h", "json", None, (NEW, OLD), "s", 1)
    event = parse_event(json.dumps(message("rule-failed")), message_id="m-1", received_at=RECEIVED_AT)
    now = datetime.now(UTC).timestamp()
    # when prepared
    prepared = prepare(event, webhook, "3f2a9c1e-delivery", attempt=2, now=now)
    # then the independent verifier accepts it with either secret, and the hub header uses the newest
    for secret in (NEW, OLD):
        payload = StandardWebhook(secret).verify(prepared.body, prepared.headers)
        assert payload["event"] == "RuleFailed"
    assert prepared.headers["webhook-id"] == "3f2a9c1e-delivery"
    assert prepared.headers["X-Hub-Signature-256"] == hub_signature(NEW, prepared.body)


def test_a_plain_secret_gets_only_the_hub_header() -> None:
    webhook = Webhook("wh", "https://x.example.org/h", "json", None, ("plain",), "s", 1)
    event = parse_event(json.dumps(message("rule-failed")), message_id="m", received_at=RECEIVED_AT)
    headers = prepare(event, webhook, "d", 1).headers
    assert "X-Hub-Signature-256" in headers and "webhook-signature" not in headers


@pytest.mark.parametrize("strip", [1, 2])
def test_an_unpadded_whsec_secret_is_accepted_and_signs_as_the_reference_library_reads_it(strip: int) -> None:
    # given a whsec_ secret whose base64 has its padding removed (the reference libraries pad it back)
    padded = "whsec_" + base64.b64encode(bytes(range(33 - strip))).decode()  # 32 bytes: one "=", 31: two
    assert padded.endswith("=" * strip), "the fixture must carry the padding it strips"
    unpadded = padded.rstrip("=")
    # when it is checked as a config value and used to sign a delivery
    problem = check_whsec(unpadded)
    webhook = Webhook("wh", "https://x.example.org/h", "json", None, (unpadded,), "s", 1)
    event = parse_event(json.dumps(message("rule-failed")), message_id="m-1", received_at=RECEIVED_AT)
    prepared = prepare(event, webhook, "d-unpadded", attempt=1, now=datetime.now(UTC).timestamp())
    # then it is valid, and the standardwebhooks package verifies the signature with the secret as written
    assert problem is None
    assert StandardWebhook(unpadded).verify(prepared.body, prepared.headers)["event"] == "RuleFailed"
    assert standard_signature(unpadded, "x", 1, b"{}") == standard_signature(padded, "x", 1, b"{}")


def test_a_whsec_secret_that_is_not_base64_is_still_refused() -> None:
    # given base64 with a character it cannot hold, and a length no padding can complete
    # then both are refused, without quoting the value
    assert check_whsec("whsec_abc$defghijklmnopqrstuvwxyz012345") == "is not whsec_ followed by base64"
    assert check_whsec("whsec_" + "A" * 33) == "is not whsec_ followed by base64"

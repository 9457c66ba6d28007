"""One POST and its classification, against real loopback receivers that misbehave on purpose."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import socket
import time
from collections.abc import Callable

import pytest

from oxoflow_notify import USER_AGENT
from oxoflow_notify.answers import Kind, judge
from oxoflow_notify.config import Webhook
from oxoflow_notify.delivery import HttpSender, Outcome, delivery_id_for, prepare
from oxoflow_notify.events import parse_event
from oxolocal.receivers import Answer, Received, Receiver, always, ok, rate_limit, reset, stall
from tests.conftest import RECEIVED_AT, local_guard, message

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


def test_custom_headers_are_sent_and_cannot_displace_ours(receivers: Callable[..., Receiver]) -> None:
    receiver = receivers(ok())
    webhook = Webhook("wh", receiver.url, "json", None, ("k",), "s", 1, headers=(("Authorization", "Bearer t0k"), ("X-Team", "g")))
    HttpSender(guard=local_guard()).send(prepare(EVENT, webhook, "d", 1))
    (got,) = receiver.requests
    assert got.header("Authorization") == "Bearer t0k" and got.header("X-Team") == "g"
    assert got.header("Content-Type") == "application/json"
    assert (got.header("X-Hub-Signature-256") or "").startswith("sha256=")


def test_a_webhook_timeout_overrides_the_read_timeout(receivers: Callable[..., Receiver]) -> None:
    webhook = Webhook("wh", receivers(stall(3)).url, "json", None, (), "s", 1, timeout=0.5)
    started = time.monotonic()
    outcome = HttpSender(read_timeout=10, guard=local_guard()).send(prepare(EVENT, webhook, "d", 1))
    assert outcome.error == "read_timeout" and time.monotonic() - started < 2


def test_no_secret_no_signature_header() -> None:
    assert "X-Hub-Signature-256" not in prepare(EVENT, hook("http://127.0.0.1:1/x"), "d", 1).headers


def test_delivery_ids_are_deterministic_and_distinct_per_webhook() -> None:
    other = dataclasses.replace(EVENT, id="e2")
    assert delivery_id_for(EVENT, "k", "a") == delivery_id_for(EVENT, "k", "a")
    assert len({delivery_id_for(EVENT, "k", "a"), delivery_id_for(EVENT, "k", "b"), delivery_id_for(other, "k", "a")}) == 3


def test_a_different_event_reusing_an_id_gets_its_own_delivery_id_and_a_redelivery_does_not() -> None:
    # given the real event and a fake one published under the same id
    fake = dataclasses.replace(EVENT, event="WorkflowCompleted", message="all good")
    redelivered = dataclasses.replace(EVENT, timestamp="2026-05-18T12:00:09Z")  # the same message, received again
    # then the fake is a delivery of its own, while a redelivery of the same content is the same delivery
    assert delivery_id_for(fake, "k", "a") != delivery_id_for(EVENT, "k", "a")
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
    assert kind(Outcome(None, "read_timeout", 1.0)) is RETRYABLE


def send(url: str, secret: str | None = None, read_timeout: float = 5.0) -> Outcome:
    sender = HttpSender(connect_timeout=1.0, read_timeout=read_timeout, guard=local_guard())
    return sender.send(prepare(EVENT, hook(url, secret), "d-1", 1))


def test_a_2xx_receiver_gets_the_exact_signed_bytes(receivers: Callable[..., Receiver]) -> None:
    receiver = receivers(ok(204, b""))
    outcome = send(receiver.url, secret="k")
    assert outcome.status == 204 and kind(outcome) is SUCCESS
    (got,) = receiver.requests
    assert got.method == "POST" and json.loads(got.body) == EVENT.to_payload()
    assert got.header("X-Hub-Signature-256") == "sha256=" + hmac.new(b"k", got.body, hashlib.sha256).hexdigest()


def test_404_is_permanent_and_429_carries_retry_after(receivers: Callable[..., Receiver]) -> None:
    assert kind(send(receivers(always(404)).url)) is PERMANENT
    limited = send(receivers(rate_limit(1, "7")).url)
    assert (limited.status, kind(limited), limited.retry_after) == (429, RETRYABLE, "7")


def test_redirects_are_not_followed(receivers: Callable[..., Receiver]) -> None:
    target = receivers(ok())
    redirect = receivers(lambda n, r: Answer(302, b"", {"Location": target.url}))
    outcome = send(redirect.url)
    assert outcome.status == 302 and kind(outcome) is PERMANENT
    assert target.requests == []


def test_a_stalled_receiver_times_out(receivers: Callable[..., Receiver]) -> None:
    started = time.monotonic()
    outcome = send(receivers(stall(3)).url, read_timeout=0.3)
    assert outcome.error == "read_timeout" and kind(outcome) is RETRYABLE
    assert time.monotonic() - started < 2.5


def test_a_connection_reset_is_named(receivers: Callable[..., Receiver]) -> None:
    outcome = send(receivers(reset()).url)
    assert outcome.error == "connection_reset" and kind(outcome) is RETRYABLE


def test_a_huge_answer_is_read_only_up_to_the_limit(receivers: Callable[..., Receiver]) -> None:
    receiver = receivers(lambda n, r: Answer(500, b"x" * 5_000_000))
    outcome = send(receiver.url)
    assert outcome.status == 500 and len(outcome.snippet) == 512
    assert send(receiver.url).status == 500  # the pool recovers from the dropped connection


def test_a_refused_connection_is_named() -> None:
    with socket.socket() as sock:  # a port that was free a moment ago and has no listener
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    outcome = send(f"https://localhost:{port}/hook")
    assert outcome.error == "connection_refused"


def test_a_dns_failure_is_named() -> None:
    assert send("https://no-such-host.invalid/hook").error == "dns_failure"


def test_send_all_posts_concurrently(receivers: Callable[..., Receiver]) -> None:
    def slow_answer(n: int, r: object) -> Answer:
        time.sleep(0.3)
        return Answer()

    slow = [receivers(slow_answer, f"slow{i}") for i in range(8)]
    sender = HttpSender(max_concurrency=8, guard=local_guard())
    started = time.monotonic()
    outcomes = sender.send_all([prepare(EVENT, hook(r.url), f"d{i}", 1) for i, r in enumerate(slow)])
    elapsed = time.monotonic() - started
    assert [kind(o) for o in outcomes] == [SUCCESS] * 8
    assert elapsed < 8 * 0.3 * 0.75, f"8 x 300 ms receivers took {elapsed:.2f} s: not concurrent"


def test_an_answer_that_echoes_secrets_is_cleaned_before_it_can_reach_a_reason(receivers: Callable[..., Receiver]) -> None:
    # given a receiver that answers 500 and echoes back everything it got: headers, path and query
    def echo(n: int, r: Received) -> Answer:
        return Answer(500, (r.path + " " + " ".join(f"{k}={v}" for k, v in r.headers.items())).encode())

    receiver = receivers(echo)
    url = receiver.url + "/T0/B0/PATHCANARY?token=QUERYCANARY"
    webhook = Webhook("wh", url, "json", None, ("SECRETCANARY",), "s", 1, headers=(("Authorization", "Bearer HEADERCANARY"),))
    # when a delivery is posted to it
    outcome = HttpSender(guard=local_guard()).send(prepare(EVENT, webhook, "d", 1))
    # then the snippet that may enter a retry reason or a dead letter keeps none of them
    assert outcome.status == 500 and "<redacted>" in outcome.snippet
    for canary in ("PATHCANARY", "QUERYCANARY", "HEADERCANARY", "sha256="):
        assert canary not in outcome.snippet, canary

"""One POST against real loopback receivers that misbehave on purpose: what it sends, how each failure
is named, and what of an answer may reach a reason. (What needs no socket is in tests/unit/test_delivery.py.)"""

from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import json
import socket
from collections.abc import Callable

import pytest

from oxoflow_notify.config import Webhook
from oxoflow_notify.defaults import DEFAULTS
from oxoflow_notify.outbound.delivery import HttpSender, Outcome, prepare
from oxolocal.receivers import Answer, Received, Receiver, always, ok, rate_limit, reset, stall
from tests.conftest import in_flight_counter, local_guard
from tests.unit.test_delivery import EVENT, PERMANENT, RETRYABLE, SUCCESS, hook, kind


def test_custom_headers_are_sent_and_cannot_displace_ours(receivers: Callable[..., Receiver]) -> None:
    receiver = receivers(ok())
    webhook = Webhook("wh", receiver.url, "json", None, ("k",), "s", 1, headers=(("Authorization", "Bearer t0k"), ("X-Team", "g")))
    HttpSender(guard=local_guard()).send(prepare(EVENT, webhook, "d", 1))
    (got,) = receiver.requests
    assert got.header("Authorization") == "Bearer t0k" and got.header("X-Team") == "g"
    assert got.header("Content-Type") == "application/json"
    assert (got.header("X-Hub-Signature-256") or "").startswith("sha256=")


def test_a_webhook_timeout_overrides_the_read_timeout(receivers: Callable[..., Receiver]) -> None:
    # given a receiver that holds the request 3 s and then hangs up without answering, and a sender
    # whose own read timeout (10 s) would outlast it
    webhook = Webhook("wh", receivers(stall(3)).url, "json", None, (), "s", 1, timeout=0.5)
    outcome = HttpSender(read_timeout=10, guard=local_guard()).send(prepare(EVENT, webhook, "d", 1))
    # then the webhook's 0.5 s applied: under the sender's 10 s the hang-up would end it as connection_reset
    assert outcome.error == "read_timeout"


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
    # a receiver that holds the request 3 s and hangs up: past 0.3 s it is a read timeout (had the
    # timeout not applied, the hang-up would end the POST as connection_reset)
    outcome = send(receivers(stall(3)).url, read_timeout=0.3)
    assert outcome.error == "read_timeout" and kind(outcome) is RETRYABLE


def test_a_connection_reset_is_named(receivers: Callable[..., Receiver]) -> None:
    outcome = send(receivers(reset()).url)
    assert outcome.error == "connection_reset" and kind(outcome) is RETRYABLE


def test_a_huge_answer_is_read_only_up_to_the_limit(receivers: Callable[..., Receiver]) -> None:
    receiver = receivers(lambda n, r: Answer(500, b"x" * 5_000_000))
    outcome = send(receiver.url)
    assert outcome.status == 500 and len(outcome.snippet) == 512
    assert send(receiver.url).status == 500  # the pool recovers from the dropped connection


def test_a_small_gzip_answer_that_inflates_past_the_limit_is_read_only_up_to_it(receivers: Callable[..., Receiver]) -> None:
    # given a receiver whose 500 answer is 5 KB on the wire, announced by Content-Length, and 5 MB inflated
    bomb = gzip.compress(b"y" * 5_000_000)
    receiver = receivers(lambda n, r: Answer(500, bomb, {"Content-Encoding": "gzip"}))
    # when a delivery is posted
    sender = HttpSender(connect_timeout=1.0, read_timeout=5.0, guard=local_guard())
    outcome = sender.send(prepare(EVENT, hook(receiver.url), "d-1", 1))
    raw = sender.call(prepare(EVENT, hook(receiver.url), "d-1", 1))[1]
    # then no more than the limit was inflated, and the snippet is the bounded start
    assert len(bomb) < 65_536 and outcome.status == 500 and len(outcome.snippet) == 512
    assert len(raw) <= DEFAULTS.response_limit


def test_a_short_announced_answer_is_read_whole_and_its_connection_kept(receivers: Callable[..., Receiver]) -> None:
    # given a receiver answering a short body with its Content-Length
    receiver = receivers(lambda n, r: Answer(400, b'{"error":"bad channel"}'))
    sender = HttpSender(connect_timeout=1.0, read_timeout=5.0, guard=local_guard())
    # when three deliveries are posted one after another
    answers = [sender.call(prepare(EVENT, hook(receiver.url), f"d-{i}", 1)) for i in range(3)]
    # then each answer is read whole, and all three rode one kept-alive connection
    assert [raw for _, raw in answers] == [b'{"error":"bad channel"}'] * 3
    assert all(o.status == 400 and "bad channel" in o.snippet for o, _ in answers)
    assert receiver.connections == 1


def test_a_refused_connection_is_named() -> None:
    with socket.socket() as sock:  # a port that was free a moment ago and has no listener
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    outcome = send(f"https://localhost:{port}/hook")
    assert outcome.error == "connection_refused"


def test_a_dns_failure_is_named() -> None:
    assert send("https://no-such-host.invalid/hook").error == "dns_failure"


def test_send_all_posts_concurrently(receivers: Callable[..., Receiver]) -> None:
    # given eight receivers that each hold their request for a second, counting how many are held at once
    holding, seen = in_flight_counter()
    slow = [receivers(holding(1.0), f"slow{i}") for i in range(8)]
    # when one send_all posts to all of them
    sender = HttpSender(max_concurrency=8, guard=local_guard())
    outcomes = sender.send_all([prepare(EVENT, hook(r.url), f"d{i}", 1) for i, r in enumerate(slow)])
    # then all eight were in flight together, and every one was delivered
    assert [kind(o) for o in outcomes] == [SUCCESS] * 8
    assert seen["most"] == 8, f"at most {seen['most']} of 8 POSTs were in flight at once: not concurrent"


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


@pytest.mark.parametrize(
    "echo",
    [
        "invalid token QUERYCANARY",  # a query value alone
        "unknown hook PATHCANARY",  # a path segment alone
        "key HEADERCANARY revoked",  # a bearer token without 'Bearer'
        "bad headercanary",  # another case
        '{"url": "https:\\/\\/localhost\\/T0\\/B0\\/PATHCANARY"}',  # JSON-escaped
        "got %2FT0%2FB0%2FPATHCANARY",  # percent-encoded
        "auth " + base64.b64encode(b"Bearer HEADERCANARY").decode(),  # base64
        "secret SECRETCANARY",
    ],
)
def test_every_echoed_form_of_a_secret_is_redacted(receivers: Callable[..., Receiver], echo: str) -> None:
    receiver = receivers(lambda n, r: Answer(400, echo.encode()))
    url = receiver.url + "/T0/B0/PATHCANARY?token=QUERYCANARY"
    webhook = Webhook("wh", url, "json", None, ("SECRETCANARY",), "s", 1, headers=(("Authorization", "Bearer HEADERCANARY"),))
    snippet = HttpSender(guard=local_guard()).send(prepare(EVENT, webhook, "d", 1)).snippet
    assert "<redacted>" in snippet
    for canary in ("PATHCANARY", "QUERYCANARY", "HEADERCANARY", "SECRETCANARY", "QkVhcmVy"):
        assert canary.lower() not in snippet.lower(), snippet

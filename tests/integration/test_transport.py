"""Receivers as they really are: HTTPS on a hostname, reused connections, IPv6, bad certificates,
receivers that drip. Each test checks what the receiver saw (SNI, Host, the verified signature)."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import socket
import ssl
import threading
from collections.abc import Callable
from typing import Any

import pytest

from oxoflow_notify.config import Webhook
from oxoflow_notify.inbound.events import parse_event
from oxoflow_notify.outbound.delivery import HttpSender, prepare
from oxoflow_notify.outbound.guard import TargetGuard
from oxoflow_notify.outbound.transport import tls_context
from oxoflow_notify.pipeline.answers import Kind, judge
from oxolocal.receivers import Answer, Receiver, drip, expired_cert, local_ca, ok, untrusted_cert, verify_hub, wrong_name_cert
from tests.conftest import RECEIVED_AT, local_guard, message

EVENT = parse_event(json.dumps(message("rule-failed")), message_id="m-1", received_at=RECEIVED_AT)


def hook(url: str, secret: str | None = None, timeout: float | None = None) -> Webhook:
    return Webhook("wh", url, "json", None, (secret,) if secret else (), "workflows/wf.oxoflow", 1, timeout=timeout)


def post(sender: HttpSender, url: str, secret: str | None = None, timeout: float | None = None) -> Any:
    return sender.send(prepare(EVENT, hook(url, secret, timeout), "d-1", 1))


def test_https_to_a_hostname_verifies_the_certificate_sends_sni_and_keeps_host_on_reuse(receivers: Callable[..., Receiver]) -> None:
    # given a TLS receiver for localhost that checks the signature the way a receiver would
    receiver = receivers(verify_hub("k"))
    sender = HttpSender(guard=local_guard())
    # when two deliveries go to it, the second on the kept-alive connection
    first, second = post(sender, receiver.url, "k"), post(sender, receiver.url, "k")
    # then both were verified, over one handshake that named localhost, each request with its Host
    assert (first.status, second.status) == (200, 200) and judge("json", first, 0).kind is Kind.DELIVERED
    assert [r.answered for r in receiver.requests] == [200, 200]
    assert receiver.handshakes == ["localhost"] and receiver.connections == 1
    assert [r.header("Host") for r in receiver.requests] == [f"localhost:{receiver.port}"] * 2
    body = receiver.requests[0].body
    assert receiver.requests[0].header("X-Hub-Signature-256") == "sha256=" + hmac.new(b"k", body, hashlib.sha256).hexdigest()


def test_plain_http_keeps_the_hostname_in_host_on_a_reused_connection(receivers: Callable[..., Receiver]) -> None:
    receiver = receivers(ok(), tls=False)
    sender = HttpSender(guard=local_guard(require_https=False))
    post(sender, receiver.url), post(sender, receiver.url)
    assert receiver.connections == 1
    assert [r.header("Host") for r in receiver.requests] == [f"localhost:{receiver.port}"] * 2


@pytest.mark.parametrize("tls", [True, False])
def test_ipv6_receivers_get_the_bracketed_literal_as_host(receivers: Callable[..., Receiver], tls: bool) -> None:
    receiver = receivers(ok(), ipv6=True, tls=tls)
    sender = HttpSender(guard=local_guard(require_https=tls))
    assert post(sender, receiver.url).status == 200 and post(sender, receiver.url).status == 200
    assert [r.header("Host") for r in receiver.requests] == [f"[::1]:{receiver.port}"] * 2
    assert receiver.connections == 1


@pytest.mark.parametrize(
    ("certificate", "error", "words"),
    [
        (wrong_name_cert, "tls_wrong_name", "for another name"),
        (untrusted_cert, "tls_untrusted", "untrusted issuer"),
        (expired_cert, "tls_expired", "expired"),
    ],
)
def test_a_bad_certificate_is_refused_with_a_reason_that_names_which(
    receivers: Callable[..., Receiver], certificate: Callable[[], Any], error: str, words: str
) -> None:
    receiver = receivers(ok(), certificate=certificate())
    outcome = post(HttpSender(guard=local_guard()), receiver.url)
    assert (outcome.error, judge("json", outcome, 0).kind) == (error, Kind.RETRY)
    assert words in outcome.describe()
    assert receiver.requests == []  # nothing was sent over a connection we could not trust


def test_the_rebinding_guard_pins_the_address_while_tls_keeps_the_name(
    monkeypatch: pytest.MonkeyPatch, receivers: Callable[..., Receiver]
) -> None:
    # given a name whose first answer is allowed and whose later answers would point elsewhere,
    # and a receiver with a certificate for that name
    receiver = receivers(ok(), certificate=local_ca().ca.issue_cert("rebind.test"))
    real = socket.getaddrinfo
    lookups: list[str] = []

    def resolver(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "rebind.test":
            lookups.append(host)
            target = "127.0.0.1" if len(lookups) == 1 else "10.9.9.9"
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (target, receiver.port))]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    sender = HttpSender(guard=local_guard())
    # when it is posted to twice
    first = post(sender, f"https://rebind.test:{receiver.port}/hook")
    second = post(sender, f"https://rebind.test:{receiver.port}/hook")
    # then one lookup was made, the vetted address was dialled, and TLS and Host kept the name
    assert (first.status, second.status) == (200, 200) and lookups == ["rebind.test"]
    assert receiver.handshakes == ["rebind.test"]
    assert [r.header("Host") for r in receiver.requests] == [f"rebind.test:{receiver.port}"] * 2


def test_a_receiver_that_drips_its_answer_is_cut_off_at_the_deadline(receivers: Callable[..., Receiver]) -> None:
    # given a receiver whose every byte comes well within the read timeout, but whose answer would
    # take 20 s in all (a byte every 0.5 s)
    receiver = receivers(drip(0.5))
    sender = HttpSender(connect_timeout=0.5, guard=local_guard())
    # when a webhook with a 1 s timeout is posted to it
    outcome = post(sender, receiver.url, timeout=1)
    # then the delivery's total deadline (connect + timeout) ended it, not a 200 twenty seconds on
    assert (outcome.status, outcome.error, judge("json", outcome, 0).kind) == (None, "deadline_exceeded", Kind.RETRY)
    assert "deadline" in outcome.describe()


@pytest.mark.parametrize("host", ["hooks..example.com", "a" * 64 + ".example.com"])
def test_an_invalid_hostname_is_a_permanent_failure_not_an_exception(host: str) -> None:
    outcome = post(HttpSender(guard=TargetGuard()), f"https://{host}/hook")
    assert (outcome.error, judge("json", outcome, 0).kind) == ("invalid_host", Kind.GIVE_UP)


def test_a_header_http_cannot_carry_is_a_permanent_failure_not_an_exception(receivers: Callable[..., Receiver]) -> None:
    # config validation refuses these first; the sender still never raises if one gets through
    receiver = receivers(ok())
    webhook = Webhook("wh", receiver.url, "json", None, (), "s", 1, headers=(("X-Price", "5 €"),))
    outcome = HttpSender(guard=local_guard()).send(prepare(EVENT, webhook, "d", 1))
    assert (outcome.error, judge("json", outcome, 0).kind) == ("invalid_request", Kind.GIVE_UP)
    assert receiver.requests == []


def test_without_ssl_cert_file_the_local_ca_is_not_trusted(monkeypatch: pytest.MonkeyPatch, receivers: Callable[..., Receiver]) -> None:
    # the production default: only the platform's CAs. The test CA is trusted only because the
    # tests add it through SSL_CERT_FILE, as a private-CA user would.
    receiver = receivers(ok())
    monkeypatch.delenv("SSL_CERT_FILE")
    outcome = post(HttpSender(guard=local_guard()), receiver.url)
    assert outcome.error == "tls_untrusted"


def test_ssl_cert_file_adds_a_ca_to_the_platform_ones_and_verification_is_always_on() -> None:
    context = tls_context()
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    trusted = context.get_ca_certs(binary_form=True)
    with open(os.environ["SSL_CERT_FILE"], encoding="ascii") as pem:
        assert ssl.PEM_cert_to_DER_cert(pem.read()) in trusted
    platform = ssl.get_default_verify_paths().openssl_cafile
    if platform and os.path.isfile(platform):
        assert len(trusted) > 1, "SSL_CERT_FILE replaced the platform's CAs instead of adding to them"


def test_interim_answers_are_read_past_and_never_taken_for_the_next_requests_answer(receivers: Callable[..., Receiver]) -> None:
    # given a receiver that answers the first POST with 102 and 103 before its final 200, and the
    # second, on the same kept-alive connection, with 500
    receiver = receivers(lambda n, r: Answer(200, b"first", interim=(102, 103), delay=0.2) if n == 0 else Answer(500, b"second"))
    sender = HttpSender(guard=local_guard())
    # when two deliveries are posted one after the other
    first, second = post(sender, receiver.url), post(sender, receiver.url)
    # then each got its own final answer
    assert (first.status, first.snippet) == (200, "first")
    assert (second.status, second.snippet) == (500, "second")


def test_a_dns_lookup_counts_against_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    # given a name whose lookup takes 3 s (the receiver's DNS server decides that, not us)
    real = socket.getaddrinfo

    def slow(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "slow-dns.test":
            threading.Event().wait(3)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", slow)
    # when a webhook with a 0.5 s timeout is posted to it
    outcome = post(HttpSender(connect_timeout=0.5, guard=local_guard()), "https://slow-dns.test/hook", timeout=0.5)
    # then the delivery's deadline ended the lookup
    assert outcome.error == "deadline_exceeded"

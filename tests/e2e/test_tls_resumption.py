"""A receiver that closes idle connections costs a TLS session resumption, not a full handshake.

The dispatcher keeps the last TLS session per (host, port, SNI) and offers it when it connects
again to the same receiver: a receiver that issues tickets resumes it; one that refuses tickets
gets a full handshake and its deliveries go through as before (issue #21, point 9).
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Callable
from typing import Any

import pytest

from oxoflow_notify.outbound.transport import TlsSessions, sessions_of
from oxolocal.receivers import Answer, Behaviour, Receiver
from oxolocal.stack import Stack, sns_event


def closing() -> Behaviour:
    """Answers 200 and closes the connection, as a receiver closing idle keep-alives does."""
    return lambda n, r: Answer(200, b"ok", {"Connection": "close"})


def hooks(url: str) -> str:
    return f'[workflow]\nname = "variant-calling"\n\n[[webhooks]]\nid = "h0"\nurl = "{url}"\n'


def deliver(stack: Stack, n: int) -> dict[str, Any]:
    stack.publish({"event": "WorkflowStarted", "workflow": "variant-calling", "run_id": f"run-{n}"})
    (body,) = [m["Body"] for m in stack.receive(stack.tap_url)]
    result: dict[str, Any] = stack.invoke("DispatchFunction", sns_event(json.loads(body)))
    return result


def sessions(stack: Stack) -> TlsSessions:
    """The dispatcher's TLS sessions and counters (resumed, full handshakes)."""
    return sessions_of(stack.modules["DispatchFunction"].notifier.sender.pool.pool_classes_by_scheme)


def test_a_reconnect_to_a_receiver_that_issues_tickets_resumes_the_tls_session(stack: Stack, receivers: Callable[..., Receiver]) -> None:
    # given an HTTPS receiver that closes each connection after answering, and issues session tickets
    hook = receivers(closing())
    stack.put_config("variant-calling", hooks(hook.url))
    # when the dispatcher delivers two events to it, one connection each
    first, second = deliver(stack, 1), deliver(stack, 2)
    # then both arrived, each over its own connection and handshake naming localhost
    assert first["delivered"] == second["delivered"] == 1
    assert [r.answered for r in hook.requests] == [200, 200]
    assert hook.connections == 2 and hook.handshakes == ["localhost", "localhost"]
    # and the second handshake resumed the first one's session: the receiver saw it, the dispatcher counted it
    assert hook.resumed == 1
    assert (sessions(stack).full, sessions(stack).resumed) == (1, 1)


def test_a_receiver_that_refuses_tickets_gets_full_handshakes_and_every_delivery(stack: Stack, receivers: Callable[..., Receiver]) -> None:
    # given an HTTPS receiver that closes each connection and issues no session tickets
    hook = receivers(closing(), tickets=False)
    stack.put_config("variant-calling", hooks(hook.url))
    # when the dispatcher delivers two events to it
    first, second = deliver(stack, 1), deliver(stack, 2)
    # then both arrived, over two full handshakes
    assert first["delivered"] == second["delivered"] == 1
    assert [r.answered for r in hook.requests] == [200, 200] and hook.handshakes == ["localhost", "localhost"]
    assert hook.resumed == 0
    assert (sessions(stack).full, sessions(stack).resumed) == (2, 0)


def test_a_session_is_never_offered_to_another_receiver(stack: Stack, receivers: Callable[..., Receiver]) -> None:
    # given two HTTPS receivers on the same host name, each closing its connections
    one, other = receivers(closing(), "one"), receivers(closing(), "other")
    # when the dispatcher delivers to the first, then to the second
    stack.put_config("variant-calling", hooks(one.url))
    deliver(stack, 1)
    stack.put_config("variant-calling", hooks(other.url))
    deliver(stack, 2)
    # then each got its delivery over a full handshake, and each session is kept for its own receiver only
    assert (len(one.requests), len(other.requests)) == (1, 1)
    assert one.resumed == other.resumed == 0
    assert (sessions(stack).full, sessions(stack).resumed) == (2, 0)
    kept = {port: sessions(stack).offer(("localhost", port, "localhost")) for port in (one.port, other.port)}
    assert None not in kept.values() and kept[one.port] is not kept[other.port]
    assert sessions(stack).offer(("127.0.0.1", one.port, "127.0.0.1")) is None


@pytest.mark.parametrize("max_tls", [None, ssl.TLSVersion.TLSv1_2], ids=["tls13", "tls12"])
def test_every_reconnect_resumes_whether_the_session_came_in_the_handshake_or_after_it(
    stack: Stack, receivers: Callable[..., Receiver], max_tls: ssl.TLSVersion | None
) -> None:
    # given a receiver that closes each connection, speaking TLS 1.3 (tickets after the handshake,
    # one taken per connection) or TLS 1.2 (a ticket in the handshake, kept while it resumes)
    hook = receivers(closing(), max_tls=max_tls)
    stack.put_config("variant-calling", hooks(hook.url))
    # when the dispatcher delivers four events to it, one connection each
    results = [deliver(stack, n) for n in range(1, 5)]
    # then all arrived, and every connection after the first resumed a session
    assert [r["delivered"] for r in results] == [1, 1, 1, 1]
    assert [r.answered for r in hook.requests] == [200] * 4 and hook.connections == 4
    assert hook.resumed == 3
    assert (sessions(stack).full, sessions(stack).resumed) == (1, 3)

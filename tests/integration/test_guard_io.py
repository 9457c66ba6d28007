"""The outbound guard where it meets the network: a name that resolves to loopback, and a sender that
never contacts a blocked target. (The guard's checks of IP literals are in tests/unit/test_guard.py.)"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from oxoflow_notify.config import Webhook
from oxoflow_notify.inbound.events import parse_event
from oxoflow_notify.outbound.delivery import HttpSender, prepare
from oxoflow_notify.outbound.guard import BlockedTarget, TargetGuard, parse_allowlist
from oxoflow_notify.pipeline.answers import Kind, judge
from oxolocal.receivers import Receiver, ok
from tests.conftest import RECEIVED_AT, message

EVENT = parse_event(message("rule-failed"), message_id="m", received_at=RECEIVED_AT)


def test_a_name_that_resolves_to_loopback_is_caught() -> None:
    with pytest.raises(BlockedTarget, match="loopback"):
        TargetGuard().vetted_addresses("localhost", 80)


def hook(url: str) -> Webhook:
    return Webhook("wh", url, "json", None, (), "s", 1)


def test_a_blocked_target_is_never_contacted_and_is_permanent(receivers: Callable[..., Receiver]) -> None:
    receiver = receivers(ok())
    port = receiver.url.split(":")[2].split("/")[0]
    sender = HttpSender(guard=TargetGuard(require_https=False))
    for url in (receiver.url, f"http://2130706433:{port}/hook", f"http://[::ffff:127.0.0.1]:{port}/hook", f"http://localhost:{port}/"):
        outcome = sender.send(prepare(EVENT, hook(url), "d", 1))
        assert outcome.error == "blocked_target" and judge("json", outcome, 0).kind is Kind.GIVE_UP
        assert outcome.detail is not None and outcome.detail.startswith("target resolves to ") and "loopback" in outcome.detail
    assert receiver.requests == []


def test_plain_http_is_refused_when_https_is_required() -> None:
    receiver = Receiver(ok(), tls=False)
    outcome = HttpSender(guard=TargetGuard(parse_allowlist("127.0.0.0/8"), require_https=True)).send(
        prepare(EVENT, hook(receiver.url), "d", 1)
    )
    assert (outcome.error, judge("json", outcome, 0).kind) == ("https_required", Kind.GIVE_UP)
    assert "plain http is refused" in outcome.describe()
    assert receiver.requests == []

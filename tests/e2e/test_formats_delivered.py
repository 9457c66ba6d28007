"""Each format, published through SNS, accepted by a loopback receiver that checks the shape the real
service requires (and answers like it: Slack 'ok', Discord 204, Teams 202)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from oxolocal.receivers import Receiver, service
from oxolocal.shapes import problems_of
from oxolocal.stack import Stack
from tests.conftest import EVENT_KINDS, message

FORMATS = ["json", "slack", "teams", "discord", "text"]


def test_every_format_is_accepted_by_a_receiver_checking_the_real_shape(stack: Stack, receivers: Callable[..., Receiver]) -> None:
    # given one receiver per format, each answering like the real service
    by_format = {fmt: receivers(service(fmt), fmt) for fmt in FORMATS}
    stack.put_config("variant-calling", "\n".join(f'[[webhooks]]\nurl = "{r.url}"\nformat = "{fmt}"\n' for fmt, r in by_format.items()))
    # when all eight sample events are published
    for kind in EVENT_KINDS:
        stack.publish(message(kind))
    stack.carry_published()
    # then every receiver accepted all eight, with its own success answer
    expected = {"json": 200, "slack": 200, "teams": 202, "discord": 204, "text": 200}
    for fmt, receiver in by_format.items():
        assert [r.answered for r in receiver.requests] == [expected[fmt]] * 8, fmt
        assert all(problems_of(fmt, r.body) == [] for r in receiver.requests)
    assert stack.drain(stack.dead_letter_queue_url) == []


@pytest.mark.parametrize("fmt", ["slack", "teams", "discord", "text"])
def test_a_huge_hostile_event_is_still_accepted(stack: Stack, receivers: Callable[..., Receiver], fmt: str) -> None:
    receiver = receivers(service(fmt), fmt)
    stack.put_config("variant-calling", f'[[webhooks]]\nurl = "{receiver.url}"\nformat = "{fmt}"\n')
    stderr = ("<!channel> @everyone ``` é😀 " * 4000) + "\nFATAL: the real error is here"
    stack.publish({"event": "RuleFailed", "workflow": "variant-calling", "rule": "r" * 1000, "message": "m&<>" * 1000,
                   "details": {"stderr": stderr, "exit_code": 137}})  # fmt: skip
    stack.carry_published()
    (got,) = receiver.requests
    assert got.answered in (200, 202, 204), got.body[:300]
    assert "FATAL: the real error is here" in got.body.decode("utf-8")  # the tail of stderr survived

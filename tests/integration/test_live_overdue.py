"""A live message whose webhook also watches its runs (``overdue``): the alert marks the run's one
message overdue instead of posting a message of its own; the run's late ending then ends it."""

from __future__ import annotations

import json
from collections.abc import Callable

from oxolocal.receivers import DiscordMessages, Receiver
from oxolocal.stack import Stack
from tests.integration.test_watching import HOUR, T0, Clock, hop, send


def test_an_overdue_run_marks_its_live_message_and_its_late_ending_ends_it(stack: Stack, receivers: Callable[..., Receiver]) -> None:
    # given a live Discord webhook that also reports runs not ended within an hour
    platform = DiscordMessages()
    hook = receivers(platform)
    stack.put_config("variant-calling", f'[[webhooks]]\nid = "live"\nurl = "{hook.url}"\nformat = "discord"\nlive = true\noverdue = "1h"\n')
    clock = Clock(stack)
    # when the run starts, its message is posted, and then nothing comes for an hour
    send(stack, "workflow-started", 1)
    hop(stack)
    while clock.now < T0 + HOUR:
        clock.now += 900
        hop(stack)
    clock.now = T0 + HOUR + 10
    hop(stack)
    hop(stack)
    # then the one message says the run is overdue (no message of its own for the alert)
    (message,) = platform.messages.values()
    assert message["embeds"][0]["title"].startswith("⌛") and "overdue" in message["embeds"][0]["title"]
    assert hook.requests[0].method == "POST" and hook.requests[0].answered == 200
    assert all(r.method == "PATCH" for r in hook.requests[1:])
    # when the run completes after all, the same message ends completed
    clock.now += 60
    send(stack, "workflow-completed", 2)
    hop(stack)
    (message,) = platform.messages.values()
    assert message["embeds"][0]["title"].startswith("✅") and "completed" in message["embeds"][0]["title"]
    assert stack.drain(stack.dead_letter_queue_url) == []
    assert json.dumps(message).count("overdue") == 0

"""Live messages on a moved clock (nothing waits): a watched run marks its one message overdue instead of
posting an alert of its own (its late ending then ends it), and a long run is at most one edit per interval + 2."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from oxoflow_notify.aws.live_table import DynamoLiveStore
from oxoflow_notify.formats import live as live_format
from oxoflow_notify.pipeline.live_state import STALE_TIMER, Change
from oxolocal.receivers import Answer, DiscordMessages, Received, Receiver
from oxolocal.stack import Stack, sqs_event
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


def test_a_long_run_makes_at_most_one_edit_per_interval_plus_two_on_a_moved_clock(stack: Stack, receivers: Callable[..., Receiver]) -> None:
    # given a live Discord webhook (live_interval = 5s) and the functions' clocks moved by the test (the
    # platform's own rate, on the wall clock, is not what this test is about: the real-time tests hold it)
    platform = DiscordMessages(per_two_seconds=10**6)
    hook = receivers(platform)
    stack.put_config("variant-calling", f'[[webhooks]]\nid = "live"\nurl = "{hook.url}"\nformat = "discord"\nlive = true\n')
    clock = Clock(stack)
    # when a 300-rule run sends 602 events, one every half second of its clock, the timers running between them
    send(stack, "workflow-started", 0)
    for n in range(1, 601):
        clock.now += 0.5
        send(stack, "rule-completed" if n % 2 else "rule-started", n)
        if n % 5 == 0:
            hop(stack)
    clock.now += 0.5
    send(stack, "workflow-completed", 601)
    for _ in range(3):  # the last edit is due an interval after the one before it
        clock.now += 5
        hop(stack)
    # then the platform got at most run time / interval + 2 requests: one message, edited, ending completed
    run_time = clock.now - T0
    assert len(hook.requests) <= run_time / 5 + 2, (len(hook.requests), run_time)
    (message,) = platform.messages.values()
    assert message["embeds"][0]["title"].startswith("✅")
    assert {f["name"]: f["value"] for f in message["embeds"][0]["fields"]}["Completed"] == "300"


def test_the_failure_shown_is_the_newest_whatever_order_the_instances_count_them(stack: Stack, receivers: Callable[..., Receiver]) -> None:
    # given a live Discord webhook and a run whose two failures reach the dispatcher in the reverse of
    # the order they happened (two instances, the later failure's counted first)
    platform = DiscordMessages(per_two_seconds=10**6)
    hook = receivers(platform)
    stack.put_config("variant-calling", f'[[webhooks]]\nid = "live"\nurl = "{hook.url}"\nformat = "discord"\nlive = true\n')
    clock = Clock(stack)
    send(stack, "workflow-started", 0)
    send(stack, "rule-failed", 2, rule="call_variants", timestamp="2026-05-18T12:00:20Z",
         message="rule 'call_variants' failed", details={"exit_code": 2, "stderr": "gatk: out of memory"})  # fmt: skip
    send(stack, "rule-failed", 1, rule="align_reads", timestamp="2026-05-18T12:00:10Z")
    # when the run ends and the timers run
    send(stack, "workflow-failed", 3)
    for _ in range(3):
        clock.now += 5
        hop(stack)
    # then the message counts both and shows the one that happened last as the last failure
    (message,) = platform.messages.values()
    text = json.dumps(message)
    assert message["embeds"][0]["title"].startswith("❌")
    assert {f["name"]: f["value"] for f in message["embeds"][0]["fields"]}["Failed"] == "2"
    assert "variants" in text and "gatk: out of memory" in text  # (names are escaped for markdown: call\\_variants)
    assert "align" not in text and "bwa: command not found" not in text
    assert stack.drain(stack.dead_letter_queue_url) == []


def test_a_surprise_while_editing_stops_the_updates_with_a_letter_a_replay_resumes(
    stack: Stack, receivers: Callable[..., Receiver], monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a live Discord webhook whose rendering fails with a bug of ours (a KeyError) for a while
    platform = DiscordMessages(per_two_seconds=10**6)
    hook = receivers(platform)
    stack.put_config("variant-calling", f'[[webhooks]]\nid = "live"\nurl = "{hook.url}"\nformat = "discord"\nlive = true\n')
    clock = Clock(stack)
    real = live_format.render_live_discord

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise KeyError("a bug")

    monkeypatch.setattr(live_format, "render_live_discord", broken)
    # when a run goes by and its timers run
    for n, kind in enumerate(["workflow-started", "rule-started", "rule-completed", "workflow-completed"]):
        send(stack, kind, n)
    for _ in range(3):
        clock.now += 5
        hop(stack)
    # then nothing was posted, and the updates stopped with one replayable letter (not malformed_retry)
    letters = stack.drain(stack.dead_letter_queue_url)
    assert [(letter["reason_code"], letter["webhook"]["id"]) for letter in letters] == [("live_failed", "live")]
    assert "unexpected KeyError" in letters[0]["reason"] and "replay" in letters[0]["reason"]
    assert hook.requests == []
    # when the bug is gone and the letter replayed (its kept timer back on the retry queue, as replay sends it)
    monkeypatch.setattr(live_format, "render_live_discord", real)
    stack.sqs.send_message(QueueUrl=stack.retry_queue_url, MessageBody=letters[0]["raw_message"])
    for _ in range(2):
        clock.now += 5
        hop(stack)
    # then the one message is posted with the run's state as it is
    (message,) = platform.messages.values()
    assert message["embeds"][0]["title"].startswith("✅")
    assert stack.drain(stack.dead_letter_queue_url) == []


def test_a_revived_timer_whose_message_is_lost_goes_stale_like_any_other(stack: Stack) -> None:
    # given a live message whose updates were stopped (dead-lettered) and then revived by a replay
    store = DynamoLiveStore(stack.physical["DeliveryLedger"]["Ref"], lambda: stack.dynamodb)
    store.record("g", "e1", Change(counted="RuleStarted"), T0)
    assert store.schedule("g", "timer-1", T0) is not None
    store.broke("g", "timer-1", "refused")
    store.revive("g", "timer-1", T0 + 100)
    # when the revived timer's queue message is lost, and a new event asks for a timer of its own
    soon = store.schedule("g", "timer-2", T0 + 100 + STALE_TIMER - 1)
    later = store.schedule("g", "timer-2", T0 + 100 + STALE_TIMER + 1)
    # then it waits while the revived timer may still run, and takes over once that one is stale
    assert soon is None
    assert later is not None and later.timer == "timer-2"


def test_a_failing_platform_is_retried_on_the_whole_schedule_not_cut_to_sqs_15_minutes(
    stack: Stack, receivers: Callable[..., Receiver]
) -> None:
    # given a live Discord webhook retried after 5 s, 1 h and 1 h, and Discord answering 503 to its first three calls
    stack.overrides["RETRY_SCHEDULE"] = "5,3600,3600"
    platform = DiscordMessages(per_two_seconds=10**6)
    platform.fail = {0: 503, 1: 503, 2: 503}  # (by request number, from 0)
    hook = receivers(platform)
    stack.put_config("variant-calling", f'[[webhooks]]\nid = "live"\nurl = "{hook.url}"\nformat = "discord"\nlive = true\n')
    clock = Clock(stack)
    # when a run starts and the timers run every 5 minutes of its clock for three hours
    send(stack, "workflow-started", 0)
    calls_at: dict[float, int] = {}
    while clock.now < T0 + 3 * HOUR:
        hop(stack)
        calls_at[clock.now - T0] = len(hook.requests)
        clock.now += 300
    # then the third call waited its hour (SQS delays 15 minutes at most: the timer hopped), the fourth
    # its next hour, and the message was posted then, with no dead letter
    assert max(n for at, n in calls_at.items() if at < HOUR) == 2
    assert max(n for at, n in calls_at.items() if at < 2 * HOUR) == 3
    assert len(hook.requests) == 4 and [r.answered for r in hook.requests] == [503, 503, 503, 200]
    (message,) = platform.messages.values()
    assert message["embeds"][0]["title"].startswith("▶") or "running" in message["embeds"][0]["title"]
    assert stack.drain(stack.dead_letter_queue_url) == []


def test_an_edit_holds_the_message_for_as_long_as_its_invocation_can_act(stack: Stack, receivers: Callable[..., Receiver]) -> None:
    # given a live Discord webhook, the retry function given 300 s per invocation (RetryFunctionTimeout's
    # range reaches 900), and a platform that looks, while each edit is on its way, at how long it is held
    table = stack.physical["DeliveryLedger"]["Ref"]
    platform = DiscordMessages(per_two_seconds=10**6)
    held: list[float] = []

    def looking(n: int, r: Received) -> Answer:
        items = stack.dynamodb.scan(TableName=table)["Items"]
        held.extend(float(i["lease_until"]["N"]) - clock.now for i in items if "lease_until" in i)
        return platform(n, r)

    hook = receivers(looking)
    stack.put_config("variant-calling", f'[[webhooks]]\nid = "live"\nurl = "{hook.url}"\nformat = "discord"\nlive = true\n')
    clock = Clock(stack)
    # when the run's timer edits the message in an invocation with 300 s to go
    send(stack, "workflow-started", 0)
    messages = stack.receive(stack.retry_queue_url)
    stack.invoke("RetryFunction", sqs_event(messages, stack.physical["RetryQueue"]["Arn"]), timeout_seconds=300)
    # then the message was held past the invocation's end (its 300 s less what it had spent, plus 5 s for clocks)
    assert len(hook.requests) == 1 and len(held) == 1
    # (margin: up to 50 s of the invocation spent before the lease, on a loaded machine; the old hold was 60 s)
    assert 250 < held[0] <= 305, held

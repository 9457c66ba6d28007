"""Live messages on a moved clock (nothing waits): a watched run marks its one message overdue instead of
posting an alert of its own (its late ending then ends it), and a long run is at most one edit per interval + 2."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from oxoflow_notify.aws.live_table import DynamoLiveStore
from oxoflow_notify.formats import live as live_format
from oxoflow_notify.pipeline.live_state import STALE_TIMER, Change
from oxolocal.receivers import Answer, DiscordMessages, Received, Receiver
from oxolocal.stack import Stack, sqs_event
from tests.integration.test_watching import HOUR, T0, Clock, hop, send


def live_discord(
    stack: Stack, receivers: Callable[..., Receiver], answer: Callable[[float], Answer | None] | None = None
) -> tuple[DiscordMessages, Receiver, Clock, list[float]]:
    """A live Discord webhook (its rate out of the way: the real-time tests hold it) on the test's
    clock; its platform first asks ``answer`` (given the clock) and, when it says nothing, answers as
    Discord. Returns the platform, its receiver, the clock and the clock's time of each call."""
    platform = DiscordMessages(per_two_seconds=10**6)
    calls: list[float] = []

    def behaviour(n: int, r: Received) -> Answer:
        calls.append(clock.now)
        return (answer(clock.now) if answer is not None else None) or platform(n, r)

    hook = receivers(behaviour)
    stack.put_config("variant-calling", f'[[webhooks]]\nid = "live"\nurl = "{hook.url}"\nformat = "discord"\nlive = true\n')
    clock = Clock(stack)
    return platform, hook, clock, calls


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
    platform, hook, clock, _ = live_discord(stack, receivers)
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
    platform, _, clock, _ = live_discord(stack, receivers)
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
    platform, hook, clock, _ = live_discord(stack, receivers)
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


def test_a_timer_that_could_not_be_queued_does_not_hold_the_next_events_timer(stack: Stack, receivers: Callable[..., Receiver]) -> None:
    # given a run's live message posted, and the retry queue refusing the next event's timer once (SQS throttled)
    platform, hook, clock = started_run(stack, receivers)
    refused = refuse_sends(stack, 1)
    with pytest.raises(ClientError):
        send(stack, "rule-started", 1)  # an AWS fault: the event is raised, and Lambda runs it again later
    # when the run's next event comes (before that re-run) and the timers run
    clock.now += 10
    send(stack, "rule-completed", 2)
    hop(stack)
    # then the message already shows both events: the next event armed its own timer
    (message,) = platform.messages.values()
    assert len(refused) == 1 and counts(message) == {"Started": "1", "Completed": "1"}
    assert [r.method for r in hook.requests] == ["POST", "PATCH"]


def started_run(stack: Stack, receivers: Callable[..., Receiver]) -> tuple[DiscordMessages, Receiver, Clock]:
    """A live Discord webhook whose run has started and its message is posted; the clock 10 s on."""
    platform, hook, clock, _ = live_discord(stack, receivers)
    send(stack, "workflow-started", 0)
    hop(stack)
    clock.now += 10
    return platform, hook, clock


def refuse_sends(stack: Stack, times: int, accepted: bool = False) -> list[dict[str, Any]]:
    """The dispatcher's retry-queue sends raise an AWS fault ``times`` times (``accepted``: SQS took the
    message, then the call failed, as a read timeout after the write does)."""
    live = stack.modules["DispatchFunction"].notifier.live.get()
    real, refused = live.retry_queue.send, list[dict[str, Any]]()

    def flaky(body: dict[str, Any], delay_seconds: int = 0) -> None:
        if len(refused) < times:
            refused.append(body)
            if accepted:
                real(body, delay_seconds=delay_seconds)
            raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "SendMessage")
        real(body, delay_seconds=delay_seconds)

    live.retry_queue.send = flaky
    return refused


def test_a_copy_of_an_event_whose_timer_send_fails_leaves_the_first_copys_timer_running(
    stack: Stack, receivers: Callable[..., Receiver]
) -> None:
    # given a run's message posted, and its next event counted with its timer queued
    platform, hook, clock = started_run(stack, receivers)
    send(stack, "rule-started", 1)
    # when a copy of that event (SNS's redelivery, or the event run again) comes, and the queue refuses its timer
    refuse_sends(stack, 1)
    with pytest.raises(ClientError):
        send(stack, "rule-started", 1)
    # then the first copy's timer, the same token, still edits the message
    clock.now += 10
    hop(stack)
    (message,) = platform.messages.values()
    assert [r.method for r in hook.requests] == ["POST", "PATCH"] and counts(message).get("Started") == "1"


def test_the_runs_ending_is_shown_though_every_copy_of_an_event_before_it_failed_to_queue(
    stack: Stack, receivers: Callable[..., Receiver]
) -> None:
    # given a rule event's timer queued, then the run's ending (which arms nothing: that timer is pending)
    platform, _, clock = started_run(stack, receivers)
    send(stack, "rule-started", 1)
    send(stack, "workflow-completed", 2)
    # when a copy of the rule event and Lambda's two retries of it all have their timer refused
    refuse_sends(stack, 3)
    for _ in range(3):
        with pytest.raises(ClientError):
            send(stack, "rule-started", 1)
    for _ in range(4):
        clock.now += 60
        hop(stack)
    # then the message ends completed all the same: the queued timer ran
    (message,) = platform.messages.values()
    assert message["embeds"][0]["title"].startswith("✅")


def test_a_timer_sqs_took_before_the_call_failed_still_runs(stack: Stack, receivers: Callable[..., Receiver]) -> None:
    # given a run's message posted, and a send that fails after SQS took the message (a read timeout)
    platform, _, clock = started_run(stack, receivers)
    refuse_sends(stack, 1, accepted=True)
    with pytest.raises(ClientError):
        send(stack, "rule-started", 1)
    # when that timer arrives, before the event's re-run
    clock.now += 10
    hop(stack)
    # then it edits the message
    (message,) = platform.messages.values()
    assert counts(message).get("Started") == "1"


def counts(message: dict[str, Any]) -> dict[str, str]:
    return {f["name"]: f["value"] for f in message["embeds"][0]["fields"] if f["name"] in ("Started", "Completed")}


def run_clock(stack: Stack, clock: Clock, until: float, step: float = 300) -> None:
    while clock.now < until:
        hop(stack)
        clock.now += step


def test_a_platform_down_for_100_minutes_is_tried_every_15_minutes_and_caught_up_without_a_letter(
    stack: Stack, receivers: Callable[..., Receiver]
) -> None:
    # given a live Discord webhook retried after 5 s, 1 h and 1 h (2 h in all), and Discord answering 503
    # for the first 100 minutes of the test's clock
    stack.overrides["RETRY_SCHEDULE"] = "5,3600,3600"
    _, hook, clock, calls = live_discord(stack, receivers, lambda now: Answer(503, b"{}") if now < T0 + 6000 else None)
    # when a run starts and ends meanwhile, the timers running every 5 minutes of its clock for three hours
    send(stack, "workflow-started", 0)
    run_clock(stack, clock, T0 + 3000)
    send(stack, "workflow-completed", 1)
    run_clock(stack, clock, T0 + 3 * HOUR)
    # then it was tried at least every 15 minutes (and the 5-minute hops), past the schedule's three
    # attempts, and shows the run's end soon after Discord came back; no dead letter
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    assert max(gaps) <= 900 + 300, gaps
    assert [r.answered for r in hook.requests][-1] == 200 and calls[-1] < T0 + 6000 + 900 + 300
    assert len([r for r in hook.requests if r.answered == 503]) >= 6
    final = json.loads(hook.requests[-1].body)
    assert final["embeds"][0]["title"].startswith("✅")
    assert stack.drain(stack.dead_letter_queue_url) == []


def test_a_platform_down_for_good_is_dead_lettered_once_the_whole_schedule_has_passed(
    stack: Stack, receivers: Callable[..., Receiver]
) -> None:
    # given a live Discord webhook retried after 5 s, 1 h and 1 h (2 h in all), and Discord answering 503 for good
    stack.overrides["RETRY_SCHEDULE"] = "5,3600,3600"
    _, _, clock, calls = live_discord(stack, receivers, lambda now: Answer(503, b"{}"))
    # when a run starts and the timers run for four hours of its clock, the letters read each hop
    send(stack, "workflow-started", 0)
    letters: list[tuple[float, dict[str, Any]]] = []
    while clock.now < T0 + 4 * HOUR:
        hop(stack)
        letters += [(clock.now, letter) for letter in stack.drain(stack.dead_letter_queue_url)]
        clock.now += 300
    # then one letter, once the schedule's two hours had passed (not after its three attempts), and no call after it
    ((at, letter),) = letters
    assert T0 + 7205 <= at <= T0 + 7205 + 900 + 300
    assert letter["reason_code"] == "live_failed" and "attempts over 2." in letter["reason"]
    assert calls[-1] <= at


def test_a_huge_retry_after_holds_the_message_an_hour_at_most(stack: Stack, receivers: Callable[..., Receiver]) -> None:
    # given Discord answering its first call 429 with retry_after of 3,600,000 (41 days) in JSON and no header
    huge = Answer(429, b'{"message": "You are being rate limited.", "retry_after": 3600000, "global": false}')
    _, hook, clock, calls = live_discord(stack, receivers, lambda now: huge if not calls[:-1] else None)
    # when a run starts and the timers run for two hours of its clock
    send(stack, "workflow-started", 0)
    run_clock(stack, clock, T0 + 2 * HOUR)
    # then the message was posted again within the hour a Retry-After may ask for at most
    assert [r.answered for r in hook.requests] == [429, 200] and calls[1] - calls[0] <= HOUR + 300
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


def test_failures_at_the_same_second_show_the_same_one_whatever_order_they_arrive_in(
    stack: Stack, receivers: Callable[..., Receiver]
) -> None:
    # given a run whose two failures are stamped the same second (publishers stamp to the second), followed
    # by one live webhook with the events in one order, then by another with them in the other order
    platforms = [DiscordMessages(per_two_seconds=10**6), DiscordMessages(per_two_seconds=10**6)]
    hooks = [receivers(platform) for platform in platforms]
    clock = Clock(stack)
    first: dict[str, Any] = {"rule": "alignreads", "timestamp": "2026-05-18T12:00:10Z", "details": {"exit_code": 1, "stderr": "first"}}
    second: dict[str, Any] = {"rule": "callvariants", "timestamp": "2026-05-18T12:00:10Z", "details": {"exit_code": 2, "stderr": "second"}}
    for n, (hook, order) in enumerate(zip(hooks, ((first, second), (second, first)), strict=True)):
        stack.put_config("variant-calling", f'[[webhooks]]\nid = "live-{n}"\nurl = "{hook.url}"\nformat = "discord"\nlive = true\n')
        clock.now += 120  # past the config cache
        send(stack, "workflow-started", 0)
        for failure in order:
            send(stack, "rule-failed", 1 if failure is first else 2, **failure)
        send(stack, "workflow-failed", 3)
        # when the timers run
        for _ in range(3):
            clock.now += 5
            hop(stack)
    # then both messages show the same one of the two as the last failure
    shown = [("alignreads" in json.dumps(m), "callvariants" in json.dumps(m)) for p in platforms for m in p.messages.values()]
    assert len(shown) == 2 and shown[0] == shown[1] and sum(shown[0]) == 1, shown


def test_a_failure_stamped_in_the_future_does_not_hide_the_later_ones(stack: Stack, receivers: Callable[..., Receiver]) -> None:
    # given a run whose first failure comes from a node whose clock is a year ahead
    platform, _, clock, _ = live_discord(stack, receivers)
    send(stack, "workflow-started", 0)
    send(stack, "rule-failed", 1, rule="skewednode", timestamp="2031-03-17T17:46:40Z", details={"exit_code": 1})
    # when a real failure comes ten minutes later, and the run ends
    clock.now += 600
    send(stack, "rule-failed", 2, rule="laterreal", timestamp="2030-03-17T17:56:40Z", details={"exit_code": 2})
    send(stack, "workflow-failed", 3)
    for _ in range(3):
        clock.now += 5
        hop(stack)
    # then the message shows the later real failure
    (message,) = platform.messages.values()
    assert "laterreal" in json.dumps(message) and "skewednode" not in json.dumps(message)

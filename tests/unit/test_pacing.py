"""The rate limit's decisions (Notifier._pace) on a simulated clock: held deliveries keep their
order and their pace, a slow retry function cannot starve them, and a 429 stops every sender."""

from __future__ import annotations

import heapq
import math
from typing import Any

import pytest

from oxoflow_notify.aws.queues import MemoryQueue
from oxoflow_notify.aws.settings import Settings
from oxoflow_notify.config.parse import parse_config
from oxoflow_notify.inbound.events import event_from_payload
from oxoflow_notify.outbound.breaker import target_of
from oxoflow_notify.outbound.delivery import RATE_LIMITED, HttpSender, Outcome, prepare
from oxoflow_notify.pipeline.notifier import PACE_EARLY, Notifier
from oxoflow_notify.pipeline.pacing import MemoryPacer
from oxolocal.receivers import most_in_any_second
from tests.conftest import message

RATE = 5.0
URL = "https://hooks.example.org/limited"


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def notifier(clock: Clock, pacer: MemoryPacer) -> Notifier:
    settings = Settings.from_env({"CONFIG_BUCKET": "b", "RETRY_QUEUE_URL": "q", "DEAD_LETTER_QUEUE_URL": "d"})
    store: Any = None  # _pace reads no config
    return Notifier(settings, store, HttpSender(), MemoryQueue(), MemoryQueue(), clock=clock, pacer=pacer, sleep=clock.sleep)


def prepared(n: int) -> Any:
    (webhook,) = parse_config(f'[[webhooks]]\nurl = "{URL}"\nrate_limit = {RATE:g}\n', "workflows/w.oxoflow").webhooks
    event = event_from_payload({**message("rule-failed"), "id": f"e{n}"})
    return prepare(event, webhook, f"d{n}", 1, now=0)


@pytest.mark.parametrize("late", [0.0, 1.5, 3.0, 8.0])
def test_a_storm_of_held_deliveries_all_go_at_the_pace_even_when_the_retry_function_picks_them_up_late(late: float) -> None:
    # given 200 deliveries at once to a webhook limited to 5/s, and a retry function that picks up
    # each held message ``late`` seconds after SQS makes it visible (a batching window, a backlog);
    # a POST that waits for its slot waits in its own thread, so the others' clock does not move
    clock, pacer = Clock(), MemoryPacer()
    n = notifier(clock, pacer)
    start = clock.now
    queue: list[tuple[float, int, float | None, float]] = [(start, i, None, PACE_EARLY) for i in range(200)]
    heapq.heapify(queue)
    sent: dict[int, float] = {}
    holds = 0
    # when each is handled when it becomes visible: sent after its in-thread wait, or held again
    while queue:
        visible, i, slot, early = heapq.heappop(queue)
        clock.now = max(clock.now, visible)
        outcome = n._pace(prepared(i), slot, early, 10.0)
        if not isinstance(outcome, Outcome):  # its slot: the POST waits for it in its own thread
            sent[i] = max(clock.now, outcome or clock.now)
            continue
        assert outcome.error == RATE_LIMITED and outcome.hold_for is not None
        holds += 1
        again = clock.now + math.ceil(outcome.hold_for) + late  # SQS rounds the delay up; the pickup adds ``late``
        heapq.heappush(queue, (again, i, outcome.slot, outcome.early or PACE_EARLY))
        assert holds < 2_000, f"livelock: {len(sent)} sent after {holds} holds"
    # then all 200 went, never more than the rate (+1) in any second, within twice the 40 s the
    # rate needs (slots missed by a late pickup are given up once, then the held come back earlier)
    assert len(sent) == 200 and holds >= 150
    assert most_in_any_second(list(sent.values())) <= RATE + 1
    assert max(sent.values()) - start < 2 * 200 / RATE + 30 + 2 * late


def test_a_held_delivery_whose_slot_falls_in_a_429_pause_takes_a_slot_after_it() -> None:
    clock, pacer = Clock(), MemoryPacer()
    n = notifier(clock, pacer)
    n.sleep = lambda seconds: None  # the first ones wait in their threads; the clock stands still for them
    held = [n._pace(prepared(i), None, PACE_EARLY, 10.0) for i in range(30)]  # slots 0 .. 5.8 s out
    far = next(o for o in held if isinstance(o, Outcome) and o.slot is not None and o.slot - clock.now > 4)
    # when a receiver's 429 asks everyone to wait 60 s
    pacer.pause(target_of(URL), clock.now + 60)
    clock.now = far.slot or 0.0
    again = n._pace(prepared(99), far.slot, PACE_EARLY, 10.0)
    # then the delivery does not go at its old slot but is held past the pause
    assert isinstance(again, Outcome) and again.error == RATE_LIMITED and again.slot is not None and again.slot >= clock.now + 50


def test_a_post_waiting_in_its_thread_when_a_429_pauses_the_webhook_does_not_go() -> None:
    clock, pacer = Clock(), MemoryPacer()
    n = notifier(clock, pacer)
    pacer.reserve(target_of(URL), RATE, clock.now)  # someone holds the slot now: ours is 0.2 s out

    def sleep_through_a_pause(seconds: float) -> None:
        pacer.pause(target_of(URL), clock.now + 30)  # another instance got a 429 meanwhile
        clock.now += seconds

    n.sleep = sleep_through_a_pause
    slot = n._pace(prepared(1), None, PACE_EARLY, 10.0)
    assert isinstance(slot, float) and slot > clock.now
    outcome = n._at_slot(prepared(1), slot)  # right before the POST
    assert outcome is not None and outcome.error == RATE_LIMITED and (outcome.hold_for or 0) > 20


def test_a_delivery_is_held_not_sent_unpaced_when_the_slots_cannot_be_read() -> None:
    class Down(MemoryPacer):
        def reserve(self, target: str, rate: float, now: float) -> Any:
            raise RuntimeError("DynamoDB throttled")

    n = notifier(Clock(), Down())
    outcome = n._pace(prepared(1), None, PACE_EARLY, 10.0)
    assert isinstance(outcome, Outcome) and outcome.error == RATE_LIMITED and 5 <= (outcome.hold_for or 0) <= 15


def test_a_held_delivery_keeps_its_slot_when_the_pause_cannot_be_read() -> None:
    class Unreadable(MemoryPacer):
        def paused_until(self, target: str) -> float:
            raise RuntimeError("DynamoDB throttled")

    clock = Clock()
    n = notifier(clock, Unreadable())
    outcome = n._pace(prepared(1), clock.now + 25, 30.0, 60.0)  # came back early, as planned
    assert outcome == clock.now + 25  # not sent before its slot


def test_no_limit_no_wait() -> None:
    clock, pacer = Clock(), MemoryPacer()
    n = notifier(clock, pacer)
    (webhook,) = parse_config(f'[[webhooks]]\nurl = "{URL}"\nrate_limit = 0\n', "workflows/w.oxoflow").webhooks
    free = prepare(event_from_payload({**message("rule-failed"), "id": "e"}), webhook, "d", 1, now=0)
    assert all(n._pace(free, None, PACE_EARLY, 10.0) is None for _ in range(100)) and pacer.next == {}

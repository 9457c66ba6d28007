"""The rate limit's decisions (RateGate.slot_for) on a simulated clock: held deliveries keep their
order and their pace, a slow retry function cannot starve them, and a 429 stops every sender."""

from __future__ import annotations

import heapq
import math
from typing import Any

import pytest

from oxoflow_notify.aws.settings import Settings
from oxoflow_notify.config.parse import parse_config
from oxoflow_notify.inbound.events import event_from_payload
from oxoflow_notify.outbound.breaker import target_of
from oxoflow_notify.outbound.delivery import Outcome, prepare
from oxoflow_notify.outbound.failures import Failure
from oxoflow_notify.pipeline.attempts import PACE_EARLY
from oxoflow_notify.pipeline.budget import TimeBudget
from oxoflow_notify.pipeline.pacing import MemoryPacer, MemoryStore
from oxoflow_notify.pipeline.rate_gate import RateGate
from oxolocal.receivers import most_in_any_second
from tests.conftest import message

RATE = 5.0
URL = "https://hooks.example.org/limited"
SOURCE = "workflows/w.oxoflow"  # the config file the webhooks come from: the tenant


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def notifier(clock: Clock, pacer: MemoryPacer) -> RateGate:
    settings = Settings.from_env({"CONFIG_BUCKET": "b", "RETRY_QUEUE_URL": "q", "DEAD_LETTER_QUEUE_URL": "d"})
    return RateGate(pacer, clock, TimeBudget(settings.invocation_reserve), clock.sleep)


def prepared(n: int) -> Any:
    (webhook,) = parse_config(f'[[webhooks]]\nurl = "{URL}"\nrate_limit = {RATE:g}\n', SOURCE).webhooks
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
        outcome = n.slot_for(prepared(i), slot, early, 10.0)
        if not isinstance(outcome, Outcome):  # its slot: the POST waits for it in its own thread
            sent[i] = max(clock.now, outcome or clock.now)
            continue
        assert outcome.error == Failure.RATE_LIMITED and outcome.hold_for is not None
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
    held = [n.slot_for(prepared(i), None, PACE_EARLY, 10.0) for i in range(30)]  # slots 0 .. 5.8 s out
    far = next(o for o in held if isinstance(o, Outcome) and o.slot is not None and o.slot - clock.now > 4)
    # when a receiver's 429 asks everyone to wait 60 s
    pacer.pause(target_of(URL), clock.now + 60)
    clock.now = far.slot or 0.0
    again = n.slot_for(prepared(99), far.slot, PACE_EARLY, 10.0)
    # then the delivery does not go at its old slot but is held past the pause
    assert isinstance(again, Outcome) and again.error == Failure.RATE_LIMITED and again.slot is not None and again.slot >= clock.now + 50


def test_a_post_waiting_in_its_thread_when_a_429_pauses_the_webhook_does_not_go() -> None:
    clock, pacer = Clock(), MemoryPacer()
    n = notifier(clock, pacer)
    pacer.reserve(target_of(URL), RATE, clock.now, tenant=SOURCE)  # someone holds the slot now: ours is 0.22 s out

    def sleep_through_a_pause(seconds: float) -> None:
        pacer.pause(target_of(URL), clock.now + 30)  # another instance got a 429 meanwhile
        clock.now += seconds

    n.sleep = sleep_through_a_pause
    slot = n.slot_for(prepared(1), None, PACE_EARLY, 10.0)
    assert isinstance(slot, float) and slot > clock.now
    outcome = n.at_slot(prepared(1), slot)  # right before the POST
    assert outcome is not None and outcome.error == Failure.RATE_LIMITED and (outcome.hold_for or 0) > 20


def test_a_delivery_is_held_not_sent_unpaced_when_the_slots_cannot_be_read() -> None:
    class Down(MemoryPacer):
        def reserve(self, target: str, rate: float, now: float, tenant: str = "") -> Any:
            raise RuntimeError("DynamoDB throttled")

    n = notifier(Clock(), Down())
    outcome = n.slot_for(prepared(1), None, PACE_EARLY, 10.0)
    assert isinstance(outcome, Outcome) and outcome.error == Failure.RATE_LIMITED and 5 <= (outcome.hold_for or 0) <= 15


def test_a_held_delivery_keeps_its_slot_when_the_pause_cannot_be_read() -> None:
    class Unreadable(MemoryPacer):
        def paused_until(self, target: str) -> float:
            raise RuntimeError("DynamoDB throttled")

    clock = Clock()
    n = notifier(clock, Unreadable())
    outcome = n.slot_for(prepared(1), clock.now + 25, 30.0, 60.0)  # came back early, as planned
    assert outcome == clock.now + 25  # not sent before its slot


def test_no_limit_no_wait() -> None:
    clock, pacer = Clock(), MemoryPacer()
    n = notifier(clock, pacer)
    (webhook,) = parse_config(f'[[webhooks]]\nurl = "{URL}"\nrate_limit = 0\n', "workflows/w.oxoflow").webhooks
    free = prepare(event_from_payload({**message("rule-failed"), "id": "e"}), webhook, "d", 1, now=0)
    assert all(n.slot_for(free, None, PACE_EARLY, 10.0) is None for _ in range(100)) and pacer.next == {}


# -- a strict receiver, clocks that disagree, tenants that share a receiver ------------------


class Skewed:
    """One instance's clock: the true time (``truth.now``) plus its own error."""

    def __init__(self, truth: Clock, error: float) -> None:
        self.truth, self.error = truth, error

    def __call__(self) -> float:
        return self.truth.now + self.error

    def sleep(self, seconds: float) -> None:
        pass  # a POST's wait is computed by the simulation below


def arrivals_at_a_strict_receiver(errors: list[float], count: int, late: float = 0.0) -> tuple[list[float], float]:
    """``count`` deliveries dispatched at once by instances whose clocks are off by ``errors``,
    held ones picked up again by any instance ``late`` seconds after they are due: the true times
    their POSTs arrive (up to 80 ms of network jitter each) and the true start."""
    truth = Clock()
    store = MemoryStore()
    instances = [notifier(Skewed(truth, error), MemoryPacer(store)) for error in errors]  # type: ignore[arg-type]
    start = truth.now
    queue: list[tuple[float, int, float | None, float]] = [(start, i, None, PACE_EARLY) for i in range(count)]
    heapq.heapify(queue)
    arrived: list[float] = []
    turn = 0
    while queue:
        visible, i, slot, early = heapq.heappop(queue)
        truth.now = max(truth.now, visible)
        n, turn = instances[turn % len(instances)], turn + 1  # whichever instance picks it up
        outcome = n.slot_for(prepared(i), slot, early, 10.0)
        if not isinstance(outcome, Outcome):  # its slot, on the shared clock: waited for on this instance's own
            assert n.pacer is not None and outcome is not None
            jitter = (i * 37 % 9) / 100  # 0 .. 80 ms, deterministic
            arrived.append(truth.now + max(0.0, outcome - n.pacer.now(n.clock())) + jitter)
            continue
        assert outcome.error == Failure.RATE_LIMITED and outcome.hold_for is not None
        heapq.heappush(queue, (truth.now + math.ceil(outcome.hold_for) + late, i, outcome.slot, outcome.early or PACE_EARLY))
        assert len(queue) <= count and turn < 20 * count, "livelock"
    return arrived, start


@pytest.mark.parametrize("errors", [[0.0], [-2.0, 0.0, 2.0], [2.0, 0.0, -2.0], [0.0, 2.0, 2.0, -2.0]])
def test_a_receiver_enforcing_the_rate_in_any_sliding_second_never_refuses_even_with_clocks_2_s_apart(errors: list[float]) -> None:
    # given 200 deliveries at once to a webhook limited to 5/s, its receiver answering 429 to a
    # 6th arrival within any one second, and instances whose clocks are up to 2 s off the truth
    # when they are paced, held and sent by whichever instance picks each up
    arrived, start = arrivals_at_a_strict_receiver(errors, 200)
    # then all 200 arrived, never more than 5 in any second (no 429), in at most 1.2x the 40 s the rate needs
    assert len(arrived) == 200
    assert most_in_any_second(arrived) <= RATE
    assert max(arrived) - start <= 1.2 * 200 / RATE


@pytest.mark.parametrize("late", [1.5, 8.0])
def test_a_late_retry_function_with_skewed_clocks_still_never_overruns_the_receiver(late: float) -> None:
    arrived, _ = arrivals_at_a_strict_receiver([-2.0, 0.0, 2.0], 200, late)
    assert len(arrived) == 200 and most_in_any_second(arrived) <= RATE


def tenant(source: str, rate: float, n: int) -> Any:
    (webhook,) = parse_config(f'[[webhooks]]\nurl = "{URL}"\nrate_limit = {rate:g}\n', source).webhooks
    return prepare(event_from_payload({**message("rule-failed"), "id": f"{source}-{n}"}), webhook, f"{source}-d{n}", 1, now=0)


def test_another_teams_slow_rate_limit_on_the_same_receiver_does_not_delay_ours() -> None:
    # given team A's file with the same receiver URL and rate_limit = 0.0012 (one POST in 917 s),
    # which has just reserved slots for 3 deliveries (the last about half an hour away)
    clock, pacer = Clock(), MemoryPacer()
    n = notifier(clock, pacer)
    held = [n.slot_for(tenant("workflows/team-a.oxoflow", 0.0012, i), None, PACE_EARLY, 10.0) for i in range(3)]
    assert isinstance(held[-1], Outcome) and (held[-1].slot or 0) - clock.now > 1_800
    # when team B's file (rate_limit = 1) sends to the same URL
    ours = n.slot_for(tenant("workflows/team-b.oxoflow", 1, 0), None, PACE_EARLY, 10.0)
    after = n.slot_for(tenant("workflows/team-b.oxoflow", 1, 1), None, PACE_EARLY, 10.0)
    # then B goes at once, and its next one interval (1.1 s) later: A's pace is A's alone
    assert ours == clock.now and isinstance(after, float) and after - clock.now <= 1.1 + 1e-9


def test_a_429_from_the_shared_receiver_still_pauses_every_team() -> None:
    # given two teams' files with the same receiver URL
    clock, pacer = Clock(), MemoryPacer()
    n = notifier(clock, pacer)
    # when the receiver answers one of team A's POSTs with 429 and Retry-After: 30
    pacer.pause(target_of(URL), clock.now + 30)
    # then team B's next POST waits for the pause too: the receiver asked
    outcome = n.slot_for(tenant("workflows/team-b.oxoflow", 1, 0), None, PACE_EARLY, 10.0)
    assert isinstance(outcome, Outcome) and outcome.slot == clock.now + 30

"""The error vocabulary is one enum, each member placed once: what a failure does to the attempt
and to the receiver's circuit follows from its nature, and a name this version does not know is
never blamed on the receiver."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest

from oxoflow_notify.outbound.delivery import Outcome
from oxoflow_notify.outbound.failures import Failure, Nature, nature
from oxoflow_notify.pipeline.answers import Kind, Policy, decide

POLICY = Policy((5, 300), jitter=0.0, throttle_floor=60.0, claim_wait=60.0, rand=lambda: 0.5)
NOW = 1_000_000_000.0
# What each nature means for attempt 1 of 3: the decision's kind, and what the circuit breaker learns.
EXPECTED = {
    Nature.DONE: (Kind.ALREADY_DELIVERED, None),
    Nature.HOLD: (Kind.HELD, None),
    Nature.REFUSED: (Kind.GIVE_UP, None),
    Nature.OURS: (Kind.RETRY, None),
    Nature.TIMEOUT: (Kind.RETRY, True),
    Nature.RECEIVER: (Kind.RETRY, True),
}


@pytest.mark.parametrize("failure", list(Failure))
def test_every_failure_is_decided_by_its_nature(failure: Failure) -> None:
    # given an attempt that failed this way, without an answer
    outcome = Outcome(None, failure, 3.0)
    # when it is decided
    decision = decide("json", outcome, 1, 3, POLICY, NOW)
    # then the kind and the breaker's lesson are those of its nature
    assert (decision.kind, decision.endpoint_failed) == EXPECTED[nature(failure)]


def test_a_timeout_waits_at_least_the_throttle_floor_and_a_refused_connection_does_not() -> None:
    # given a read timeout and a refused connection on attempt 1 (schedule: 5 s)
    timeout = decide("json", Outcome(None, Failure.READ_TIMEOUT, 3.0), 1, 3, POLICY, NOW)
    refused = decide("json", Outcome(None, Failure.CONNECTION_REFUSED, 3.0), 1, 3, POLICY, NOW)
    # then the timeout waits the floor (60 s), the refusal the schedule's 5 s
    assert (timeout.wait, refused.wait) == (60.0, 5.0)


def test_the_values_are_the_names_logs_letters_and_the_hand_off_log_always_carried() -> None:
    # given the enum, then its values are the short class names (a dead letter's "error" field)
    assert Failure.IN_PROGRESS.value == "delivery_in_progress"
    assert json.dumps({"error": Failure.READ_TIMEOUT}) == '{"error": "read_timeout"}'
    assert len({f.value for f in Failure}) == len(Failure)


def test_an_outcome_comes_back_from_its_record_typed_and_an_unknown_name_is_ours_not_the_receivers() -> None:
    # given an outcome recorded as JSON (the hand-off log), and one written by a version with a name we do not know
    recorded = json.loads(json.dumps(asdict(Outcome(503, Failure.CONNECTION_RESET, 12.5, snippet="busy"))))
    future = {**recorded, "status": None, "error": "quantum_decoherence", "a_field_we_do_not_have": 1}
    # when they are read back
    back, odd = Outcome.from_record(recorded), Outcome.from_record(future)
    # then the first is the same outcome with a typed failure; the second is our surprise, retried, not blamed
    assert back == Outcome(503, Failure.CONNECTION_RESET, 12.5, snippet="busy") and isinstance(back.error, Failure)
    assert odd.error is Failure.REQUEST_ERROR
    decision = decide("json", odd, 1, 3, POLICY, NOW)
    assert decision.kind is Kind.RETRY and decision.endpoint_failed is None

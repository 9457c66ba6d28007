"""The soak's accounting of repeats (scripts/soak.py): each repeat a receiver saw is put down to the
cause docs/operations.md lists, from what the receiver got and what our side saw of each POST.

Issue #20: a digest's attempt 1 posted twice, both answered 2xx, was counted as "other" because our
side kept only the last outcome of each attempt: the first POST's timeout (its 2xx came late) was
overwritten by the second POST's 2xx, and the late 2xx behind the repeat was never seen."""

from __future__ import annotations

from types import SimpleNamespace
from typing import cast

from soak import CRASH, LATE, OTHER, Tally, seen_by_receivers

from oxoflow_notify.outbound.delivery import Outcome
from oxoflow_notify.outbound.failures import Failure
from oxolocal.receivers import Received, Receiver

DELIVERY = "75fcee4a-5dc6-5f0a-af21-cdfeb32391e8"
TIMED_OUT, OK = Outcome(None, Failure.READ_TIMEOUT, 150.0), Outcome(200, None, 3.0)


def receiver_that_got(*answers: tuple[str, int]) -> Receiver:
    """A receiver's log: the delivery's attempts, in the order they arrived, and what it answered."""
    requests = [
        Received("POST", "/hook", {"X-OxoFlow-Delivery": DELIVERY, "X-OxoFlow-Attempt": attempt}, b"{}", float(n), answered)
        for n, (attempt, answered) in enumerate(answers)
    ]
    return cast(Receiver, SimpleNamespace(requests=requests))


def test_attempt_1_posted_twice_after_a_late_2xx_is_counted_as_the_late_2xx() -> None:
    # given a receiver that answered attempt 1 twice with 2xx, while our side saw a timeout, then a 2xx
    receiver = receiver_that_got(("1", 200), ("1", 200))
    tally = Tally(seen_by_us={(DELIVERY, "1"): [TIMED_OUT, OK]})
    # when the soak accounts for it
    seen = seen_by_receivers([receiver], tally)
    # then the repeat is the listed late 2xx, not an unexplained one
    assert seen.repeats == {LATE: 1} and seen.unexplained == []
    assert seen.delivered[DELIVERY] == 2


def test_attempt_1_posted_twice_with_both_2xx_seen_by_us_is_still_unexplained() -> None:
    # given the same two 2xx at the receiver, but our side saw both (no late answer, no crash, no failed record)
    receiver = receiver_that_got(("1", 200), ("1", 200))
    tally = Tally(seen_by_us={(DELIVERY, "1"): [OK, OK]})
    # then the repeat has no listed cause, and the soak names the delivery
    seen = seen_by_receivers([receiver], tally)
    assert seen.repeats == {OTHER: 1} and seen.unexplained == [DELIVERY]


def test_a_crash_before_the_record_still_comes_first() -> None:
    # given attempt 1 posted, answered 2xx and seen, then its run crashed before the record; the re-run posted it again
    receiver = receiver_that_got(("1", 200), ("1", 200))
    tally = Tally(seen_by_us={(DELIVERY, "1"): [OK, OK]}, crashed_attempts={(DELIVERY, "1")})
    # then the repeat is put down to the crash
    assert seen_by_receivers([receiver], tally).repeats == {CRASH: 1}

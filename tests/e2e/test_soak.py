"""The fault soak, bounded for CI: 250 events x 3 webhooks, ~30% receiver faults, injected crashes;
then a smaller run with the functions' DynamoDB calls throttled and timed out as well.

Sizes chosen so `make test` stays within 5 minutes on 2 cores: 250 events still meet about 280
faults and 30 crashes (every path: late 2xx, crash before record, retries to exhaustion), and 100
under DynamoDB faults about 200 failed calls across the ledger, hand-off log, windows and slots.
`make soak` runs the full sizes (5,000; 1,000; 100 of 256 KiB)."""

from __future__ import annotations

import os
from typing import Any

import pytest
from soak import CRASH, LATE, OTHER, UNMARKED, UNRECORDED, Result, run


def test_under_faults_and_crashes_every_pair_is_delivered_or_dead_lettered(capsys: pytest.CaptureFixture[str]) -> None:
    result = soaked(capsys, events=250, fault_rate=0.3, crash_rate=0.03, seed=11)
    # the faults and crashes really happened
    assert result.faults_injected > 150 and result.crashes_injected > 10
    # every pair is accounted for: received with a valid signature, or dead-lettered with a reason
    assert result.pairs == 750 and result.lost == 0
    assert result.delivered + result.dead_lettered == result.pairs
    assert result.bad_signatures == 0
    assert set(result.reasons) <= {"retries_exhausted", "lambda_on_failure"}
    # the ledger stopped re-runs from posting again; a receiver saw a delivery again only in the
    # two windows no sender can close: a crash between its answer and our record, or a 2xx that
    # arrived after we stopped waiting for it
    assert result.reposts_stopped > 0
    assert result.repeats.get(OTHER, 0) == 0, result.repeats
    assert result.repeats.get(CRASH, 0) > 0 and result.repeats.get(LATE, 0) > 0
    # and the circuit breaker never held these mostly healthy receivers: about one queue send per failure
    assert result.queue_sends < result.pairs


def test_under_dynamodb_faults_nothing_is_lost_and_every_repeat_has_a_listed_cause(capsys: pytest.CaptureFixture[str]) -> None:
    # given the issue's hostile read: 8 % of the functions' DynamoDB calls throttled, 4 % timed out,
    # on top of the receivers' faults and the crashes; one webhook digests, one is rate-limited
    result = soaked(capsys, events=100, fault_rate=0.3, crash_rate=0.03, seed=5, dynamodb_faults=(0.08, 0.04))
    # the faults really happened, in the ledger, hand-off log, windows and slots alike
    assert sum(result.dynamodb_faults.values()) > 100 and result.digests > 0
    assert set(result.dynamodb_users) >= {"ledger", "hand-off log", "digest windows", "rate-limit slots"}
    # then every pair is accounted for: received with a valid signature (a digest's events by the
    # digest that lists them, each in one digest only), or dead-lettered with a reason
    assert result.pairs == 300 and result.lost == 0
    assert result.delivered + result.dead_lettered == result.pairs
    assert result.bad_signatures == 0 and result.double_counted == 0
    # (a message the retry function failed on at each of its receives, by the faults, dead-lettered with them)
    assert set(result.reasons) <= {"retries_exhausted", "lambda_on_failure", "retry_faulted"}
    # and a receiver saw a repeat only in the cases docs/operations.md lists
    assert set(result.repeats) <= {CRASH, LATE, UNRECORDED, UNMARKED}, result.repeats
    assert result.passed


def soaked(capsys: pytest.CaptureFixture[str], **options: Any) -> Result:
    """One soak run, its table on the console; the environment as it was before."""
    saved = dict(os.environ)  # the soak runs its own moto server and points boto3 at it
    try:
        result = run(**options)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    with capsys.disabled():
        print("\n" + result.table())
    return result

"""The fault soak, bounded for CI: 500 events x 3 webhooks, ~30% receiver faults, injected crashes."""

from __future__ import annotations

import os

import pytest
from soak import CRASH, LATE, OTHER, run


def test_under_faults_and_crashes_every_pair_is_delivered_or_dead_lettered(capsys: pytest.CaptureFixture[str]) -> None:
    saved = dict(os.environ)  # the soak runs its own moto server and points boto3 at it
    try:
        result = run(events=500, fault_rate=0.3, crash_rate=0.03, seed=11)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    with capsys.disabled():
        print("\n" + result.table())
    # the faults and crashes really happened
    assert result.faults_injected > 300 and result.crashes_injected > 10
    # every pair is accounted for: received with a valid signature, or dead-lettered with a reason
    assert result.pairs == 1500 and result.lost == 0
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

"""Digest windows and rate-limit slots by their rules (memory stores), and the two config keys."""

from __future__ import annotations

import pytest

from oxoflow_notify.config import DEFAULT_RATE_LIMITS
from oxoflow_notify.config.parse import parse_config
from oxoflow_notify.config.webhook_values import parse_duration
from oxoflow_notify.inbound.digests import digest_from_payload
from oxoflow_notify.pipeline import digest as digest_limits
from oxoflow_notify.pipeline.digest import (
    KEEP_FAILED,
    KEEP_OTHER,
    WINDOW_BYTES,
    digest_delivery_id,
    group_of,
    kept_form,
    size_of,
)
from oxoflow_notify.pipeline.pacing import HORIZON, MemoryPacer
from oxoflow_notify.pipeline.windows import ADDED, DUPLICATE, OPENED, Group, MemoryWindowStore
from tests.conftest import message

SOURCE = "workflows/variant-calling.oxoflow"


def group(run_id: str | None = "r1", seconds: float = 120) -> Group:
    return Group(group_of(SOURCE, "wh_1", "variant-calling", run_id), SOURCE, "wh_1", "variant-calling", run_id, seconds)


def failed(n: int, stderr: str = "boom") -> dict[str, object]:
    return {**message("rule-failed"), "rule": f"r{n}", "id": f"e{n}", "details": {"exit_code": 1, "stderr": stderr}}


class Closes:
    def __init__(self) -> None:
        self.queued: list[tuple[int, float]] = []
        self.closed_by: list[str] = []

    def __call__(self, g: Group, window: int, delay: float, token: str | None, closed_by: str) -> None:
        self.queued.append((window, delay))
        self.closed_by.append(closed_by)


def test_the_first_event_opens_a_window_and_queues_its_close_the_rest_are_added_once() -> None:
    # given an empty store
    store, closes = MemoryWindowStore(), Closes()
    # when three events arrive, one of them twice
    results = [store.add(group(), failed(n), f"d{n}", 1000.0, closes) for n in (1, 2, 2, 3)]
    # then the first opened window 1 (its close queued for the digest's duration), the copy was a duplicate
    assert results == [OPENED, ADDED, DUPLICATE, ADDED]
    assert closes.queued == [(1, 120)]
    closing = store.close(group(), 1, 1100.0, "timer")
    digest = closing.digest
    assert closing.newly and digest is not None and digest.total == 3 and digest.counts == {"RuleFailed": 3}
    assert digest.id == digest_delivery_id(group().key, 1, 1000.0)


def test_a_closed_window_is_read_again_but_only_closed_once_and_the_next_event_opens_window_2() -> None:
    store, closes = MemoryWindowStore(), Closes()
    store.add(group(), failed(1), "d1", 1000.0, closes)
    first, again = store.close(group(), 1, 1100.0, "workflow_end"), store.close(group(), 1, 1200.0, "timer")
    assert first.newly and not again.newly and first.digest == again.digest and first.token == again.token
    assert again.digest is not None and again.digest.closed_by == "workflow_end"
    assert store.add(group(), failed(2), "d2", 1300.0, closes) == OPENED and closes.queued[-1] == (2, 120)


def test_a_window_keeps_the_first_failed_events_in_full_and_counts_the_rest() -> None:
    store, closes = MemoryWindowStore(), Closes()
    for n in range(KEEP_FAILED + 5):
        store.add(group(), failed(n), f"d{n}", 1000.0, closes)
    digest = store.close(group(), 1, 1001.0, "timer").digest
    assert digest is not None and digest.total == KEEP_FAILED + 5 and len(digest.events) == KEEP_FAILED and digest.left_out == 5


def test_the_kept_events_of_a_window_always_fit_its_bytes() -> None:
    # (so with the shipped limits a window never closes early for size: see the next test)
    big = failed(0, "x" * 100_000)
    assert (KEEP_FAILED + KEEP_OTHER) * size_of(kept_form(big)) <= WINDOW_BYTES


def test_a_window_that_would_outgrow_its_bytes_closes_at_once_and_the_event_opens_the_next(monkeypatch: pytest.MonkeyPatch) -> None:
    # given a window budget of three big events
    monkeypatch.setattr(digest_limits, "WINDOW_BYTES", 3 * size_of(kept_form(failed(0, "x" * 30_000))))
    store, closes = MemoryWindowStore(), Closes()
    for n in range(4):
        store.add(group(), failed(n, "x" * 30_000), f"d{n}", 1000.0, closes)
    # then the fourth closed window 1 at once ("full") and opened window 2
    assert closes.queued == [(1, 120), (1, 0), (2, 120)] and closes.closed_by[1] == "full"
    one, two = store.close(group(), 1, 1001.0, "full").digest, store.close(group(), 2, 1001.0, "timer").digest
    assert one is not None and two is not None and (one.total, two.total) == (3, 1)


def test_an_open_window_whose_close_was_lost_is_closed_by_the_next_event() -> None:
    # given window 1, opened at 1000 with a 2-minute digest, whose close never came
    store, closes = MemoryWindowStore(), Closes()
    store.add(group(), failed(1), "d1", 1000.0, closes)
    # when an event arrives well past its duration
    assert store.add(group(), failed(2), "d2", 1000.0 + 120 + 61, closes) == OPENED
    # then window 1's close is queued now and the event opened window 2
    assert closes.queued == [(1, 120), (1, 0), (2, 120)]


def test_an_event_too_large_to_keep_whole_is_kept_trimmed_with_its_stderr_tail() -> None:
    event = failed(1, "head\n" + "y" * 100_000 + "\nthe error")
    kept = kept_form(event)
    assert kept["trimmed"] is True and size_of(kept) <= 8_000 and str(kept["details"]["stderr"]).endswith("the error")


def test_an_event_whose_details_are_huge_structures_is_kept_small() -> None:
    event = {**failed(1), "details": {"exit_code": {"nested": "z" * 100_000}, "duration_s": ["y" * 100_000]}}
    assert size_of(kept_form(event)) <= 8_000


def test_runs_and_webhooks_have_their_own_groups() -> None:
    assert len({group("a").key, group("b").key, group(None).key, group_of(SOURCE, "wh_2", "variant-calling", "a")}) == 4


def test_a_digest_survives_its_payload() -> None:
    store, closes = MemoryWindowStore(), Closes()
    store.add(group(), failed(1), "d1", 1000.0, closes)
    digest = store.close(group(), 1, 1060.5, "timer").digest
    assert digest is not None and digest_from_payload(digest.to_payload()) == digest


def test_a_close_that_comes_before_its_window_exists_says_so() -> None:
    store, closes = MemoryWindowStore(), Closes()
    early = store.close(group(), 1, 1000.0, "timer")
    assert early.digest is None and early.not_yet
    store.add(group(), failed(1), "d1", 1000.0, closes)
    assert store.close(group(), 1, 1200.0, "timer").digest is not None


# -- rate-limit slots ----------------------------------------------------------------------


def test_slots_are_one_interval_apart_and_an_idle_target_goes_at_once() -> None:
    pacer = MemoryPacer()
    slots = [pacer.reserve("t", 5, 100.0).at for _ in range(4)]
    assert slots == pytest.approx([100.0, 100.22, 100.44, 100.66])  # 1/rate plus the 10 % jitter margin
    assert pacer.reserve("t", 5, 200.0).at == 200.0  # idle since: at once
    assert pacer.reserve("other", 5, 100.0).at == 100.0  # targets are separate


def test_no_slot_is_reserved_beyond_the_horizon() -> None:
    pacer = MemoryPacer()
    pacer.pause("t", 100.0 + HORIZON + 50)
    slot = pacer.reserve("t", 1, 100.0)
    assert slot.at is None and slot.free_at == pytest.approx(150.0)


def test_a_pause_moves_the_next_slot_past_it_and_never_back() -> None:
    pacer = MemoryPacer()
    pacer.pause("t", 130.0)
    pacer.pause("t", 110.0)
    assert pacer.reserve("t", 1, 100.0).at == 130.0 and pacer.paused_until("t") == 130.0


# -- the keys ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("2m", 120), ("90s", 90), ("1m30s", 90), ("1h", 3600), ("15 min", 900), (45, 45), ("0.5s", 0.5), ("5d", 432_000), ("1d12h", 129_600)],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "2", "2 minutes", "m", "-5s", True, "1w", "d", "9" * 40])
def test_what_is_not_a_duration(text: object) -> None:
    assert parse_duration(text) is None


def config(entry: str) -> object:
    return parse_config(f'[[webhooks]]\nurl = "https://hooks.example.org/x"\n{entry}\n', SOURCE)


def test_digest_and_rate_limit_are_read_and_the_format_gives_the_default_rate() -> None:
    parsed = parse_config('[[webhooks]]\nurl = "https://hooks.slack.com/x"\nformat = "slack"\ndigest = "2m"\n', SOURCE)
    (webhook,) = parsed.webhooks
    assert webhook.digest == 120 and webhook.rate_limit is None and webhook.pace == DEFAULT_RATE_LIMITS["slack"] == 1
    (plain,) = parse_config('[[webhooks]]\nurl = "https://x.example/h"\nrate_limit = 0\n', SOURCE).webhooks
    assert plain.pace == 0 and plain.digest is None


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ('digest = "20m"', "key 'digest' must be from 1s to 15m"),
        ('digest = "0.5s"', "key 'digest' must be from 1s to 15m"),
        ('digest = "2 minutes"', "key 'digest': '2 minutes' is not a duration: write 90s, 2m or 1m30s"),
        ("rate_limit = -1", "key 'rate_limit' must be a number of POSTs per second"),
        ('rate_limit = "5"', "key 'rate_limit' must be a number of POSTs per second"),
        ("rate_limit = 1000", "key 'rate_limit' must be a number of POSTs per second"),
    ],
)
def test_a_wrong_digest_or_rate_limit_names_the_key(entry: str, says: str) -> None:
    parsed = config(entry)
    (problem,) = parsed.problems  # type: ignore[attr-defined]
    assert says in problem.message and "(line 3)" in problem.message  # the key's own line


def test_a_cold_start_imports_no_digest_or_rate_limit_code_until_a_webhook_needs_it() -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path

    # given a dispatcher built as the handler builds it (a ledger table configured)
    root = Path(__file__).resolve().parents[2]
    code = (
        "import sys\n"
        "from oxoflow_notify.wiring import build_notifier\n"
        "n = build_notifier({'CONFIG_BUCKET': 'b', 'RETRY_QUEUE_URL': 'q', 'DEAD_LETTER_QUEUE_URL': 'd', 'LEDGER_TABLE': 't'})\n"
        "lazy = ('pipeline.digest', 'pipeline.windows', 'pipeline.pacing', 'aws.windows_table', 'aws.pacing_table')\n"
        "assert not [m for m in lazy if 'oxoflow_notify.' + m in sys.modules], 'imported at build'\n"
        "n.windows.store.get()\n"  # the first use builds the store and imports its module
        "assert 'oxoflow_notify.aws.windows_table' in sys.modules and 'oxoflow_notify.pipeline.windows' in sys.modules\n"
        "assert 'oxoflow_notify.pipeline.pacing' not in sys.modules and 'oxoflow_notify.aws.pacing_table' not in sys.modules\n"
    )
    env = {**os.environ, "PYTHONPATH": str(root / "layers" / "notify"), "AWS_DEFAULT_REGION": "us-east-1"}
    # then the digest windows and the rate limit's slots load only on first use
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr

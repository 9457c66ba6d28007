"""What a warm container remembers is bounded: the config cache and the breaker's circuits keep the
least recently used out beyond their bound, and a retry message due beyond any wait of ours is refused."""

from __future__ import annotations

import io
from typing import Any

from botocore.exceptions import ClientError

from oxoflow_notify.aws.config_store import MAX_CACHED_CONFIGS, ConfigStore
from oxoflow_notify.outbound.breaker import MAX_CIRCUITS, CircuitBreaker, circuit_of
from oxoflow_notify.pipeline.retry import DEFAULT_RETRY_SCHEDULE, far_future


class CountingS3:
    """Every workflow has a one-webhook file; counts the GetObject calls."""

    def __init__(self) -> None:
        self.calls = 0

    def get_object(self, Bucket: str, Key: str, **_: Any) -> dict[str, Any]:
        self.calls += 1
        if Key.startswith("workflows/_default"):
            raise ClientError({"Error": {"Code": "NoSuchKey", "Message": "none"}}, "GetObject")
        body = b'[[webhooks]]\nurl = "https://hooks.example.org/a"\n'
        return {"Body": io.BytesIO(body), "ContentLength": len(body), "ETag": '"e"'}


def test_the_config_cache_keeps_at_most_its_bound_dropping_the_least_recently_used() -> None:
    # given a store whose files are cached for an hour
    s3 = CountingS3()
    store = ConfigStore(s3, "bucket", ttl=3600, clock=lambda: 0.0, max_entries=3)
    for name in ("a", "b", "c"):
        store.load(f"workflows/{name}.oxoflow")
    store.load("workflows/a.oxoflow")  # a is used again: b is now the least recently used
    assert s3.calls == 3
    # when a fourth file is read
    store.load("workflows/d.oxoflow")
    # then b was dropped (read again), while a and d are still cached
    before = s3.calls
    store.load("workflows/a.oxoflow")
    store.load("workflows/d.oxoflow")
    assert s3.calls == before
    store.load("workflows/b.oxoflow")
    assert s3.calls == before + 1


def test_the_config_cache_default_bound_holds_past_a_thousand_workflows() -> None:
    store = ConfigStore(CountingS3(), "bucket", ttl=3600, clock=lambda: 0.0)
    for n in range(MAX_CACHED_CONFIGS + 50):
        store.configs_for(f"wf-{n}")
    assert MAX_CACHED_CONFIGS == 1_000 and len(store._cache) == MAX_CACHED_CONFIGS


def open_circuit(breaker: CircuitBreaker, circuit: str) -> None:
    for _ in range(breaker.window):
        breaker.record(circuit, failed=True)


def test_the_breaker_forgets_the_least_recently_used_circuit_beyond_its_bound() -> None:
    # given two open circuits in a breaker that remembers three
    breaker = CircuitBreaker(threshold=2, cooldown=30, clock=lambda: 0.0, max_circuits=3)
    old, recent = circuit_of("workflows/a.oxoflow", "https://a.example.org/x"), circuit_of("workflows/b.oxoflow", "https://b.example.org/x")
    open_circuit(breaker, old)
    open_circuit(breaker, recent)
    breaker.blocked_for(recent)  # used again
    # when two more circuits are recorded
    breaker.record("c3", failed=False)
    breaker.record("c4", failed=False)
    # then the least recently used (old) is forgotten, and the recently used one is still open
    assert len(breaker) == 3
    assert breaker.blocked_for(old) == 0 and breaker.blocked_for(recent) == 30


def test_the_breaker_default_bound_holds_past_ten_thousand_circuits() -> None:
    breaker = CircuitBreaker()
    for n in range(MAX_CIRCUITS + 100):
        breaker.record(f"circuit-{n}", failed=n % 2 == 0)
    assert MAX_CIRCUITS == 10_000 and len(breaker) == MAX_CIRCUITS
    assert all(len(state) <= MAX_CIRCUITS for state in (breaker._streak, breaker._recent, breaker._open_until, breaker._trial))


def test_a_not_before_is_far_future_beyond_the_longest_wait_and_a_margin() -> None:
    limit = far_future(DEFAULT_RETRY_SCHEDULE, 0.2)
    assert 36_000 * 1.2 < limit <= 3 * 86_400  # more than the longest jittered wait, a few days at most
    assert far_future((5, 300, 604_800), 0.0) > 604_800  # a schedule's own long wait is never refused

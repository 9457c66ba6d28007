"""The per-endpoint circuit breaker's states."""

from __future__ import annotations

from oxoflow_notify.breaker import CircuitBreaker, endpoint_of


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_the_threshold_closes_after_a_successful_trial() -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=3, cooldown=30, clock=clock)
    key = "https://a.example.org:443"
    for _ in range(2):
        breaker.record(key, failed=True)
    assert breaker.blocked_for(key) == 0
    breaker.record(key, failed=True)
    assert breaker.blocked_for(key) == 30
    clock.now += 29
    assert breaker.blocked_for(key) == 1
    clock.now += 2  # cool-down over: one trial may pass
    assert breaker.blocked_for(key) == 0
    breaker.record(key, failed=True)  # the trial failed: open again at once
    assert breaker.blocked_for(key) == 30
    clock.now += 31
    breaker.record(key, failed=False)  # the next trial succeeded: closed, counting from zero
    breaker.record(key, failed=True)
    assert breaker.blocked_for(key) == 0


def test_endpoints_are_independent_and_never_include_the_path() -> None:
    breaker = CircuitBreaker(threshold=1, cooldown=10, clock=Clock())
    breaker.record(endpoint_of("https://dead.example.org/services/T/B/TOKEN"), failed=True)
    assert breaker.blocked_for(endpoint_of("https://dead.example.org/other")) == 10
    assert breaker.blocked_for(endpoint_of("https://alive.example.org/x")) == 0
    assert endpoint_of("https://dead.example.org/services/T/B/TOKEN") == "https://dead.example.org:443"
    assert endpoint_of("http://127.0.0.1:8080/x") == "http://127.0.0.1:8080"

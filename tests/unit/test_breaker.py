"""The per-target circuit breaker: opens only on a sustained failure, one target at a time."""

from __future__ import annotations

import random

from oxoflow_notify.outbound.breaker import CircuitBreaker, circuit_of, target_of


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_the_threshold_closes_after_a_successful_trial() -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=3, cooldown=30, clock=clock, window=6)
    key = target_of("https://a.example.org/hook")
    for _ in range(2):
        breaker.record(key, failed=True)
    assert breaker.blocked_for(key) == 0
    breaker.record(key, failed=True)
    assert breaker.blocked_for(key) == 30
    clock.now += 29
    assert breaker.blocked_for(key) == 1
    clock.now += 2  # cool-down over: one trial may pass, the others wait for its result
    assert breaker.blocked_for(key) == 0
    assert breaker.blocked_for(key) == 30
    breaker.record(key, failed=True)  # the trial failed: open again at once
    assert breaker.blocked_for(key) == 30
    clock.now += 31
    breaker.record(key, failed=False)  # the next trial succeeded: closed, counting from zero
    breaker.record(key, failed=True)
    assert breaker.blocked_for(key) == 0


def test_a_dead_path_on_a_shared_host_does_not_hold_its_neighbours() -> None:
    # given two Slack webhooks on the same host, one of them dead
    breaker = CircuitBreaker(threshold=1, cooldown=10, clock=Clock(), window=2)
    dead, alive = "https://hooks.slack.com/services/T/B/DEAD", "https://hooks.slack.com/services/T/B/ALIVE"
    # when the dead one fails
    breaker.record(target_of(dead), failed=True)
    breaker.record(target_of(dead), failed=True)
    # then only it is held
    assert breaker.blocked_for(target_of(dead)) == 10
    assert breaker.blocked_for(target_of(alive)) == 0


def test_the_key_names_the_target_without_its_url() -> None:
    key = target_of("https://hooks.slack.com/services/T/B/TOKEN")
    assert "TOKEN" not in key and "slack" not in key and len(key) == 16


def test_a_mostly_healthy_receiver_is_never_held() -> None:
    # given a receiver that fails 30 % of the time, at random, over 2,000 deliveries
    breaker = CircuitBreaker(threshold=5, cooldown=30, clock=Clock())
    key, rng = target_of("https://mostly.example.org/hook"), random.Random(11)
    # then its circuit never opens, although runs of five failures in a row happen
    held = 0
    for _ in range(2000):
        held += breaker.blocked_for(key) > 0
        breaker.record(key, failed=rng.random() < 0.3)
    assert held == 0


def test_a_dead_receiver_is_held_after_a_sustained_failure() -> None:
    breaker = CircuitBreaker(threshold=5, cooldown=30, clock=Clock())
    key = target_of("https://dead.example.org/hook")
    for _ in range(9):
        breaker.record(key, failed=True)
    assert breaker.blocked_for(key) == 0  # five in a row, but too few answers yet to call it sustained
    breaker.record(key, failed=True)
    assert breaker.blocked_for(key) == 30


def test_one_blip_in_a_fresh_container_does_not_open_the_circuit() -> None:
    # given a new container whose first fan-out to a healthy target failed all at once
    breaker = CircuitBreaker(threshold=5, cooldown=30, clock=Clock())
    key = target_of("https://healthy.example.org/hook")
    for _ in range(6):
        breaker.record(key, failed=True)
    # then the target is still called
    assert breaker.blocked_for(key) == 0


def test_each_config_file_has_its_own_circuit_and_trial_for_a_shared_url() -> None:
    # given two teams' files with the same receiver URL, and team A failing until its circuit opens
    clock = Clock()
    breaker = CircuitBreaker(threshold=1, cooldown=10, clock=clock, window=2)
    url = "https://lims.example.org/hook?token=T0KEN"
    team_a, team_b = circuit_of("workflows/team-a.oxoflow", url), circuit_of("workflows/team-b.oxoflow", url)
    breaker.record(team_a, failed=True)
    breaker.record(team_a, failed=True)
    # then only A is held; after the cool-down each team gets its own half-open trial
    assert breaker.blocked_for(team_a) == 10 and breaker.blocked_for(team_b) == 0
    clock.now += 11
    assert breaker.blocked_for(team_a) == 0 and breaker.blocked_for(team_b) == 0
    # and the key names neither the URL nor the file
    assert "T0KEN" not in team_a and "team-a" not in team_a and len(team_a) == 16

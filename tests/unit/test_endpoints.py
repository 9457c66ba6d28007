"""Endpoints that disable themselves, the policy alone: an in-memory store with DynamoDB's
conditional semantics, an injected clock, two instances sharing the store."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import pytest

from oxoflow_notify.config import Webhook
from oxoflow_notify.pipeline.endpoints import NOTICE_LEASE, Endpoints, EndpointState, endpoint_key, fingerprint

HOUR = 3600.0
HOOK = Webhook(id="lims", url="https://lims.example.org/hook", format="json", events=None, secrets=("s",),
               source="workflows/variant-calling.oxoflow", position=0, disable_after=HOUR)  # fmt: skip


class MemoryStore:
    """EndpointStore in memory, each call atomic and conditional as the table's are."""

    def __init__(self) -> None:
        self.items: dict[str, EndpointState] = {}
        self.writes = 0
        self.fail = False

    def states(self, keys: Sequence[str]) -> dict[str, EndpointState]:
        if self.fail:
            raise ConnectionError("throttled")
        return {k: self.items[k] for k in keys if k in self.items}

    def failing(self, key: str, now: float) -> float:
        self.writes += 1
        state = self.items.get(key, EndpointState())
        if state.failing_since is None:
            self.items[key] = dataclasses.replace(state, failing_since=now)
        since = self.items[key].failing_since
        return now if since is None else since

    def recovered(self, key: str) -> bool:
        self.writes += 1
        if key in self.items and self.items[key].disabled_at is not None:
            return False
        self.items.pop(key, None)
        return True

    def disable(self, key: str, now: float, failing_before: float, mark: str) -> bool:
        self.writes += 1
        state = self.items.get(key)
        if state is None or state.disabled_at is not None or state.failing_since is None or state.failing_since > failing_before:
            return False
        self.items[key] = EndpointState(state.failing_since, now, mark)
        return True

    def enable(self, key: str) -> None:
        self.items.pop(key, None)

    def claim_notice(self, key: str, now: float, stale_before: float) -> bool:
        state = self.items.get(key)
        if state is None or state.disabled_at is None or state.notified:
            return False
        if state.notice_claimed is not None and state.notice_claimed >= stale_before:
            return False
        self.items[key] = dataclasses.replace(state, notice_claimed=now)
        return True

    def notice_done(self, key: str, claimed: float, sent: bool) -> None:
        state = self.items.get(key)
        if state is not None and state.notice_claimed == claimed:
            self.items[key] = dataclasses.replace(state, notified=sent, notice_claimed=None)


def instances(store: MemoryStore, n: int = 2) -> tuple[list[Endpoints], list[tuple[str, float]]]:
    told: list[tuple[str, float]] = []
    return [Endpoints(store, lambda w, s, now: told.append((w.id, now))) for _ in range(n)], told


def test_a_webhook_failing_past_its_window_is_disabled_once_across_instances() -> None:
    store = MemoryStore()
    (a, b), told = instances(store)
    # given failures seen by both instances, the first at t=0
    a.learn(HOOK, failed=True, now=0)
    b.learn(HOOK, failed=True, now=10)
    assert a.disabled(HOOK, 20) is None
    # when both see failures past the hour
    a.learn(HOOK, failed=True, now=HOUR + 1)
    b.learn(HOOK, failed=True, now=HOUR + 2)
    # then it is disabled once, with one notice, and each instance finds it disabled once it reads
    assert told == [("lims", HOUR + 1)]
    assert a.disabled(HOOK, HOUR + 3) is not None
    b.refresh([HOOK], HOUR + 100)
    assert b.disabled(HOOK, HOUR + 100) is not None


def test_a_2xx_in_between_starts_the_window_again() -> None:
    store = MemoryStore()
    (a, b), told = instances(store)
    a.learn(HOOK, failed=True, now=0)
    # a 2xx seen by another instance that had read the failing state
    b.refresh([HOOK], 30)
    b.learn(HOOK, failed=False, now=30)
    assert store.items == {}
    # a's cache still says failing since 0: its next failure past the hour must not disable
    a.learn(HOOK, failed=True, now=HOUR + 1)
    assert told == [] and a.disabled(HOOK, HOUR + 2) is None
    # and its next failure starts the window from there (what it had cached was read again)
    a.learn(HOOK, failed=True, now=HOUR + 5)
    assert store.items[endpoint_key(HOOK)].failing_since == HOUR + 5


def test_a_healthy_webhook_costs_no_write_and_disable_after_zero_never_disables() -> None:
    store = MemoryStore()
    (a,), told = instances(store, 1)
    for t in range(100):
        a.learn(HOOK, failed=False, now=t)
    assert store.writes == 0
    never = dataclasses.replace(HOOK, disable_after=0.0)
    for at in (0.0, 10 * HOUR, 100 * HOUR):
        a.learn(never, failed=True, now=at)
    assert told == [] and store.items == {} and a.disabled(never, 100 * HOUR) is None


def test_an_unreachable_store_leaves_every_webhook_enabled() -> None:
    store = MemoryStore()
    (a,), _ = instances(store, 1)
    store.items[endpoint_key(HOOK)] = EndpointState(0, 1, fingerprint(HOOK))
    store.fail = True
    a.refresh([HOOK], 5)
    assert a.disabled(HOOK, 5) is None


def test_a_changed_entry_is_enabled_again_and_an_unchanged_one_stays_disabled() -> None:
    store = MemoryStore()
    (a,), _ = instances(store, 1)
    store.items[endpoint_key(HOOK)] = EndpointState(0, 1, fingerprint(HOOK))
    a.refresh([HOOK], 5)
    assert a.disabled(HOOK, 5) is not None
    moved = dataclasses.replace(HOOK, url="https://lims.example.org/new-hook")
    assert a.disabled(moved, 6) is None and store.items == {}
    # the digest names no value of the entry
    assert "lims.example.org" not in fingerprint(HOOK) and len(fingerprint(HOOK)) == 16


def test_a_2xx_after_another_instance_disabled_it_does_not_keep_posting_to_it() -> None:
    store = MemoryStore()
    (a, b), _ = instances(store)
    a.learn(HOOK, failed=True, now=0)
    b.learn(HOOK, failed=True, now=HOUR + 1)  # b disables it
    # a, which still holds it failing, sees a late 2xx: it cannot clear a disable, and reads again
    a.learn(HOOK, failed=False, now=HOUR + 2)
    a.refresh([HOOK], HOUR + 3)
    assert a.disabled(HOOK, HOUR + 3) is not None


def test_the_digest_is_the_entry_as_written_whatever_its_references_resolve_to() -> None:
    from oxoflow_notify.config.parse import parse_config

    def parsed(url: str) -> Webhook:
        (webhook,) = parse_config(f'[[webhooks]]\nid = "w"\nurl = "{url}"\nsecret = "ssm:/oxoflow-notify/workflows/wf/s"\n'.encode(),
                                  "workflows/wf.oxoflow").webhooks  # fmt: skip
        return webhook

    written = parsed("ssm:/oxoflow-notify/workflows/wf/url")
    resolved = dataclasses.replace(written, url="https://hooks.example.org/T0KEN", secrets=("v4lue",))
    assert fingerprint(resolved) == fingerprint(written) != fingerprint(parsed("ssm:/oxoflow-notify/workflows/wf/other"))


def test_a_notice_that_could_not_be_sent_is_sent_at_the_next_delivery_once() -> None:
    store, told, failures = MemoryStore(), list[float](), [ConnectionError("the queue did not answer")]

    def notice(webhook: Webhook, state: EndpointState, now: float) -> None:
        if failures:
            raise failures.pop()
        told.append(now)

    a, b = Endpoints(store, notice), Endpoints(store, notice)
    a.learn(HOOK, failed=True, now=0)
    a.learn(HOOK, failed=True, now=HOUR + 1)  # disabled; its notice fails
    assert told == [] and store.items[endpoint_key(HOOK)].disabled_at is not None
    # when deliveries to it come, on either instance
    for endpoints, now in ((b, HOUR + 100), (a, HOUR + 200), (b, HOUR + 300)):
        endpoints.refresh([HOOK], now)
        assert endpoints.disabled(HOOK, now) is not None
    # then the notice went out once
    assert told == [HOUR + 100]


class Killed(BaseException):
    """The instance ended from outside (a Lambda timeout): nothing after it runs."""


def test_a_notice_whose_sender_died_after_claiming_it_is_sent_by_another_after_the_lease_once() -> None:
    store, told = MemoryStore(), list[float]()

    def dies(webhook: Webhook, state: EndpointState, now: float) -> None:
        raise Killed

    # given an instance that disabled the webhook and died sending its notice
    a = Endpoints(store, dies)
    a.learn(HOOK, failed=True, now=0)
    with pytest.raises(Killed):
        a.learn(HOOK, failed=True, now=HOUR + 1)
    # when deliveries to it come to other instances, within the claim's lease and after it
    for now in (HOUR + 60, HOUR + 1 + NOTICE_LEASE - 1, HOUR + 2 + NOTICE_LEASE, HOUR + 3 + 2 * NOTICE_LEASE):
        b = Endpoints(store, lambda w, s, now: told.append(now))
        b.refresh([HOOK], now)
        assert b.disabled(HOOK, now) is not None
    # then the notice went out once, at the first delivery after the lease, and is recorded as sent
    assert told == [HOUR + 2 + NOTICE_LEASE]
    assert store.items[endpoint_key(HOOK)].notified and store.items[endpoint_key(HOOK)].notice_claimed is None


def test_a_notice_that_fails_leaves_the_webhook_disabled_for_the_rest_of_the_batch() -> None:
    # given a disabled webhook whose notice was never sent, and a notice that fails (the queue throttled)
    store = MemoryStore()
    store.items[endpoint_key(HOOK)] = EndpointState(0.0, HOUR + 1, fingerprint(HOOK))
    tries: list[float] = []

    def throttled(webhook: Webhook, state: EndpointState, now: float) -> None:
        tries.append(now)
        raise ConnectionError("throttled")

    endpoints = Endpoints(store, throttled)
    # when one batch (its states read once) has three deliveries for it
    endpoints.refresh([HOOK], HOUR + 100)
    states = [endpoints.disabled(HOOK, HOUR + 100 + i) for i in range(3)]
    # then each is refused as disabled (none is posted), the notice was tried once, and its claim given back
    assert all(state is not None for state in states) and tries == [HOUR + 100]
    assert store.items[endpoint_key(HOOK)].notice_claimed is None and not store.items[endpoint_key(HOOK)].notified


def test_turning_disabling_off_clears_a_disable_so_turning_it_on_again_starts_afresh() -> None:
    store = MemoryStore()
    (a,), _ = instances(store, 1)
    # given a webhook disabled after an hour of failures
    a.learn(HOOK, failed=True, now=0)
    a.learn(HOOK, failed=True, now=HOUR + 1)
    assert a.disabled(HOOK, HOUR + 2) is not None
    # when its owner sets disable_after = "0", and another container (which never saw it) delivers next
    never = dataclasses.replace(HOOK, disable_after=0.0)
    (b,), _ = instances(store, 1)
    b.refresh([never], HOUR + 3)
    # then it is delivered to again, and its record is gone
    assert b.disabled(never, HOUR + 3) is None and store.items == {}
    a.refresh([never], HOUR + 3 + a.max_age)
    # and when disabling is turned on again, nothing stale comes back: a fresh failing streak is needed
    a.refresh([HOOK], 2 * HOUR)
    assert a.disabled(HOOK, 2 * HOUR) is None
    a.learn(HOOK, failed=True, now=2 * HOUR)
    assert a.disabled(HOOK, 2 * HOUR + 1) is None and store.items[endpoint_key(HOOK)].failing_since == 2 * HOUR

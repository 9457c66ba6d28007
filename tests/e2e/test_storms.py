"""A failure storm end to end: published to SNS at once, carried by concurrent dispatchers over moto
server's real HTTP, delivered to receivers that enforce a rate the way Slack does."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from oxoflow_notify.pipeline.notifier import Published
from oxoflow_notify.wiring import build_notifier
from oxolocal.receivers import Receiver, slack_like
from oxolocal.stack import Stack

INSTANCES = 4  # dispatch function instances running at once, each with its own clients and caches
# The receivers here count arrivals on the wall clock, and a loaded 2-core machine can delay one
# sending thread by a second or more, bunching what was sent on time. So they refuse only what no
# pacing could produce: LOADED_MARGIN arrivals in a second beyond the limit (about 2 s of delay at
# 5/s). Unpaced, the storm arrives in a second or two and is refused; the exact limit in any
# sliding second, with skewed clocks and network jitter, is proved on simulated clocks in
# tests/unit/test_pacing.py.
LOADED_MARGIN = 10


def storm(stack: Stack, rules: int, run_id: str = "run-storm") -> None:
    """Publish ``rules`` RuleFailed events of one run to the topic at once."""
    for n in range(rules):
        stack.publish(
            {
                "event": "RuleFailed",
                "workflow": "wgs",
                "run_id": run_id,
                "rule": f"call_variants_{n:03d}",
                "details": {"exit_code": 2, "stderr": f"[E::bwa_idx_load] fail to locate the index files ({n})"},
            }
        )


def carry_concurrently(stack: Stack) -> list[dict[str, Any]]:
    """Everything on the topic, handed to INSTANCES dispatchers at once (as Lambda scales out)."""
    envelopes: list[dict[str, Any]] = []
    while batch := stack.receive(stack.tap_url):
        for m in batch:
            envelopes.append(json.loads(m["Body"]))
            stack.sqs.delete_message(QueueUrl=stack.tap_url, ReceiptHandle=m["ReceiptHandle"])
    env = stack.function_env("DispatchFunction")
    instances = [build_notifier(env) for _ in range(INSTANCES)]
    reports: list[dict[str, Any]] = []
    failures: list[BaseException] = []

    def run(index: int) -> None:
        for envelope in envelopes[index::INSTANCES]:
            stamp = datetime.fromisoformat(envelope["Timestamp"].replace("Z", "+00:00")).astimezone(UTC)
            try:
                reports.append(instances[index].dispatch([Published(envelope["Message"], envelope["MessageId"], stamp)]).as_dict())
            except BaseException as exc:  # noqa: BLE001 - reported below
                failures.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(INSTANCES)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    return reports


def test_60_events_at_once_to_a_webhook_limited_to_5_a_second_all_arrive_never_faster_and_never_429(
    stack: Stack, receivers: Callable[..., Receiver]
) -> None:
    # given a receiver that answers 429 past 5 requests in any second (plus the margin), and rate_limit = 5
    hook = receivers(slack_like(5, burst=LOADED_MARGIN), "limited")
    stack.put_config("wgs", f'[[webhooks]]\nurl = "{hook.url}"\nrate_limit = 5\n')
    # when 60 RuleFailed events are published at once and four dispatchers take them (12 s at the
    # limit: most are held in the retry queue for their slots; 60 keeps `make test` within 5 minutes)
    storm(stack, 60)
    reports = carry_concurrently(stack)
    stack.drain_retries(until_empty=240)
    # then every one arrived once and none was refused
    assert len(reports) == 60
    assert len(hook.successes()) == 60 and [r for r in hook.requests if r.answered != 200] == []
    assert len({r.header("X-OxoFlow-Delivery") for r in hook.requests}) == 60
    assert stack.drain(stack.dead_letter_queue_url) == []


def test_with_a_digest_as_well_the_same_storm_arrives_as_a_handful_of_messages(stack: Stack, receivers: Callable[..., Receiver]) -> None:
    # given Slack's own rate (about 1 a second) enforced, and a webhook with digest and rate_limit
    hook = receivers(slack_like(1, burst=LOADED_MARGIN), "slack-like")
    stack.put_config("wgs", f'[[webhooks]]\nurl = "{hook.url}"\ndigest = "5s"\nrate_limit = 1\n')
    # when the same storm is published and carried by four dispatchers at once
    storm(stack, 200)
    reports = carry_concurrently(stack)
    stack.drain_retries(until_empty=120)
    # then a handful of digests arrived, none refused, counting the 200 events exactly once
    bodies = [json.loads(r.body) for r in hook.requests]
    assert sum(r["digested"] for r in reports) == 200
    assert 1 <= len(bodies) <= 6 and all(r.answered == 200 for r in hook.requests)
    assert {b["event"] for b in bodies} == {"Digest"} and sum(b["total"] for b in bodies) == 200

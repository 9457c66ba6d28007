"""Endpoints that disable themselves: a webhook with no 2xx for its disable_after while its
deliveries kept failing is disabled, exactly once, with one notice; its deliveries are then
dead-lettered endpoint_disabled; a changed entry (or `endpoints enable`) enables it again.
An injected clock stands in for the days: nothing here waits."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from oxoflow_notify.aws.endpoints_table import DynamoEndpointStore
from oxoflow_notify.pipeline.endpoints import NOTICE_LEASE
from oxoflow_notify.tools.replay import Filters, replay
from oxolocal.receivers import Receiver, always, ok
from oxolocal.stack import Stack
from tests.conftest import message

T0 = 1_900_000_000.0
HOUR = 3600.0


def config(lab_url: str, ops_url: str) -> str:
    return ('[workflow]\nname = "variant-calling"\n\n'
            f'[[webhooks]]\nid = "lab"\nurl = "{lab_url}"\nmax_attempts = 1\ndisable_after = "1h"\n\n'
            f'[[webhooks]]\nid = "ops"\nurl = "{ops_url}"\nevents = ["WebhookDisabled"]\n')  # fmt: skip


def sns(n: int) -> dict[str, Any]:
    body = {**message("rule-failed"), "rule": f"rule_{n}", "id": f"evt-{n}"}
    return {"Records": [{"EventSource": "aws:sns", "Sns": {"MessageId": f"m-{n}", "Message": json.dumps(body),
                                                           "Timestamp": "2030-03-17T17:46:40.000Z", "MessageAttributes": {}}}]}  # fmt: skip


def at(stack: Stack, *functions: str) -> Callable[[float], None]:
    """Set the functions' clocks: the notifier's (the endpoints', the letters') and the config cache's."""
    for f in functions:
        stack.handler(f)
    notifiers = [stack.modules[f].notifier for f in functions]

    def set_to(now: float) -> None:
        for n in notifiers:
            n.clock = n.store.clock = lambda now=now: now

    return set_to


def alarm_queue(stack: Stack) -> str:
    """A queue subscribed to the stack's alarm topic, as an operator's e-mail would be."""
    url: str = stack.sqs.create_queue(QueueName="alarm-tap")["QueueUrl"]
    arn = stack.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    stack.sns.subscribe(TopicArn=stack.physical["AlarmTopic"]["Ref"], Protocol="sqs", Endpoint=arn,
                        Attributes={"RawMessageDelivery": "true"})  # fmt: skip
    return url


def test_a_webhook_failing_past_its_disable_after_is_disabled_once_with_one_notice(
    stack: Stack, receivers: Callable[..., Receiver]
) -> None:
    # given "lab" failing (HTTP 500) with disable_after = 1h, and "ops" subscribed to WebhookDisabled
    lab, ops = receivers(always(500)), receivers(ok())
    stack.put_config("variant-calling", config(lab.url, ops.url))
    alarms = alarm_queue(stack)
    clock = at(stack, "DispatchFunction", "RetryFunction")
    # when lab fails at T0 and 30 minutes later, it is failing but still enabled
    for n, now in enumerate((T0, T0 + 0.5 * HOUR)):
        clock(now)
        stack.invoke("DispatchFunction", sns(n))
    assert len(lab.requests) == 2 and stack.drain(stack.retry_queue_url) == []
    # when it fails again past the hour, it is disabled by that failure
    clock(T0 + HOUR + 60)
    stack.invoke("DispatchFunction", sns(2))
    # and the next delivery is not posted: it is dead-lettered endpoint_disabled, naming the way back
    clock(T0 + HOUR + 120)
    stack.invoke("DispatchFunction", sns(3))
    assert len(lab.requests) == 3
    letters = stack.drain(stack.dead_letter_queue_url)
    assert [x["reason_code"] for x in letters] == ["retries_exhausted"] * 3 + ["endpoint_disabled"]
    assert "endpoints enable lab" in letters[-1]["reason"] and lab.url not in json.dumps(letters)
    # and the other instance's failure, seen later, does not disable it again or send a second notice
    retrier = stack.modules["RetryFunction"].notifier
    retrier.endpoints.learn(retrier.store.load("workflows/variant-calling.oxoflow").find("lab"), failed=True, now=T0 + 2 * HOUR)
    # then ops got exactly one WebhookDisabled, signed and delivered through the retry queue like any event
    stack.drain_retries()
    (notice,) = [json.loads(r.body) for r in ops.requests]
    assert notice["event"] == "WebhookDisabled" and notice["workflow"] == "variant-calling"
    assert notice["details"]["webhook_id"] == "lab" and notice["details"]["failing_since"].startswith("2030-03-17T17:46:40")
    # and the alarm topic got the same notice once
    (alarm,) = stack.drain(alarms)
    assert alarm["event"] == "WebhookDisabled" and alarm["details"]["webhook_id"] == "lab"
    # and `oxoflow-notify endpoints` reads it as disabled (from the ledger's table, with an operator's access)
    import os

    from oxoflow_notify.aws.delivery_log_table import DeliveryLogReader
    from oxoflow_notify.tools.deliveries import health
    from oxoflow_notify.tools.delivery_commands import with_disabled

    entries = list(DeliveryLogReader(stack.dynamodb, stack.physical["DeliveryLog"]["Ref"]).recent("variant-calling", 0, {}))
    os.environ["LEDGER_TABLE"] = stack.physical["DeliveryLedger"]["Ref"]
    states = {r["webhook_id"]: r["state"] for r in with_disabled(health(entries, T0 + 2 * HOUR), None)}
    assert states == {"lab": "disabled", "ops": "healthy"}


class Killed(BaseException):
    """Lambda ending an invocation from outside (a timeout, an out-of-memory kill): no handler runs."""


def test_a_notice_whose_sender_was_killed_is_sent_by_a_later_delivery_once(stack: Stack, receivers: Callable[..., Receiver]) -> None:
    # given "lab" disabled by a failure at T0 + 1h, its dispatcher killed after claiming the notice, before sending it
    lab, ops = receivers(always(500)), receivers(ok())
    stack.put_config("variant-calling", config(lab.url, ops.url))
    alarms = alarm_queue(stack)
    clock = at(stack, "DispatchFunction")
    for n, now in enumerate((T0, T0 + HOUR + 60)):
        clock(now)
        if n == 1:
            endpoints = stack.modules["DispatchFunction"].notifier.endpoints
            endpoints.notice = lambda webhook, state, now: (_ for _ in ()).throw(Killed())
            with pytest.raises(Killed):
                stack.invoke("DispatchFunction", sns(n))
        else:
            stack.invoke("DispatchFunction", sns(n))
    (item,) = [v for k, v in table_items(stack).items() if k.endswith("#lab")]
    assert "disabled_at" in item  # disabled, and its notice claimed by the killed instance
    # when deliveries to it come to a new container: within the claim's lease, then after it, then again
    stack.restart("DispatchFunction")
    clock = at(stack, "DispatchFunction")
    queued = []
    claimed = T0 + HOUR + 60
    for n, now in ((2, claimed + 600), (3, claimed + NOTICE_LEASE + 60), (4, claimed + NOTICE_LEASE + 120)):
        clock(now)
        stack.invoke("DispatchFunction", sns(n))
        queued.append(sum(stack.depth(stack.retry_queue_url).values()))
        stack.restart("DispatchFunction")  # each a new container: none trusts a cached state
        clock = at(stack, "DispatchFunction")
    # then no POST reached lab after it was disabled, and the notice was queued once, by the first delivery after the lease
    assert len(lab.requests) == 2 and queued == [0, 1, 1]
    at(stack, "RetryFunction")(claimed + NOTICE_LEASE + 180)
    stack.drain_retries()
    (notice,) = [json.loads(r.body) for r in ops.requests]
    assert notice["event"] == "WebhookDisabled" and notice["details"]["webhook_id"] == "lab"
    (alarm,) = stack.drain(alarms)
    assert alarm["details"]["webhook_id"] == "lab"
    # and the item records it as sent, its claim settled
    (item,) = [v for k, v in table_items(stack).items() if k.endswith("#lab")]
    assert item.get("notified") == {"BOOL": True} and "notice_claimed" not in item


def test_on_the_table_a_claim_lapses_after_its_lease_and_only_its_own_sender_settles_it(stack: Stack) -> None:
    # given a disabled webhook's item on the ledger table, its notice claimed at T0
    store = DynamoEndpointStore(stack.physical["DeliveryLedger"]["Ref"], lambda: stack.dynamodb)
    store.failing("k", T0 - HOUR)
    assert store.disable("k", T0, T0 - 1, "f")
    assert store.claim_notice("k", T0, T0 - NOTICE_LEASE)
    # then no one else claims it within its lease, and after it another does
    assert not store.claim_notice("k", T0 + NOTICE_LEASE - 1, T0 - 1)
    later = T0 + NOTICE_LEASE + 1
    assert store.claim_notice("k", later, later - NOTICE_LEASE)
    # when the first sender, late, settles its claim (given back, or sent), the second's claim stands
    store.notice_done("k", T0, sent=False)
    store.notice_done("k", T0, sent=True)
    (state,) = store.states(["k"]).values()
    assert state.notice_claimed == later and not state.notified
    # and the second's own settles it: sent, no claim left, no one claims it again
    store.notice_done("k", later, sent=True)
    (state,) = store.states(["k"]).values()
    assert state.notified and state.notice_claimed is None
    assert not store.claim_notice("k", later + 10 * NOTICE_LEASE, later + 9 * NOTICE_LEASE)
    # and a webhook enabled meanwhile is not written back by a sender finishing late
    assert store.claim_notice("k2", T0, T0) is False  # (no item: nothing to claim)
    store.enable("k")
    store.notice_done("k", later, sent=True)
    assert store.states(["k"]) == {}


def table_items(stack: Stack) -> dict[str, dict[str, Any]]:
    """The ledger table's endpoint items, by key."""
    table = stack.physical["DeliveryLedger"]["Ref"]
    items = stack.dynamodb.scan(TableName=table)["Items"]
    return {i["id"]["S"]: i for i in items if i["id"]["S"].startswith("oxoflow-endpoint#")}


def test_a_changed_entry_enables_it_again_and_its_dead_letters_replay(stack: Stack, receivers: Callable[..., Receiver]) -> None:
    # given lab disabled after failing for an hour, one delivery dead-lettered endpoint_disabled
    lab, ops, fixed = receivers(always(500)), receivers(ok()), receivers(ok())
    stack.put_config("variant-calling", config(lab.url, ops.url))
    clock = at(stack, "DispatchFunction", "RetryFunction")
    for n, now in enumerate((T0, T0 + HOUR + 1, T0 + HOUR + 2)):
        clock(now)
        stack.invoke("DispatchFunction", sns(n))
    disabled = [x for x in stack.drain(stack.dead_letter_queue_url) if x["reason_code"] == "endpoint_disabled"]
    assert len(disabled) == 1 and len(lab.requests) == 2
    # when its owner uploads a config whose entry for it changed (a new URL), read once the cache ages out
    stack.put_config("variant-calling", config(fixed.url, ops.url))
    clock(T0 + HOUR + 100)
    stack.invoke("DispatchFunction", sns(9))
    # then it is enabled again and delivered to; and its dead letter replays to the fixed endpoint
    assert len(fixed.requests) == 1
    stack.sqs.send_message(QueueUrl=stack.dead_letter_queue_url, MessageBody=json.dumps(disabled[0]))
    summary = replay(stack.modules["DispatchFunction"].notifier, stack.sqs, stack.dead_letter_queue_url, Filters(), visibility=0)
    assert summary.results == {"delivered": 1} and len(fixed.requests) == 2


def test_enable_forgets_a_disabled_webhook(stack: Stack, receivers: Callable[..., Receiver]) -> None:
    # given lab disabled
    lab, ops = receivers(always(500)), receivers(ok())
    stack.put_config("variant-calling", config(lab.url, ops.url))
    clock = at(stack, "DispatchFunction")
    for n, now in enumerate((T0, T0 + HOUR + 1)):
        clock(now)
        stack.invoke("DispatchFunction", sns(n))
    store = DynamoEndpointStore(stack.physical["DeliveryLedger"]["Ref"], lambda: stack.dynamodb)
    key = "workflows/variant-calling.oxoflow#lab"
    assert store.states([key])[key].disabled_at == T0 + HOUR + 1
    # when an operator enables it (what `oxoflow-notify endpoints enable lab` does) and its cache ages out
    store.enable(key)
    lab.behaviour = ok()
    clock(T0 + HOUR + 120)
    stack.invoke("DispatchFunction", sns(5))
    # then it is posted to again, and its 2xx leaves no state behind
    assert len(lab.requests) == 3 and lab.requests[-1].answered == 200
    assert store.states([key]) == {}

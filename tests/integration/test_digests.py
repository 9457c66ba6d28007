"""Digests and rate limits through the real handlers, with DynamoDB, S3 and SQS in mock_aws and
loopback receivers: what arrives, when, and how often."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from oxoflow_notify.aws.pacing_table import DynamoPacer
from oxoflow_notify.aws.windows_table import DynamoWindowStore
from oxoflow_notify.lazy import Lazy
from oxoflow_notify.pipeline.digest import group_of
from oxoflow_notify.pipeline.notifier import Published
from oxoflow_notify.pipeline.windows import Group
from oxoflow_notify.wiring import build_notifier
from oxolocal.receivers import Answer, Receiver, most_in_any_second, ok, slack_like
from oxolocal.stack import Stack, sns_event
from tests.conftest import message

RUN = "run-2026-05-18"


def rule_event(kind: str, n: int, run_id: str | None = RUN, stderr: str | None = None) -> dict[str, Any]:
    """The sample rule event of ``kind`` as rule number ``n`` of a run (its own id)."""
    event = message(kind)
    event["rule"] = f"rule_{n:04d}"
    event["id"] = f"evt-{kind}-{n}-{run_id}"
    event.pop("run_id", None)
    if run_id is not None:
        event["run_id"] = run_id
    if stderr is not None:
        event["details"] = {**event.get("details", {}), "stderr": stderr}
    return event


def sns(event: dict[str, Any], message_id: str | None = None) -> dict[str, Any]:
    return sns_event(
        {"MessageId": message_id or f"sns-{event.get('id')}", "Message": json.dumps(event), "Timestamp": "2026-05-18T12:00:01.000Z"}
    )


def hooks(*entries: str) -> str:
    return '[workflow]\nname = "variant-calling"\n\n' + "\n".join(f"[[webhooks]]\n{e}\n" for e in entries)


def digests(receiver: Receiver) -> list[dict[str, Any]]:
    return [json.loads(r.body) for r in receiver.requests if r.header("X-OxoFlow-Event") == "Digest"]


def test_rule_events_of_a_run_arrive_as_one_signed_digest_when_the_window_closes(stack: Stack, receivers: Callable[..., Receiver]) -> None:
    # given a signed json webhook with a one-second digest
    hook = receivers(ok())
    stack.put_config("variant-calling", hooks(f'url = "{hook.url}"\nsecret = "k1"\ndigest = "1s"'))
    # when eight rules fail and four complete in one run
    events = [rule_event("rule-failed", n) for n in range(8)] + [rule_event("rule-completed", n) for n in range(8, 12)]
    reports = [stack.invoke("DispatchFunction", sns(e)) for e in events]
    # then nothing was posted yet: each event was counted in the window
    assert hook.requests == [] and sum(r["digested"] for r in reports) == 12
    # and when the window's close comes due, one digest arrives, signed over its exact bytes
    stack.drain_retries(until_empty=30)
    (got,) = hook.requests
    assert got.header("X-Hub-Signature-256") == "sha256=" + hmac.new(b"k1", got.body, hashlib.sha256).hexdigest()
    body = json.loads(got.body)
    assert body["event"] == "Digest" and body["workflow"] == "variant-calling" and body["run_id"] == RUN
    assert body["counts"] == {"RuleCompleted": 4, "RuleFailed": 8} and body["total"] == 12
    assert [e["event"] for e in body["events"]][:8] == ["RuleFailed"] * 8  # the failed ones first
    assert body["left_out"] == 12 - len(body["events"]) and body["window"]["closed_by"] == "timer"
    assert got.header("X-OxoFlow-Delivery") == body["id"]
    assert stack.drain(stack.dead_letter_queue_url) == []


def test_an_sns_redelivery_is_counted_once(stack: Stack, receivers: Callable[..., Receiver]) -> None:
    # given a digest webhook
    hook = receivers(ok())
    stack.put_config("variant-calling", hooks(f'url = "{hook.url}"\ndigest = "1s"'))
    # when one event is delivered three times by SNS (same message id) and another once
    first, second = rule_event("rule-failed", 1), rule_event("rule-failed", 2)
    for _ in range(3):
        stack.invoke("DispatchFunction", sns(first))
    stack.invoke("DispatchFunction", sns(second))
    stack.drain_retries(until_empty=30)
    # then the digest counts two events
    (digest,) = digests(hook)
    assert digest["total"] == 2 and sorted(e["id"] for e in digest["events"]) == [first["id"], second["id"]]


def test_workflow_failed_sends_its_runs_window_first_then_itself_and_the_timer_sends_nothing_more(
    stack: Stack, receivers: Callable[..., Receiver]
) -> None:
    # given a json webhook with a 15-minute digest, subscribed to everything
    hook = receivers(ok())
    stack.put_config("variant-calling", hooks(f'url = "{hook.url}"\ndigest = "15m"'))
    for n in range(3):
        stack.invoke("DispatchFunction", sns(rule_event("rule-failed", n)))
    assert hook.requests == []
    # when the run fails
    ended = {**message("workflow-failed"), "run_id": RUN, "id": "wf-end"}
    stack.invoke("DispatchFunction", sns(ended))
    # then the window went out first, closed by the run's end, then the event itself
    assert [r.header("X-OxoFlow-Event") for r in hook.requests] == ["Digest", "WorkflowFailed"]
    digest = json.loads(hook.requests[0].body)
    assert digest["total"] == 3 and digest["window"]["closed_by"] == "workflow_end"
    # and when the window's timer comes due later (its close is still queued, 15 minutes out), nothing more is sent
    stack.handler("RetryFunction")
    notifier = stack.modules["RetryFunction"].notifier
    (webhook,) = notifier.store.load("workflows/variant-calling.oxoflow").webhooks
    close = Group(group_of("workflows/variant-calling.oxoflow", webhook.id, "variant-calling", RUN), "workflows/variant-calling.oxoflow",
                  webhook.id, "variant-calling", RUN, 900).close_message(1)  # fmt: skip
    spare = notifier.retry(json.dumps(close))  # a close without the window's token: a racing opener's spare
    table = stack.physical["DeliveryLedger"]["Ref"]
    item = stack.dynamodb.get_item(TableName=table, Key={"id": {"S": f"oxoflow-digest#{close['group']}#1"}}, ConsistentRead=True)["Item"]
    own = notifier.retry(json.dumps({**close, "token": item["token"]["S"]}))  # the window's own close, come due
    assert len(hook.requests) == 2 and spare.delivered + spare.already_delivered == 0 and own.already_delivered == 1


def test_each_run_has_its_own_window(stack: Stack, receivers: Callable[..., Receiver]) -> None:
    hook = receivers(ok())
    stack.put_config("variant-calling", hooks(f'url = "{hook.url}"\ndigest = "1s"'))
    for run in ("run-a", "run-b"):
        for n in range(2):
            stack.invoke("DispatchFunction", sns(rule_event("rule-failed", n, run_id=run)))
    stack.invoke("DispatchFunction", sns(rule_event("rule-skipped", 9, run_id=None)))  # no run id: the workflow's window
    stack.drain_retries(until_empty=30)
    assert sorted((d["run_id"] or "-", d["total"]) for d in digests(hook)) == [("-", 1), ("run-a", 2), ("run-b", 2)]


def test_a_window_that_would_outgrow_its_item_closes_early_and_nothing_is_lost(
    stack: Stack, receivers: Callable[..., Receiver], monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a window budget of five kept events (the shipped limits keep 20 events of at most 8 KB
    # within 160 KB, so only a smaller budget reaches this path) and events with 30 KB of stderr
    from oxoflow_notify.pipeline import digest as limits

    monkeypatch.setattr(limits, "WINDOW_BYTES", 5 * limits.size_of(limits.kept_form(rule_event("rule-failed", 0, stderr="x" * 30_000))))
    hook = receivers(ok())
    stack.put_config("variant-calling", hooks(f'url = "{hook.url}"\ndigest = "1s"'))
    for n in range(12):
        stack.invoke("DispatchFunction", sns(rule_event("rule-failed", n, stderr=f"line {n}\n" + "x" * 30_000)))
    stack.drain_retries(until_empty=30)
    got = digests(hook)
    # then the storm went out as several digests, each within an SQS message, together counting every event once
    assert len(got) >= 2 and any(d["window"]["closed_by"] == "full" for d in got)
    assert sum(d["total"] for d in got) == 12
    assert sorted(e["id"] for d in got for e in d["events"]) == sorted(f"evt-rule-failed-{n}-{RUN}" for n in range(12))
    assert all(len(r.body) < 200_000 for r in hook.requests)


def wrap_window_transactions(stack: Stack, wrap: Callable[[Callable[..., Any]], Callable[..., Any]]) -> None:
    """The dispatcher's digest windows with their TransactWriteItems passed through ``wrap``
    (a fault injected at the seam); every other DynamoDB call goes through as it is."""
    stack.handler("DispatchFunction")
    windows: DynamoWindowStore = stack.modules["DispatchFunction"].notifier.windows.store.get()
    real = windows._ddb()

    class Wrapped:
        def __getattr__(self, name: str) -> Any:
            call = getattr(real, name)
            return wrap(call) if name == "transact_write_items" else call

    windows._client = Lazy(Wrapped)


class InjectedCrash(BaseException):
    """The function died (not an Exception: nothing in the handler may catch it)."""


def test_a_dispatcher_that_dies_after_counting_is_retried_and_counts_once(stack: Stack, receivers: Callable[..., Receiver]) -> None:
    # given a dispatcher whose first window write commits and then the function dies
    hook = receivers(ok())
    stack.put_config("variant-calling", hooks(f'url = "{hook.url}"\ndigest = "1s"'))
    crashes = {"left": 2}

    def die_after_commit(call: Callable[..., Any]) -> Callable[..., Any]:
        def after_commit(**kwargs: Any) -> Any:
            answer = call(**kwargs)
            if crashes["left"]:
                crashes["left"] -= 1
                raise InjectedCrash
            return answer

        return after_commit

    wrap_window_transactions(stack, die_after_commit)
    events = [rule_event("rule-failed", n) for n in range(4)]
    # when each event is handed to it until it survives (Lambda's retry of an async invocation)
    for event in events:
        while True:
            try:
                stack.invoke("DispatchFunction", sns(event))
                break
            except InjectedCrash:
                continue
    stack.drain_retries(until_empty=30)
    # then the digest counts each event once
    (digest,) = digests(hook)
    assert crashes["left"] == 0 and digest["total"] == 4 and len(digest["events"]) == 4


def test_concurrent_dispatchers_count_every_distinct_event_once(stack: Stack, receivers: Callable[..., Receiver]) -> None:
    # given four dispatcher instances (each its own clients and caches) sharing the table
    hook = receivers(ok())
    stack.put_config("variant-calling", hooks(f'url = "{hook.url}"\ndigest = "2s"'))
    env = stack.function_env("DispatchFunction")
    instances = [build_notifier(env) for _ in range(4)]
    events = [rule_event("rule-failed" if n % 3 else "rule-completed", n) for n in range(40)]
    # when they handle the events at once, each event twice (an SNS redelivery to another instance)
    work = [(i, e) for i, e in enumerate(events * 2)]
    failures: list[BaseException] = []

    def run(index: int) -> None:
        for _, event in work[index::4]:
            try:
                published = Published(json.dumps(event), f"sns-{event['id']}", datetime(2026, 5, 18, 12, tzinfo=UTC))
                instances[index].dispatch([published])
            except BaseException as exc:  # noqa: BLE001 - reported below
                failures.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    stack.drain_retries(until_empty=30)
    # then the digests together count the 40 distinct events, each once
    got = digests(hook)
    assert sum(d["total"] for d in got) == 40
    assert sum(d["counts"].get("RuleCompleted", 0) for d in got) == len([e for e in events if e["event"] == "RuleCompleted"])


# -- rate limits ---------------------------------------------------------------------------


def test_a_rate_limited_webhook_is_paced_and_never_answered_429(stack: Stack, receivers: Callable[..., Receiver]) -> None:
    # given a receiver that answers 429 past 5 requests a second (plus one), and rate_limit = 5
    hook = receivers(slack_like(5, burst=1))
    stack.put_config("variant-calling", hooks(f'url = "{hook.url}"\nrate_limit = 5'))
    # when 20 events are dispatched back to back
    for n in range(20):
        stack.invoke("DispatchFunction", sns(rule_event("rule-failed", n)))
    stack.drain_retries(until_empty=60)
    # then all arrived, at most 5 (+1) in any second, none refused
    assert len(hook.successes()) == 20 and [r for r in hook.requests if r.answered == 429] == []
    assert most_in_any_second([r.at for r in hook.requests]) <= 6
    assert stack.drain(stack.dead_letter_queue_url) == []


def test_slack_is_paced_at_one_a_second_by_default(stack: Stack, receivers: Callable[..., Receiver]) -> None:
    hook = receivers(ok())
    stack.put_config("variant-calling", hooks(f'url = "{hook.url}"\nformat = "slack"'))
    for n in range(3):
        stack.invoke("DispatchFunction", sns(rule_event("rule-failed", n)))
    stack.drain_retries(until_empty=30)
    times = sorted(r.at for r in hook.requests)
    assert len(times) == 3 and most_in_any_second(times) <= 2  # one a second, plus one for skew


def test_rate_limit_0_turns_pacing_off(stack: Stack, receivers: Callable[..., Receiver]) -> None:
    hook = receivers(ok())
    stack.put_config("variant-calling", hooks(f'url = "{hook.url}"\nformat = "slack"\nrate_limit = 0'))
    reports = [stack.invoke("DispatchFunction", sns(rule_event("rule-failed", n))) for n in range(4)]
    assert sum(r["delivered"] for r in reports) == 4 and most_in_any_second([r.at for r in hook.requests]) == 4


def test_a_429_with_retry_after_pauses_the_webhook_for_every_instance(stack: Stack, receivers: Callable[..., Receiver]) -> None:
    # given a receiver that answers the first request 429 with Retry-After: 3, and two dispatcher instances
    hook = receivers(lambda n, r: Answer(429, b"slow down", {"Retry-After": "3"}) if n == 0 else Answer(200))
    stack.put_config("variant-calling", hooks(f'url = "{hook.url}"\nrate_limit = 10'))
    other = build_notifier(stack.function_env("DispatchFunction"))
    # when the first instance meets the 429 and the other sends right after
    first = stack.invoke("DispatchFunction", sns(rule_event("rule-failed", 1)))
    assert first["retrying"] == 1
    second = other.dispatch([Published(json.dumps(rule_event("rule-failed", 2)), "sns-2", datetime(2026, 5, 18, 12, tzinfo=UTC))])
    stack.drain_retries(until_empty=60)
    # then the other instance's POST waited out the pause: nothing reached the receiver within 3 s of the 429
    refused, *rest = hook.requests
    assert refused.answered == 429 and second.delivered + second.retrying == 1
    assert rest and all(r.at - refused.at >= 2.9 for r in rest)
    assert len(hook.successes()) == 2


def pacers(stack: Stack, count: int) -> list[DynamoPacer]:
    """``count`` instances' pacers on the stack's ledger table, each with its own client."""
    table = stack.function_env("DispatchFunction")["LEDGER_TABLE"]
    return [DynamoPacer(table, lambda: stack.dynamodb) for _ in range(count)]


def test_slots_on_dynamodb_stay_an_interval_apart_in_true_time_with_clocks_2_s_apart(stack: Stack) -> None:
    # given three instances whose clocks are 2 s behind, right and 2 s ahead, sharing one target
    errors = [-2.0, 0.0, 2.0]
    instances = pacers(stack, 3)
    true_now = 1_800_000_000.0
    # when each reserves in turn (a storm's first reservations, all at once) and converts its slot to a wait on its own clock
    starts = []
    for n in range(30):
        pacer, error = instances[n % 3], errors[n % 3]
        slot = pacer.reserve("target", 5, true_now + error, tenant="workflows/w.oxoflow")
        assert slot.at is not None
        starts.append(true_now + slot.at - pacer.now(true_now + error))  # the true time its POST starts
    # then no two POSTs start less than one interval (1.1 / 5 s) apart, and the 30 take about 30 intervals
    gaps = [b - a for a, b in zip(sorted(starts), sorted(starts)[1:], strict=False)]
    assert min(gaps) >= 0.22 - 1e-6 and max(starts) - min(starts) <= 29 * 0.22 + 2.5


def test_on_dynamodb_another_teams_slow_rate_limit_does_not_delay_ours_but_the_receivers_429_does(stack: Stack) -> None:
    # given team A's file with our receiver's URL and rate_limit = 0.0012, three deliveries reserved
    (pacer,) = pacers(stack, 1)
    now = 1_800_000_000.0
    team_a = [pacer.reserve("shared", 0.0012, now, tenant="workflows/team-a.oxoflow").at for _ in range(3)]
    assert (team_a[-1] or 0) - now > 1_800
    # when team B (rate_limit = 1) sends to the same URL, then the receiver answers one of them 429 for 30 s
    team_b = [pacer.reserve("shared", 1, now, tenant="workflows/team-b.oxoflow").at for _ in range(2)]
    pacer.pause("shared", now + 30)
    paused = pacer.reserve("shared", 1, now + 2, tenant="workflows/team-b.oxoflow").at
    # then B went at once and one interval later, and after the receiver's pause: only the receiver slows B
    assert team_b == pytest.approx([now, now + 1.1]) and paused == pytest.approx(now + 30)


@pytest.mark.parametrize("fmt", ["json", "slack"])
def test_digest_and_rate_limit_together_turn_a_storm_into_a_few_messages(
    stack: Stack, receivers: Callable[..., Receiver], fmt: str
) -> None:
    hook = receivers(slack_like(1, burst=1))
    stack.put_config("variant-calling", hooks(f'url = "{hook.url}"\nformat = "{fmt}"\ndigest = "10s"\nrate_limit = 1'))
    for n in range(60):
        stack.invoke("DispatchFunction", sns(rule_event("rule-failed", n)))
    ended = {**message("workflow-failed"), "run_id": RUN, "id": "wf-end"}
    stack.invoke("DispatchFunction", sns(ended))
    stack.drain_retries(until_empty=60)
    # then 61 events arrived as the run's digest (or two, if the storm outlasted one window) and the failure itself
    assert 2 <= len(hook.requests) <= 4 and [r for r in hook.requests if r.answered == 429] == []
    assert hook.requests[-1].header("X-OxoFlow-Event") == "WorkflowFailed"


def test_the_local_dynamodb_applies_each_conditional_write_atomically(stack: Stack) -> None:
    # given the stack's table (moto, made atomic by oxolocal.stack.atomic_dynamodb)
    table = stack.physical["DeliveryLedger"]["Ref"]
    wins: list[int] = []

    def claim(n: int) -> None:
        try:
            stack.dynamodb.put_item(
                TableName=table, Item={"id": {"S": "race"}, "n": {"N": str(n)}}, ConditionExpression="attribute_not_exists(id)"
            )
            wins.append(n)
        except stack.dynamodb.exceptions.ConditionalCheckFailedException:
            pass

    # when 16 writers race for one item
    threads = [threading.Thread(target=claim, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # then exactly one won, as DynamoDB guarantees (a fake that let two win would break every window and slot)
    assert len(wins) == 1


def test_a_digest_that_cannot_be_delivered_is_dead_lettered_whole_and_replays(stack: Stack, receivers: Callable[..., Receiver]) -> None:
    from oxoflow_notify.tools.replay import Filters, replay
    from oxolocal.receivers import always

    # given a digest webhook whose receiver answers 404 (permanent)
    hook = receivers(always(404, b"no such hook"))
    stack.put_config("variant-calling", hooks(f'url = "{hook.url}"\nsecret = "k1"\ndigest = "1s"'))
    for n in range(3):
        stack.invoke("DispatchFunction", sns(rule_event("rule-failed", n)))
    stack.drain_retries(until_empty=30)
    # then the digest is in the dead-letter queue with its reason, the digest whole, no URL or secret
    (letter,) = stack.drain(stack.dead_letter_queue_url)
    assert letter["reason_code"] == "permanent_failure" and letter["event"]["event"] == "Digest" and letter["event"]["total"] == 3
    assert hook.url not in json.dumps(letter) and "k1" not in json.dumps(letter)
    # and when the receiver is fixed and the letter replayed, the same digest (same id, same counts) arrives
    stack.sqs.send_message(QueueUrl=stack.dead_letter_queue_url, MessageBody=json.dumps(letter))
    hook.behaviour = ok()
    summary = replay(stack.modules["DispatchFunction"].notifier, stack.sqs, stack.dead_letter_queue_url, Filters(), visibility=0)
    assert summary.results == {"delivered": 1}
    got = json.loads(hook.requests[-1].body)
    assert got["id"] == letter["event"]["id"] and got["total"] == 3 and hook.requests[-1].answered == 200


def test_a_redriven_window_close_replays_into_its_digest(stack: Stack, receivers: Callable[..., Receiver]) -> None:
    from oxoflow_notify.tools.replay import Filters, replay

    # given a window whose close message ended in the dead-letter queue (the retry queue gave up on it)
    hook = receivers(ok())
    stack.put_config("variant-calling", hooks(f'url = "{hook.url}"\ndigest = "15m"'))
    for n in range(2):
        stack.invoke("DispatchFunction", sns(rule_event("rule-failed", n)))
    notifier = stack.modules["DispatchFunction"].notifier
    (webhook,) = notifier.store.load("workflows/variant-calling.oxoflow").webhooks
    key = "workflows/variant-calling.oxoflow"
    close = Group(group_of(key, webhook.id, "variant-calling", RUN), key, webhook.id, "variant-calling", RUN, 900).close_message(1)
    stack.sqs.send_message(QueueUrl=stack.dead_letter_queue_url, MessageBody=json.dumps(close))
    # when it is replayed
    summary = replay(notifier, stack.sqs, stack.dead_letter_queue_url, Filters(), visibility=0)
    # then the window closed and its digest arrived
    assert summary.results == {"delivered": 1}
    (got,) = digests(hook)
    assert got["total"] == 2 and stack.drain(stack.dead_letter_queue_url) == []


def test_a_closer_that_dies_after_closing_is_retried_and_the_window_is_sent_once(stack: Stack, receivers: Callable[..., Receiver]) -> None:
    # given a window of three events, and a retry function that dies right after its first close
    hook = receivers(ok())
    stack.put_config("variant-calling", hooks(f'url = "{hook.url}"\ndigest = "1s"'))
    for n in range(3):
        stack.invoke("DispatchFunction", sns(rule_event("rule-failed", n)))
    stack.handler("RetryFunction")
    windows = stack.modules["RetryFunction"].notifier.windows
    real_close, died = windows.close, list[bool]()

    def close_then_die(*args: Any, **kwargs: Any) -> Any:
        answer = real_close(*args, **kwargs)
        if not died:
            died.append(True)
            raise InjectedCrash
        return answer

    windows.close = close_then_die
    # when SQS hands the close message back after the crash
    stack.drain_retries(until_empty=30, on_crash=(InjectedCrash,))
    # then the window, closed by the run that died, was read again and sent, once
    assert died and len(digests(hook)) == 1 and digests(hook)[0]["total"] == 3


def test_a_window_whose_close_was_lost_is_closed_by_the_next_event(
    stack: Stack, receivers: Callable[..., Receiver], monkeypatch: pytest.MonkeyPatch
) -> None:
    from oxoflow_notify.pipeline import windows

    # given a window whose close message was lost (the retry queue purged), and no grace past its second
    monkeypatch.setattr(windows, "STALE_AFTER", 0)
    hook = receivers(ok())
    stack.put_config("variant-calling", hooks(f'url = "{hook.url}"\ndigest = "1s"'))
    stack.invoke("DispatchFunction", sns(rule_event("rule-failed", 1)))
    stack.drain(stack.retry_queue_url)  # nothing visible yet: the close is delayed
    stack.sqs.purge_queue(QueueUrl=stack.retry_queue_url)
    skip_ahead(stack, 1.5)  # the functions' clocks past the window's second: no waiting
    # when the next event of the run arrives
    stack.invoke("DispatchFunction", sns(rule_event("rule-failed", 2)))
    stack.drain_retries(until_empty=30)
    # then the stale window went out on its own, and the event counted in the next one
    assert sorted(d["total"] for d in digests(hook)) == [1, 1]
    assert sorted(e["id"] for d in digests(hook) for e in d["events"]) == sorted(rule_event("rule-failed", n)["id"] for n in (1, 2))


def test_a_close_that_comes_before_its_window_exists_comes_back_later(stack: Stack, receivers: Callable[..., Receiver]) -> None:
    hook = receivers(ok())
    stack.put_config("variant-calling", hooks(f'url = "{hook.url}"\ndigest = "1s"'))
    stack.handler("RetryFunction")
    notifier = stack.modules["RetryFunction"].notifier
    (webhook,) = notifier.store.load("workflows/variant-calling.oxoflow").webhooks
    key = "workflows/variant-calling.oxoflow"
    close = Group(group_of(key, webhook.id, "variant-calling", RUN), key, webhook.id, "variant-calling", RUN, 1).close_message(1, "tok")
    # when the close is handled before its opener's transaction committed
    report = notifier.retry(json.dumps(close))
    # then it is queued again (delayed), not dropped
    assert report.retrying == 1 and stack.depth(stack.retry_queue_url)["delayed"] == 1


def test_a_transaction_conflict_is_a_lost_race_tried_again_not_a_failed_event(stack: Stack, receivers: Callable[..., Receiver]) -> None:
    from botocore.exceptions import ClientError

    # given a table that answers the first two window writes with DynamoDB's TransactionConflict
    # (concurrent writes to one item; moto never produces it)
    hook = receivers(ok())
    stack.put_config("variant-calling", hooks(f'url = "{hook.url}"\ndigest = "1s"'))
    conflicts = {"left": 2}

    def conflict_first(call: Callable[..., Any]) -> Callable[..., Any]:
        def maybe_conflict(**kwargs: Any) -> Any:
            if conflicts["left"]:
                conflicts["left"] -= 1
                reasons = [{"Code": "None"}] + [{"Code": "TransactionConflict"}] * (len(kwargs["TransactItems"]) - 1)
                error = {"Error": {"Code": "TransactionCanceledException", "Message": "conflict"}, "CancellationReasons": reasons}
                raise ClientError(error, "TransactWriteItems")
            return call(**kwargs)

        return maybe_conflict

    wrap_window_transactions(stack, conflict_first)
    # when two events are dispatched
    reports = [stack.invoke("DispatchFunction", sns(rule_event("rule-failed", n))) for n in range(2)]
    stack.drain_retries(until_empty=30)
    # then both were counted once, without a failed invocation or a dead letter
    assert conflicts["left"] == 0 and sum(r["digested"] for r in reports) == 2
    (digest,) = digests(hook)
    assert digest["total"] == 2 and stack.drain(stack.dead_letter_queue_url) == []


def test_a_runs_ending_sends_every_unsent_window_of_the_run_first_even_one_whose_close_was_lost(
    stack: Stack, receivers: Callable[..., Receiver], monkeypatch: pytest.MonkeyPatch
) -> None:
    from oxoflow_notify.pipeline import windows

    # given a run whose first window lost its close twice (the message never queued: as lost as a
    # batch that died five times and went to the dead-letter queue), while a second window holds the next event
    monkeypatch.setattr(windows, "STALE_AFTER", 0)
    hook = receivers(ok())
    stack.put_config("variant-calling", hooks(f'url = "{hook.url}"\ndigest = "1s"'))
    stack.handler("DispatchFunction")
    monkeypatch.setattr(stack.modules["DispatchFunction"].notifier.windowing, "_schedule_close", lambda *args: None)
    stack.invoke("DispatchFunction", sns(rule_event("rule-failed", 1)))
    skip_ahead(stack, 1.5)  # window 1 is past its second: the next event opens window 2 (and would queue window 1's close again)
    stack.invoke("DispatchFunction", sns(rule_event("rule-failed", 2)))
    assert hook.requests == []
    # when the run fails
    stack.invoke("DispatchFunction", sns({**message("workflow-failed"), "run_id": RUN, "id": "wf-end"}))
    # then both windows went out before the WorkflowFailed, each once, with every event
    assert [r.header("X-OxoFlow-Event") for r in hook.requests] == ["Digest", "Digest", "WorkflowFailed"]
    assert sorted(e["id"] for d in digests(hook) for e in d["events"]) == sorted(rule_event("rule-failed", n)["id"] for n in (1, 2))
    # and a second copy of the ending (an SNS redelivery) sends nothing again
    stack.invoke("DispatchFunction", sns({**message("workflow-failed"), "run_id": RUN, "id": "wf-end"}))
    stack.drain_retries(until_empty=30)
    assert len(hook.requests) == 3


def test_a_runs_ending_does_not_send_again_a_window_its_timer_already_sent(stack: Stack, receivers: Callable[..., Receiver]) -> None:
    # given a run whose first window was closed and delivered by its own timer, and a second open window
    hook = receivers(ok())
    stack.put_config("variant-calling", hooks(f'url = "{hook.url}"\ndigest = "1s"'))
    stack.invoke("DispatchFunction", sns(rule_event("rule-failed", 1)))
    stack.drain_retries(until_empty=30)
    assert len(digests(hook)) == 1
    stack.invoke("DispatchFunction", sns(rule_event("rule-failed", 2)))
    # when the run completes
    stack.invoke("DispatchFunction", sns({**message("workflow-completed"), "run_id": RUN, "id": "wc-end"}))
    stack.drain_retries(until_empty=30)
    # then the first window is not sent again: two digests in all, each event in one
    assert [r.header("X-OxoFlow-Event") for r in hook.requests] == ["Digest", "Digest", "WorkflowCompleted"]
    assert [d["total"] for d in digests(hook)] == [1, 1]


def test_a_window_that_cannot_be_written_fails_the_event_before_anything_is_posted(
    stack: Stack, receivers: Callable[..., Receiver]
) -> None:
    from botocore.exceptions import ClientError

    # given a digest webhook and a plain one, and DynamoDB refusing the digest window's write once
    digest_hook, plain = receivers(ok(), "digest"), receivers(ok(), "plain")
    stack.put_config("variant-calling", hooks(f'id = "d"\nurl = "{digest_hook.url}"\ndigest = "1s"', f'id = "p"\nurl = "{plain.url}"'))
    stack.handler("DispatchFunction")
    windows = stack.modules["DispatchFunction"].notifier.windows
    real_add, failures = windows.add, [1]

    def add_or_throttle(*args: Any, **kwargs: Any) -> Any:
        if failures[0]:
            failures[0] -= 1
            raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}}, "TransactWriteItems")
        return real_add(*args, **kwargs)

    windows.add = add_or_throttle  # this test's own handler: nothing to put back
    event = sns(rule_event("rule-failed", 1))
    # when the event is dispatched, it fails before any POST (the plain webhook was not posted either) ...
    with pytest.raises(ClientError):
        stack.invoke("DispatchFunction", event)
    assert plain.requests == [] and digest_hook.requests == []
    # ... and Lambda's retry of it delivers each once: the plain webhook now, the digest when its window closes
    stack.invoke("DispatchFunction", event)
    stack.drain_retries(until_empty=30)
    assert len(plain.requests) == 1 and len(digests(digest_hook)) == 1


def skip_ahead(stack: Stack, seconds: float) -> None:
    """Both functions' clocks moved ahead (what a test would otherwise sleep for)."""
    for function in ("DispatchFunction", "RetryFunction"):
        stack.handler(function)
        notifier = stack.modules[function].notifier
        real = notifier.clock
        notifier.clock = lambda real=real: real() + seconds

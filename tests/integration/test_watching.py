"""Never silent: runs that do not end in time (overdue) or go quiet (silent) are reported once, with
an injected clock (nothing waits), through the retry queue's timers as Lambda drives them."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable
from typing import Any

from oxoflow_notify.pipeline.watching import WATCH_SCHEMA
from oxolocal.clock import moved_clocks
from oxolocal.receivers import PagerDutyLike, Receiver, ok
from oxolocal.stack import Stack, sqs_event
from tests.conftest import message

T0 = 1_900_000_000.0
HOUR = 3600.0
ROUTING_KEY = "R0ut1ngKeyCanary0000000000000042"


def config(url: str, keys: str, pagerduty_url: str | None = None) -> str:
    chat = f'[[webhooks]]\nid = "chat"\nurl = "{url}"\nevents = ["WorkflowFailed", "WorkflowCompleted"]\n{keys}\n'
    text = f'[workflow]\nname = "variant-calling"\n\n{chat}'
    if pagerduty_url:
        text += (f'\n[[webhooks]]\nid = "on-call"\nurl = "{pagerduty_url}"\nformat = "pagerduty"\nrouting_key = "{ROUTING_KEY}"\n'
                 f'incident_per = "run"\n{keys}\n')  # fmt: skip
    return text


class Clock:
    """The functions' clocks (and their config caches'), set by the test; their retry queue undelayed."""

    def __init__(self, stack: Stack) -> None:
        self.now = T0
        moved_clocks(stack, lambda: self.now)


def send(stack: Stack, kind: str, n: int, run_id: str = "run-7", **fields: Any) -> None:
    body = {**message(kind), **fields, "run_id": run_id, "id": f"evt-{kind}-{n}"}
    sns = {"MessageId": f"m-{kind}-{n}", "Message": json.dumps(body), "Timestamp": "2030-03-17T17:46:40.000Z", "MessageAttributes": {}}
    stack.invoke("DispatchFunction", {"Records": [{"EventSource": "aws:sns", "Sns": sns}]})


def hop(stack: Stack) -> list[dict[str, Any]]:
    """Every retry-queue message handed to the retry function at once, as its delay had passed
    (the test's clock says when it is); returns the timers among them."""
    messages = []
    while batch := stack.receive(stack.retry_queue_url, wait=0):
        messages += batch
    timers = [json.loads(m["Body"]) for m in messages if json.loads(m["Body"]).get("schema") == WATCH_SCHEMA]
    if messages:
        for start in range(0, len(messages), 10):
            stack.invoke("RetryFunction", sqs_event(messages[start : start + 10], stack.physical["RetryQueue"]["Arn"]))
    return timers


class InjectedCrash(BaseException):
    """A process killed mid-invocation (not an Exception: nothing of ours catches it)."""


def overdue_alerts(receiver: Receiver) -> list[dict[str, Any]]:
    return [json.loads(r.body) for r in receiver.requests if r.header("X-OxoFlow-Event") == "WorkflowOverdue"]


def test_an_overdue_run_is_reported_once_at_its_deadline_and_its_late_ending_is_marked(
    stack: Stack, receivers: Callable[..., Receiver]
) -> None:
    # given a chat webhook (WorkflowFailed/Completed only) with overdue = 2h, and a PagerDuty one per run
    chat, pagerduty = receivers(ok()), PagerDutyLike()
    pd = receivers(pagerduty)
    stack.put_config("variant-calling", config(chat.url, 'overdue = "2h"', pd.url))
    clock = Clock(stack)
    # when the run starts, some rules run, then nothing: the process was killed
    send(stack, "workflow-started", 1)
    clock.now = T0 + 600
    send(stack, "rule-completed", 2)
    # then the timers hop every 15 minutes until the deadline, and nothing is sent before it
    while clock.now < T0 + 2 * HOUR - 900:
        clock.now += 900
        assert hop(stack) and overdue_alerts(chat) == []
    clock.now = T0 + 2 * HOUR + 1
    hop(stack)
    # then the chat webhook got one WorkflowOverdue (it watches the run, whatever its events), and PagerDuty an incident
    (alert,) = overdue_alerts(chat)
    assert alert["details"]["reason"] == "overdue" and alert["run_id"] == "run-7"
    assert alert["details"]["last_event"]["event"] == "RuleCompleted" and alert["details"]["started_at"].startswith("2030-03-17")
    assert pagerduty.opened == 1 and pagerduty.incidents == {"oxoflow-notify/variant-calling/run/run-7": "triggered"}
    # and no timer is left, more hops send nothing more
    clock.now += HOUR
    assert hop(stack) == [] and len(overdue_alerts(chat)) == 1
    # when the run's ending arrives after all, it is delivered marked, and resolves the incident
    send(stack, "workflow-completed", 3)
    ending = json.loads(chat.requests[-1].body)
    assert ending["event"] == "WorkflowCompleted" and ending["details"]["after_overdue"] is True
    assert "finished after being reported overdue" in ending["message"]
    assert pagerduty.incidents == {"oxoflow-notify/variant-calling/run/run-7": "resolved"}


def test_a_silent_run_is_reported_and_events_push_its_deadline(stack: Stack, receivers: Callable[..., Receiver]) -> None:
    chat = receivers(ok())
    stack.put_config("variant-calling", config(chat.url, 'silent = "30m"'))
    clock = Clock(stack)
    send(stack, "workflow-started", 1)
    for n in range(2, 6):  # an event every 20 minutes keeps it alive
        clock.now += 1200
        send(stack, "rule-completed", n)
        hop(stack)
    assert overdue_alerts(chat) == []
    clock.now += 1801  # then half an hour of nothing
    hop(stack)
    hop(stack)
    (alert,) = overdue_alerts(chat)
    assert alert["details"]["reason"] == "silent" and alert["details"]["silent_for_seconds"] >= 1800


def test_an_ending_in_time_cancels_the_watch(stack: Stack, receivers: Callable[..., Receiver]) -> None:
    chat = receivers(ok())
    stack.put_config("variant-calling", config(chat.url, 'overdue = "1h"\nsilent = "20m"'))
    clock = Clock(stack)
    send(stack, "workflow-started", 1)
    clock.now += 600
    send(stack, "workflow-completed", 2)
    for _ in range(8):
        clock.now += 900
        hop(stack)
    assert overdue_alerts(chat) == [] and "after_overdue" not in json.loads(chat.requests[-1].body)["details"]


def test_four_dispatchers_redelivered_starts_and_a_crashed_hop_still_give_one_alert(
    stack: Stack, receivers: Callable[..., Receiver]
) -> None:
    # given the start seen by four dispatchers at once (SNS redelivered it), so four timers chain
    chat = receivers(ok())
    stack.put_config("variant-calling", config(chat.url, 'overdue = "1h"'))
    clock = Clock(stack)
    threads = [threading.Thread(target=send, args=(stack, "workflow-started", 1)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # when the deadline passes and one retry batch dies after taking its messages (SQS gives them back)
    clock.now = T0 + HOUR + 1
    taken = []
    while batch := stack.receive(stack.retry_queue_url, wait=0):
        taken += batch
    for m in taken:  # the crash: nothing was deleted, the messages come back
        stack.sqs.change_message_visibility(QueueUrl=stack.retry_queue_url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0)
    assert len(taken) >= 4
    hop(stack)
    hop(stack)
    # then one alert
    assert len(overdue_alerts(chat)) == 1


def test_a_hop_that_dies_after_alerting_still_delivers_the_alert_once(stack: Stack, receivers: Callable[..., Receiver]) -> None:
    # given a run past its deadline, and a retry function that dies right after its hop marked the run alerted
    chat = receivers(ok())
    stack.put_config("variant-calling", config(chat.url, 'overdue = "1h"'))
    clock = Clock(stack)
    send(stack, "workflow-started", 1)
    clock.now = T0 + HOUR + 1
    watching = stack.modules["RetryFunction"].notifier.watching
    real, died = watching.due, list[bool]()

    def due_then_die(*args: Any) -> Any:
        answer = real(*args)
        if answer is not None and not died:
            died.append(True)
            raise InjectedCrash  # the process dies: nothing of the batch is settled
        return answer

    watching.due = due_then_die
    # when SQS hands the timer back after the crash (nothing of the dead batch was deleted)
    taken = []
    while batch := stack.receive(stack.retry_queue_url, wait=0):
        taken += batch
    with contextlib.suppress(InjectedCrash):
        stack.invoke("RetryFunction", sqs_event(taken, stack.physical["RetryQueue"]["Arn"]))
    for m in taken:
        stack.sqs.change_message_visibility(QueueUrl=stack.retry_queue_url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0)
    # and the run ends before SQS hands the timer back
    send(stack, "workflow-completed", 2)
    hop(stack)
    hop(stack)
    # then the alert arrived, once, and the ending went out marked
    assert died and len(overdue_alerts(chat)) == 1
    assert json.loads(chat.requests[0].body)["details"]["after_overdue"] is True

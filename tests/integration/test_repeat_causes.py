"""The repeats docs/operations.md lists, each made to happen on purpose through the real handlers
(mock_aws, a loopback receiver), so a soak that sees one can name its cause.

Issue #20's unexplained repeat: a digest posted twice as attempt 1, both answered 2xx. A digest's
attempt 1 has several carriers by design (each ending of its run, and its window's timer close), and
the hand-off log is what stops the second after a failed first: when the first got a 2xx that came
after we stopped waiting (listed repeat 1) and the hand-off log cannot be read (listed repeat 4),
the next carrier posts attempt 1 again."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from botocore.exceptions import ClientError

from oxoflow_notify.outbound.delivery import Outcome, Prepared
from oxoflow_notify.outbound.failures import Failure
from oxoflow_notify.pipeline.digest import group_of
from oxoflow_notify.pipeline.handoff import Key, Mark
from oxoflow_notify.pipeline.windows import Group
from oxolocal.receivers import Receiver, fail_first, ok
from oxolocal.stack import Stack, sns_event

RUN = "run-2026-05-18"


class LateFirstDigest:
    """The dispatcher's sender, as it is, except that the receiver's answer to the first digest POST
    comes after we stopped waiting: the receiver took it and answered 2xx, our side saw a timeout."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.late: list[str] = []  # delivery ids whose 2xx we did not wait for

    def budget(self, webhook: Any) -> float:
        budget: float = self.inner.budget(webhook)
        return budget

    def send(self, prepared: Prepared, budget: float | None = None) -> Outcome:
        outcome: Outcome = self.inner.send(prepared, budget)
        if self.late or prepared.headers.get("X-OxoFlow-Event") != "Digest":
            return outcome
        self.late.append(prepared.delivery_id)
        return Outcome(None, Failure.READ_TIMEOUT, outcome.latency_ms)

    def send_all(self, batch: Sequence[Prepared], send: Callable[[Prepared], Outcome] | None = None) -> list[Outcome]:
        outcomes: list[Outcome] = self.inner.send_all(batch, send or self.send)
        return outcomes


@contextmanager
def handoff_log_unreadable(client: Any) -> Iterator[None]:
    """Every read of the hand-off log throttled meanwhile, as under the soak's DynamoDB faults."""

    def throttled(**_: Any) -> None:
        error = {"Code": "ThrottlingException", "Message": "Rate of requests exceeds the allowed throughput."}
        raise ClientError({"Error": error, "ResponseMetadata": {"HTTPStatusCode": 400}}, "BatchGetItem")

    client.meta.events.register("before-call.dynamodb.BatchGetItem", throttled)
    try:
        yield
    finally:
        client.meta.events.unregister("before-call.dynamodb.BatchGetItem", throttled)


def run_event(kind: str, n: int) -> dict[str, Any]:
    """The n-th event of the run, as the soak's runs are: Rule* events, then two endings."""
    message: dict[str, Any] = {"event": kind, "workflow": "variant-calling", "run_id": RUN, "id": f"evt-{n}"}
    if kind.startswith("Rule"):
        message["rule"] = f"rule_{n}"
    return sns_event({"MessageId": f"sns-{n}", "Message": json.dumps(message), "Timestamp": "2026-05-18T12:00:01.000Z"})


def digest_attempts(receiver: Receiver) -> list[tuple[str | None, int | str]]:
    return [(r.header("X-OxoFlow-Attempt"), r.answered) for r in receiver.requests if r.header("X-OxoFlow-Event") == "Digest"]


def test_a_late_2xx_and_an_unreadable_handoff_log_repeat_a_digests_attempt_1_both_2xx(
    stack: Stack, receivers: Callable[..., Receiver]
) -> None:
    # given a digest webhook (its timer 15 minutes out, so only the run's endings send the window)
    hook = receivers(ok())
    stack.put_config("variant-calling", f'[[webhooks]]\nid = "lims"\nurl = "{hook.url}"\ndigest = "15m"\n')
    stack.handler("DispatchFunction")
    notifier = stack.modules["DispatchFunction"].notifier
    notifier.sender = sender = LateFirstDigest(notifier.sender)
    for n, kind in enumerate(["RuleFailed", "RuleCompleted", "RuleStarted"]):
        stack.invoke("DispatchFunction", run_event(kind, n))
    # when the run's first ending sends the window, and the receiver's 2xx comes after we stopped waiting
    stack.invoke("DispatchFunction", run_event("WorkflowCompleted", 3))
    assert digest_attempts(hook) == [("1", 200)] and len(sender.late) == 1
    # and the run's second ending finds the hand-off log unreadable (attempts are then taken as new)
    with handoff_log_unreadable(notifier.handoffs._ddb()):
        stack.invoke("DispatchFunction", run_event("WorkflowFailed", 4))
    # then the receiver got the digest's attempt 1 twice, both answered 2xx: listed repeats 1 and 4
    # together, and the repeat the soak could not explain
    assert digest_attempts(hook) == [("1", 200), ("1", 200)]
    assert {r.header("X-OxoFlow-Delivery") for r in hook.requests if r.header("X-OxoFlow-Event") == "Digest"} == set(sender.late)


def test_with_the_handoff_log_readable_the_second_ending_does_not_post_the_late_digest_again(
    stack: Stack, receivers: Callable[..., Receiver]
) -> None:
    # given the same run, the first ending's digest 2xx again too late for us
    hook = receivers(ok())
    stack.put_config("variant-calling", f'[[webhooks]]\nid = "lims"\nurl = "{hook.url}"\ndigest = "15m"\n')
    stack.handler("DispatchFunction")
    notifier = stack.modules["DispatchFunction"].notifier
    notifier.sender = LateFirstDigest(notifier.sender)
    for n, kind in enumerate(["RuleFailed", "RuleCompleted", "RuleStarted", "WorkflowCompleted"]):
        stack.invoke("DispatchFunction", run_event(kind, n))
    # when the second ending comes with the hand-off log answering
    stack.invoke("DispatchFunction", run_event("WorkflowFailed", 4))
    # then attempt 1 is not posted again: the hand-off log says it was handed on (attempt 2 waits in the queue)
    assert digest_attempts(hook) == [("1", 200)]


class ReadThenWait:
    """A hand-off log whose run pauses right after reading its marks (as a run on another instance
    may), while ``meanwhile`` runs; what it read is then stale."""

    def __init__(self, inner: Any, meanwhile: Callable[[], object]) -> None:
        self.inner = inner
        self.meanwhile = meanwhile

    def lookup_many(self, keys: list[Key]) -> dict[Key, Mark]:
        marks: dict[Key, Mark] = self.inner.lookup_many(keys)
        self.meanwhile()
        return marks

    def posted(self, delivery_id: str, attempt: int, outcome: Outcome) -> bool:
        done: bool = self.inner.posted(delivery_id, attempt, outcome)
        return done

    def handed(self, delivery_id: str, attempt: int) -> None:
        self.inner.handed(delivery_id, attempt)


def test_a_windows_timer_close_and_its_runs_ending_at_once_post_attempt_1_once(stack: Stack, receivers: Callable[..., Receiver]) -> None:
    # given a digest window of a run, and a receiver that refuses its first POST
    hook = receivers(fail_first(1, 503))
    stack.put_config("variant-calling", f'[[webhooks]]\nid = "lims"\nurl = "{hook.url}"\ndigest = "15m"\n')
    for n, kind in enumerate(["RuleFailed", "RuleCompleted"]):
        stack.invoke("DispatchFunction", run_event(kind, n))
    source = "workflows/variant-calling.oxoflow"
    group = Group(group_of(source, "lims", "variant-calling", RUN), source, "lims", "variant-calling", RUN, 900)
    table = stack.physical["DeliveryLedger"]["Ref"]
    item = stack.dynamodb.get_item(TableName=table, Key={"id": {"S": f"oxoflow-digest#{group.key}#1"}}, ConsistentRead=True)["Item"]
    close = group.close_message(1, item["token"]["S"])
    # when the window's timer close (the retry function) has read its hand-off marks, and the run's
    # ending (the dispatcher, on another instance) posts the window meanwhile and is refused
    stack.handler("RetryFunction")
    retrier = stack.modules["RetryFunction"].notifier
    ending = run_event("WorkflowFailed", 2)
    retrier.handoffs = ReadThenWait(retrier.handoffs, lambda: stack.invoke("DispatchFunction", ending))
    retrier.retry(json.dumps(close))
    # then attempt 1 reached the receiver once: the timer close saw the ending's attempt and held
    assert digest_attempts(hook) == [("1", 503)]

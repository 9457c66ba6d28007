"""Replaying the dead-letter queue: filters, dry run, delete only what succeeded, failures stay once."""

from __future__ import annotations

from collections.abc import Callable

from oxoflow_notify.tools.replay import Filters, parse_age, replay, scan
from oxolocal.receivers import Answer, Received, Receiver
from oxolocal.stack import Stack
from tests.conftest import sns_event


class Switch:
    """A receiver behaviour that answers 404 until switched on."""

    def __init__(self) -> None:
        self.up = False

    def __call__(self, n: int, r: Received) -> Answer:
        return Answer(200) if self.up else Answer(404)


def dead_letters(stack: Stack, receivers: Callable[..., Receiver]) -> tuple[Switch, Receiver, Receiver]:
    switch = Switch()
    recovering, gone = receivers(switch, "recovering"), receivers(lambda n, r: Answer(410), "gone")
    stack.put_config(
        "variant-calling", f'[[webhooks]]\nid = "recovering"\nurl = "{recovering.url}"\n[[webhooks]]\nid = "gone"\nurl = "{gone.url}"\n'
    )
    stack.invoke("DispatchFunction", sns_event("rule-failed"))
    stack.invoke("DispatchFunction", sns_event("workflow-failed"))
    bad = sns_event("rule-started")
    bad["Records"][0]["Sns"]["Message"] = "{not json"
    stack.invoke("DispatchFunction", bad)
    return switch, recovering, gone


def notifier(stack: Stack) -> object:
    return stack.modules["DispatchFunction"].notifier


def test_dry_run_lists_and_changes_nothing(stack: Stack, receivers: Callable[..., Receiver]) -> None:
    _switch, recovering, gone = dead_letters(stack, receivers)
    summary = replay(notifier(stack), stack.sqs, stack.dead_letter_queue_url, Filters(), dry_run=True)
    assert summary.results == {"would replay": 4, "skipped": 1}
    assert len(recovering.requests) == 2 and len(gone.requests) == 2  # only the original attempts


def test_replay_delivers_what_recovered_and_keeps_the_rest_once(stack: Stack, receivers: Callable[..., Receiver]) -> None:
    # given two events dead-lettered for a webhook that has since recovered and one that is gone
    switch, recovering, _gone = dead_letters(stack, receivers)
    switch.up = True
    # when everything is replayed
    summary = replay(notifier(stack), stack.sqs, stack.dead_letter_queue_url, Filters(), visibility=0)
    # then the recovered webhook got both, with the same delivery ids and the next attempt number
    assert summary.results == {"delivered": 2, "failed again": 2, "skipped": 1}
    first_tries, replays = recovering.requests[:2], recovering.requests[2:]
    assert {r.header("X-OxoFlow-Delivery") for r in first_tries} == {r.header("X-OxoFlow-Delivery") for r in replays}
    assert all(r.header("X-OxoFlow-Attempt") == "2" for r in replays)
    # and the queue holds the two still failing and the unreplayable one, each once
    left = [letter.body for letter in scan(stack.sqs, stack.dead_letter_queue_url, visibility=0)]
    assert sorted(letter["reason_code"] for letter in left) == ["invalid_event", "permanent_failure", "permanent_failure"]


def test_filters_select_by_webhook_event_reason_and_age(stack: Stack, receivers: Callable[..., Receiver]) -> None:
    dead_letters(stack, receivers)
    url, n = stack.dead_letter_queue_url, notifier(stack)

    def dry(filters: Filters) -> dict[str, int]:
        return replay(n, stack.sqs, url, filters, dry_run=True, visibility=0).results  # scan without hiding

    assert dry(Filters(webhook="gone")) == {"would replay": 2}
    assert dry(Filters(event="WorkflowFailed")) == {"would replay": 2}
    assert dry(Filters(reason="invalid_event")) == {"skipped": 1}
    assert dry(Filters(workflow="variant-calling", reason="permanent_failure")) == {"would replay": 4}
    assert dry(Filters(older_than=3600)) == {} and dry(Filters(newer_than=3600)) == {"would replay": 4, "skipped": 1}
    assert parse_age("90s") == 90 and parse_age("2h") == 7200

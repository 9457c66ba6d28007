"""Teams sharing one deployment: one team's files and events cannot hold or silence another's."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from oxolocal.receivers import Answer, Received, Receiver
from oxolocal.stack import Stack
from tests.conftest import sns_event


def dispatch_event(workflow: str, message_id: str, **fields: Any) -> dict[str, Any]:
    """The dispatcher's SNS event for one message of ``workflow``."""
    event = sns_event("rule-failed")
    sns = event["Records"][0]["Sns"]
    sns["MessageId"] = message_id
    sns["Message"] = json.dumps({"event": "RuleFailed", "workflow": workflow, "rule": "align_reads", **fields})
    return event


def slow_for_team_a(n: int, r: Received) -> Answer:
    """One receiver for both teams, answering team A's POSTs in 0.7 s and team B's at once."""
    return Answer(200, delay=0.7) if b'"team-a"' in r.body else Answer(200)


def test_a_team_whose_own_timeout_fails_cannot_hold_another_teams_deliveries_to_the_same_url(
    stack: Stack, receivers: Callable[..., Receiver]
) -> None:
    # given team A's file pointing at team B's receiver with a 0.5 s timeout it answers beyond,
    # team B's file with the same URL and the default timeout, and a breaker opening after 2 failures
    shared = receivers(slow_for_team_a)
    stack.overrides.update({"CIRCUIT_THRESHOLD": "2", "CIRCUIT_COOLDOWN_SECONDS": "600"})
    stack.put_config("team-a", f'[[webhooks]]\nid = "theirs"\nurl = "{shared.url}"\ntimeout = 0.5\n')
    stack.put_config("team-b", f'[[webhooks]]\nid = "ours"\nurl = "{shared.url}"\n')
    # when team A's events time out until its circuit opens (2 in a row over half a window of 8)
    a_reports = [stack.invoke("DispatchFunction", dispatch_event("team-a", f"a-{n}")) for n in range(5)]
    assert [d["error"] for r in a_reports for d in r["deliveries"]][-1] == "circuit_open"
    # and team B's events arrive while A's circuit is open, well within one cool-down
    b_reports = [stack.invoke("DispatchFunction", dispatch_event("team-b", f"b-{n}")) for n in range(3)]
    # then every one of B's events was delivered at once, none held
    assert [r["delivered"] for r in b_reports] == [1, 1, 1]
    assert [d["result"] for r in b_reports for d in r["deliveries"]] == ["delivered"] * 3
    b_posts = [r for r in shared.requests if b'"team-b"' in r.body]
    assert [r.answered for r in b_posts] == [200, 200, 200]


def test_a_fake_with_a_forged_timestamp_cannot_make_the_real_event_already_delivered(
    stack: Stack, receivers: Callable[..., Receiver]
) -> None:
    # given a workflow's webhook, and a fake published first with the real event's id and fields
    # but a forged timestamp
    lims = receivers(lambda n, r: Answer(200))
    stack.put_config("team-b", f'[[webhooks]]\nid = "lims"\nurl = "{lims.url}"\n')
    same = {"id": "run-42-align-failed", "run_id": "run-42"}
    fake = stack.invoke("DispatchFunction", dispatch_event("team-b", "m-fake", timestamp="2020-01-01T00:00:00Z", **same))
    # when the real event arrives (and SNS delivers it twice)
    real = stack.invoke("DispatchFunction", dispatch_event("team-b", "m-real", timestamp="2026-05-18T12:00:00Z", **same))
    again = stack.invoke("DispatchFunction", dispatch_event("team-b", "m-real", timestamp="2026-05-18T12:00:00Z", **same))
    # then the real event was delivered too, once, with its own timestamp
    assert fake["delivered"] == real["delivered"] == 1
    assert again["delivered"] == 0 and again["already_delivered"] == 1
    assert [json.loads(r.body)["timestamp"] for r in lims.requests] == ["2020-01-01T00:00:00Z", "2026-05-18T12:00:00Z"]

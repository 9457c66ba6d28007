"""Live messages without sockets: the keys as validate and the Lambda read them, the message as each
platform would take it (shapes, limits, neutralised text), and what the platforms' answers mean."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oxoflow_notify.config import Config
from oxoflow_notify.config.parse import parse_config
from oxoflow_notify.formats.live import LiveView, progress_bar, render_live_discord, render_live_slack
from oxoflow_notify.inbound.events import Event
from oxoflow_notify.outbound.delivery import Outcome
from oxoflow_notify.outbound.failures import Failure
from oxoflow_notify.outbound.live_calls import encode
from oxoflow_notify.pipeline.live import LiveState, change_of, view_of
from oxoflow_notify.pipeline.live_answers import CallKind, read_discord, read_slack
from oxolocal.shapes import problems_of
from tests.conftest import assert_golden
from tests.unit.test_neutralisation import CHECKS

TOKEN = "xoxb-1-2-TokenCanaryNeverQuoted"
SLACK = f'format = "slack"\nlive = true\nurl = "https://slack.com/api"\nchannel = "C0123456789"\ntoken = "{TOKEN}"'
DISCORD = 'format = "discord"\nlive = true\nurl = "https://discord.com/api/webhooks/1/abc"'


def parsed(entry: str) -> Config:
    return parse_config(f'[[webhooks]]\nid = "w"\n{entry}\n'.encode(), "workflows/wf.oxoflow")


def test_a_live_webhook_is_never_a_target_of_single_deliveries_and_keeps_its_token_as_its_secret() -> None:
    (slack,) = parsed(SLACK + '\nlive_interval = "30s"').webhooks
    assert slack.live and slack.live_interval == 30 and slack.channel == "C0123456789" and slack.token == TOKEN
    assert slack.secret is None and not slack.standard_webhooks  # the token never signs a body
    assert not any(slack.matches(e) for e in ("WorkflowStarted", "RuleFailed", "WebhookDisabled", "WorkflowOverdue"))
    (discord,) = parsed(DISCORD).webhooks
    assert discord.live and discord.live_interval == 5 and discord.token is None


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ('format = "teams"\nlive = true\nurl = "https://example.org/x"', "key 'live' applies to formats slack and discord only: teams"),
        ('format = "text"\nlive = true\nurl = "https://example.org/x"', "plain-text webhooks post and forget"),
        ('live = true\nurl = "https://example.org/x"', "key 'live' applies to formats slack and discord only: json"),
        (DISCORD.replace("live = true", 'live = "yes"'), "key 'live' must be true or false, got str"),
        (DISCORD + '\nlive_interval = "1s"', "key 'live_interval' must be from 2s to 15m (got 1 s)"),
        (DISCORD + '\nlive_interval = "soon"', "key 'live_interval': 'soon' is not a duration"),
        (DISCORD + '\nlive_intervl = "5s"', "did you mean 'live_interval'"),
        (DISCORD.replace("live = true", "live = false") + '\nlive_interval = "5s"', "key 'live_interval' applies to a live webhook only"),
        (DISCORD + '\ndigest = "1m"', "key 'digest' does not apply to a live webhook"),
        (DISCORD + '\nevents = ["RuleFailed"]', "key 'events' does not apply to a live webhook: a live message follows every event"),
        (DISCORD + '\nsecret = "s3cr3t-value"', "key 'secret' does not apply to a live webhook"),
        (DISCORD + '\nchannel = "C0123456789"', "key 'channel' applies to a live Slack webhook only"),
        (SLACK.replace('channel = "C0123456789"\n', ""), "key 'channel' is required for a live Slack webhook"),
        (SLACK.replace("channel", "chanel"), "unknown key 'chanel' (did you mean 'channel'?)"),
        (SLACK.replace("C0123456789", "#general"), "key 'channel': '#general' is not a channel id"),
        (SLACK.replace(f'token = "{TOKEN}"', 'token = "hunter2hunter2"'), "key 'token' must be a Slack bot token (xoxb-...)"),
        (SLACK.replace("https://slack.com/api", "https://hooks.slack.com/services/T0/B0/x"), "a Slack incoming webhook cannot edit"),
        (SLACK.replace("https://slack.com/api", "https://slack.com/api/chat.postMessage"), "must be the Web API's base"),
        ('format = "slack"\nurl = "https://hooks.slack.com/services/T0/B0/x"\ntoken = "xoxb-1"', "key 'token' applies to a live Slack"),
    ],
)
def test_each_mistake_is_named_and_no_token_is_quoted(entry: str, problem: str) -> None:
    messages = [p.message for p in parsed(entry).problems]
    assert any(problem in m for m in messages), messages
    assert all(TOKEN not in m and "hunter2" not in m for m in messages)


def event(kind: str, **fields: Any) -> Event:
    base: dict[str, Any] = {"event": kind, "workflow": "variant-calling", "timestamp": "2026-12-05T10:00:00Z", "id": "e1", "message": "m"}
    return Event(**{**base, **fields})


def test_each_event_changes_its_part_of_the_state() -> None:
    started = change_of(event("WorkflowStarted", details={"total_rules": 500}))
    assert started.total == 500 and started.started == 1_796_464_800.0 and started.counted is None
    assert change_of(event("WorkflowStarted", details={"total_rules": True})).total is None  # not a count
    failed = change_of(event("RuleFailed", rule="align", details={"exit_code": 3, "stderr": "x" * 5000}))
    assert failed.counted == "RuleFailed" and failed.last_failure is not None and len(failed.last_failure["stderr"]) == 1000
    assert change_of(event("WorkflowCancelled")).state == "cancelled"


def test_the_view_counts_elapsed_time_to_the_end_once_ended() -> None:
    state = LiveState(version=3, counts={"RuleCompleted": 2}, started=1000.0, ended=1600.0, state="completed")
    assert view_of(state, "wf", "42", now=9999.0).elapsed == 600.0
    assert view_of(LiveState(started=1000.0), "wf", None, now=1030.0).elapsed == 30.0


HOSTILE = "@here <!channel> [click](https://evil.example) <@U123> ```\n# heading"


@pytest.mark.parametrize("state", ["running", "completed", "failed", "cancelled", "overdue"])
def test_the_message_fits_each_platform_and_no_event_text_can_mention_or_link(state: str) -> None:
    failure = {"rule": HOSTILE, "exit_code": HOSTILE, "stderr": (HOSTILE + "\n") * 2000}
    view = LiveView(f"wf-{state}", HOSTILE, state, {"RuleCompleted": 312, "RuleFailed": 3}, 500, 4320.0, failure, 7)
    for fmt, payload in (("slack", render_live_slack(view)), ("discord", render_live_discord(view))):
        raw = json.dumps(payload).encode()
        assert problems_of(fmt, raw) == [], fmt
        decode, forms = CHECKS[fmt]
        for text in visible(fmt, payload):
            for name, form in forms:
                assert not form.search(decode(text)), (fmt, name, text[:200])


def visible(fmt: str, payload: dict[str, Any]) -> list[str]:
    if fmt == "slack":
        out = [payload["text"], payload["blocks"][0]["text"]["text"]]
        for block in payload["attachments"][0]["blocks"]:
            out += [block["text"]["text"]] if "text" in block else []
            out += [f["text"] for f in block.get("fields", []) + block.get("elements", [])]
        return [t.replace("`▓", "").replace("░`", "") for t in out]
    embed = payload["embeds"][0]
    return [embed["title"], embed.get("description", ""), embed["footer"]["text"], *[f["value"] for f in embed["fields"]]]


def test_the_progress_bar_shows_when_the_total_is_known_and_counts_alone_otherwise() -> None:
    assert progress_bar(LiveView("wf", "1", "running", {"RuleCompleted": 250}, 500)) == "▓" * 10 + "░" * 10 + " 50 %"
    assert progress_bar(LiveView("wf", "1", "running", {"RuleCompleted": 9}, None)) is None
    slack = render_live_slack(LiveView("wf", "1", "running", {"RuleCompleted": 9}, None, 75.0))
    assert slack["blocks"][0]["text"]["text"].endswith("wf run 1: running — 9 rules done, 1 min 15 s")


def ok(status: int = 200, retry_after: str | None = None) -> Outcome:
    return Outcome(status, None, 1.0, retry_after=retry_after)


@pytest.mark.parametrize(
    ("answer", "posting", "kind", "ref"),
    [
        ({"ok": True, "ts": "1700000000.000100", "channel": "C1"}, True, CallKind.DONE, "1700000000.000100"),
        ({"ok": True, "ts": "<script>"}, True, CallKind.RETRY, None),  # only a ts of the expected shape is taken
        ({"ok": True}, False, CallKind.DONE, None),
        ({"ok": False, "error": "message_not_found"}, False, CallKind.LOST, None),
        ({"ok": False, "error": "not_in_channel"}, True, CallKind.GIVE_UP, None),
        ({"ok": False, "error": "invalid_auth"}, True, CallKind.GIVE_UP, None),
        ({"ok": False, "error": "ratelimited"}, False, CallKind.HELD, None),  # waits, spends no attempt
        ({"ok": False, "error": "internal_error"}, False, CallKind.RETRY, None),
        ({"ok": False, "error": "Bearer xoxb-echoed"}, False, CallKind.RETRY, None),  # not a code: never quoted
    ],
)
def test_slack_errors_arrive_as_200_with_ok_false_and_are_read_as_slack_documents_them(
    answer: dict[str, Any], posting: bool, kind: CallKind, ref: str | None
) -> None:
    result = read_slack(ok(), json.dumps(answer).encode(), posting, now=0.0)
    assert (result.kind, result.ref) == (kind, ref)
    assert "xoxb" not in result.reason


def test_discord_answers_deleted_messages_throttling_and_a_gone_webhook() -> None:
    assert read_discord(ok(200), b'{"id": "1100000000000000001"}', True, 0.0).ref == "1100000000000000001"
    assert read_discord(ok(404), b'{"message": "Unknown Message", "code": 10008}', False, 0.0).kind is CallKind.LOST
    assert read_discord(ok(404), b'{"message": "Unknown Webhook", "code": 10015}', False, 0.0).kind is CallKind.GIVE_UP
    limited = read_discord(Outcome(429, None, 1.0, snippet='{"retry_after": 1.5}'), b'{"retry_after": 1.5}', False, 0.0)
    assert limited.kind is CallKind.HELD and limited.wait == 1.5
    slack_limited = read_slack(ok(429, retry_after="7"), b"", False, 0.0)
    assert slack_limited.kind is CallKind.HELD and slack_limited.wait == 7
    assert read_slack(Outcome(None, Failure.READ_TIMEOUT, 1.0), b"", False, 0.0).kind is CallKind.RETRY


@pytest.mark.parametrize("state", ["running", "failed"])
@pytest.mark.parametrize("fmt", ["slack", "discord"])
def test_the_live_message_bytes_are_reviewed_goldens(state: str, fmt: str) -> None:
    failure = {"rule": "call_variants", "exit_code": 137, "stderr": "Killed: out of memory"}
    view = LiveView("variant-calling", "42", state, {"RuleStarted": 320, "RuleCompleted": 309, "RuleFailed": 3}, 500, 4320.0, failure)
    assert_golden(fmt, f"live-{state}", encode(render_live_slack(view) if fmt == "slack" else render_live_discord(view)))


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(workflow=st.text(max_size=300), run=st.text(max_size=300), stderr=st.text(max_size=5000), done=st.integers(0, 10**7),
       total=st.one_of(st.none(), st.integers(1, 10**7)))  # fmt: skip
def test_any_text_and_any_counts_make_a_message_each_platform_takes(
    workflow: str, run: str, stderr: str, done: int, total: int | None
) -> None:
    view = LiveView(workflow, run or None, "running", {"RuleCompleted": done}, total, 1.0, {"rule": run, "stderr": stderr}, 3)
    for fmt, payload in (("slack", render_live_slack(view)), ("discord", render_live_discord(view))):
        assert problems_of(fmt, encode(payload)) == [], fmt


def test_a_kept_failure_is_bounded_whatever_the_event_carried() -> None:
    # given a RuleFailed with a long message and 150 KB of other details (found by a hostile read: ten of them
    # pushed the state item past DynamoDB's 400 KB and failed the event for every webhook)
    from oxoflow_notify.pipeline.live import kept_failure

    big = event("RuleFailed", rule="align", message="m" * 4000, details={"exit_code": 3, "stderr": "e" * 9000, "env": "x" * 150_000})
    kept = kept_failure(big)
    # then what is kept renders a reply and stays small: the exit code, the stderr's tail, the message's head
    assert len(json.dumps(kept)) < 2_500 and kept["details"] == {"exit_code": 3, "stderr": "e" * 1000}

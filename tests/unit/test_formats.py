"""Rendering: the JSON shape, and Slack messages Slack's incoming webhooks accept."""

from __future__ import annotations

import json
from typing import Any

import pytest

from oxoflow_notify.events import EVENT_NAMES, parse_event
from oxoflow_notify.formats import FORMATS, SLACK_COLOURS, STYLES, keep_tail, render, truncate
from tests.conftest import EVENT_KINDS, RECEIVED_AT, message


def event_of(data: dict[str, Any]) -> Any:
    return parse_event(json.dumps(data), message_id="m-1", received_at=RECEIVED_AT)


def slack(data: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(render(event_of(data), "slack"))
    return body


def test_one_style_per_event_and_every_outcome_has_a_colour() -> None:
    assert set(STYLES) == set(EVENT_NAMES)
    assert {s.outcome for s in STYLES.values()} <= set(SLACK_COLOURS)


def test_json_body_is_the_event_payload_as_compact_utf8() -> None:
    event = event_of({**message("rule-failed"), "message": "échec ✗"})
    body = render(event, "json")
    assert json.loads(body) == event.to_payload()
    assert "échec ✗".encode() in body  # not \\u-escaped: receivers see the text as written
    assert b": " not in body.split(b'"message"')[0]  # compact separators


@pytest.mark.parametrize("kind", EVENT_KINDS)
@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_every_sample_renders_to_a_json_object(kind: str, fmt: str) -> None:
    assert isinstance(json.loads(render(event_of(message(kind)), fmt)), dict)


@pytest.mark.parametrize(
    ("kind", "colour"),
    [("rule-failed", "#e01e5a"), ("workflow-completed", "#2eb67d"), ("rule-started", "#868e96"), ("rule-skipped", "#ecb22e")],
)
def test_slack_colour_follows_the_outcome(kind: str, colour: str) -> None:
    assert slack(message(kind))["attachments"][0]["color"] == colour


def test_slack_message_has_fallback_text_header_facts_stderr_and_time() -> None:
    body = slack(message("rule-failed"))
    assert body["text"].startswith("Rule failed: variant-calling / align_reads")
    assert body["blocks"][0]["type"] == "header"
    assert "Rule failed: variant-calling / align_reads" in body["blocks"][0]["text"]["text"]
    blocks = body["attachments"][0]["blocks"]
    fields = [f["text"] for f in blocks[1]["fields"]]
    assert fields == ["*Workflow*\nvariant-calling", "*Rule*\nalign_reads", "*Exit code*\n1"]
    assert blocks[2]["text"]["text"] == "```bwa: command not found```"
    assert blocks[-1]["type"] == "context" and "2026-05-18T12:00:00Z" in blocks[-1]["elements"][0]["text"]


def test_slack_escapes_its_control_characters() -> None:
    body = slack({"event": "RuleFailed", "workflow": "wf", "rule": "<b>&", "message": "a <@U123> & <!channel>"})
    text = json.dumps(body)
    assert "<!channel>" not in text and "<@U123>" not in text
    assert "a &lt;@U123&gt; &amp; &lt;!channel&gt;" in body["attachments"][0]["blocks"][0]["text"]["text"]


def test_long_stderr_keeps_the_tail_and_the_code_block_closed() -> None:
    stderr = "noise\n" * 2000 + "``` sneaky fence\nFATAL: out of memory"
    body = slack({"event": "RuleFailed", "workflow": "wf", "rule": "r", "details": {"stderr": stderr}})
    code = body["attachments"][0]["blocks"][2]["text"]["text"]
    assert code.startswith("```…") and code.endswith("FATAL: out of memory```")
    assert code.count("```") == 2
    assert len(code) <= 3000


def test_slack_section_and_header_limits_hold_for_huge_text() -> None:
    body = slack({"event": "RuleFailed", "workflow": "wf", "rule": "r" * 1000, "message": "m" * 4096})
    assert len(body["blocks"][0]["text"]["text"]) <= 150
    assert len(body["attachments"][0]["blocks"][0]["text"]["text"]) <= 3000
    assert all(len(f["text"]) <= 2000 for f in body["attachments"][0]["blocks"][1]["fields"])


def test_duration_is_shown_readably() -> None:
    fields = slack(message("workflow-completed"))["attachments"][0]["blocks"][1]["fields"]
    assert {"type": "mrkdwn", "text": "*Duration*\n1 h 41 min"} in fields


def test_truncation_markers() -> None:
    assert truncate("abcdef", 4) == "abc…" and truncate("abc", 4) == "abc"
    assert keep_tail("abcdef", 4) == "…def" and keep_tail("abc", 4) == "abc"

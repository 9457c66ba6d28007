"""Rendering: golden payloads per event type x format, receivers' limits under any input, safety."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from oxoflow_notify.errors import EventError
from oxoflow_notify.formats import FORMATS, STYLES, render
from oxoflow_notify.formats.common import fit, fit_bytes, fit_tail, units
from oxoflow_notify.inbound.events import EVENT_NAMES, SYSTEM_EVENTS, parse_event
from oxolocal.shapes import problems_of
from tests.conftest import EVENT_KINDS, GOLDEN, RECEIVED_AT, ROOT, assert_golden, message


def event_of(data: dict[str, Any]) -> Any:
    return parse_event(json.dumps(data), message_id="4a7c1a3e-0000-4000-8000-000000000001", received_at=RECEIVED_AT)


def rendered(data: dict[str, Any], fmt: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(render(event_of(data), fmt))
    return body


def test_one_style_per_event_and_one_renderer_per_format() -> None:
    assert set(STYLES) == {*EVENT_NAMES, *SYSTEM_EVENTS}
    assert set(FORMATS) == {"json", "slack", "teams", "discord", "text", "oxoflow", "pagerduty"}


@pytest.mark.parametrize("kind", EVENT_KINDS)
@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_golden_payloads(kind: str, fmt: str) -> None:
    """tests/golden/<format>/<kind>.json holds each body (conftest.assert_golden: byte for byte,
    and UPDATE_GOLDEN=1 rewrites them and fails on purpose)."""
    assert_golden(fmt, kind, render(event_of(message(kind)), fmt))


# -- any valid event, however hostile, renders within every receiver's limits --------------------

HOSTILE = [
    "```",
    "<!channel>",
    "@everyone",
    "&amp;&",
    "<script>",
    "\u202e",
    "\x00\x1b[31m",
    "[x](http://evil)",
    "**",
    "\ud83d",
    "😀",
    "\r\n",
]
pieces = st.one_of(st.text(max_size=30), st.sampled_from(HOSTILE), st.characters(exclude_categories=[]).map(str))
hostile_text = st.lists(pieces, max_size=12).map("".join)
huge_text = st.tuples(hostile_text, st.integers(1, 3000)).map(lambda t: (t[0] or "é") * t[1])
any_text = st.one_of(hostile_text, huge_text)
names = st.sampled_from([*EVENT_NAMES, "rule_failed", "workflow_completed", "rule_skipped"])


@st.composite
def events(draw: st.DrawFn) -> dict[str, Any]:
    name = draw(names)
    data: dict[str, Any] = {
        "event": name,
        "workflow": draw(st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")),
        "rule": draw(any_text.map(lambda s: (s or "r")[:1024])),
        "message": draw(st.none() | any_text.map(lambda s: s[:4096])),
        "run_id": draw(st.none() | hostile_text.map(lambda s: s[:1024])),
        "details": {
            "stderr": draw(any_text),
            "exit_code": draw(st.none() | st.integers(-(2**63), 2**63)),
            "duration_s": draw(st.none() | st.floats(0, 1e9)),
            "succeeded": draw(st.none() | st.integers(0, 10**6)),
        },
    }
    return data


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.large_base_example])
@given(events())
def test_any_valid_event_renders_within_every_receivers_limits(data: dict[str, Any]) -> None:
    try:
        event = event_of(data)
    except EventError:
        assume(False)
        return
    for fmt in FORMATS:
        body = render(event, fmt)
        assert problems_of(fmt, body) == [], fmt
        if fmt == "slack":
            for block in json.loads(body)["attachments"][0]["blocks"]:
                assert block.get("text", {}).get("text", "").count("```") % 2 == 0, "code block left open"
        if fmt == "text":
            assert json.loads(body)["text"].count("```") % 2 == 0, "code block left open"


# -- specific behaviours -------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "slack", "discord", "teams"), [
    ("rule-failed", "#e01e5a", 0xE01E5A, "attention"),
    ("workflow-completed", "#2eb67d", 0x2EB67D, "good"),
    ("rule-started", "#868e96", 0x868E96, "emphasis"),
    ("rule-skipped", "#ecb22e", 0xECB22E, "warning"),
    ("workflow-cancelled", "#ecb22e", 0xECB22E, "warning"),
])  # fmt: skip
def test_colour_follows_the_outcome_in_every_format(kind: str, slack: str, discord: int, teams: str) -> None:
    assert rendered(message(kind), "slack")["attachments"][0]["color"] == slack
    assert rendered(message(kind), "discord")["embeds"][0]["color"] == discord
    assert rendered(message(kind), "teams")["attachments"][0]["content"]["body"][0]["style"] == teams


def test_every_format_shows_the_same_facts_in_the_same_order() -> None:
    data = message("workflow-completed")
    slack = [f["text"].split("\n")[0].strip("*") for f in rendered(data, "slack")["attachments"][0]["blocks"][1]["fields"]]
    discord = [f["name"] for f in rendered(data, "discord")["embeds"][0]["fields"]]
    teams = [f["title"] for f in rendered(data, "teams")["attachments"][0]["content"]["body"][2]["facts"]]
    text = [p.split(":")[0] for p in rendered(data, "text")["text"].split("\n")[2].split(" · ")]
    assert slack == discord == teams == text == ["Workflow", "Run", "Duration", "Succeeded", "Failed", "Skipped", "Rules"]


def test_slack_escapes_mentions_and_links() -> None:
    body = rendered({"event": "RuleFailed", "workflow": "wf", "rule": "<b>&", "message": "a <@U123> & <!channel>"}, "slack")
    assert "<!channel>" not in json.dumps(body) and "<@U123>" not in json.dumps(body)
    assert body["attachments"][0]["blocks"][0]["text"]["text"] == "a &lt;@\u2060U123&gt; &amp; &lt;!channel&gt;"
    # the plain forms newer clients (or link_names) would link, and the header, which has no escapes
    plain = rendered({"event": "RuleFailed", "workflow": "wf", "rule": "<!subteam^S1> @here", "message": "@channel #general"}, "slack")
    assert plain["attachments"][0]["blocks"][0]["text"]["text"] == "@\u2060channel #\u2060general"
    assert plain["blocks"][0]["text"]["text"] == ":x: Rule failed: wf / <\u2060!subteam^S1> @\u2060here"


def test_discord_cannot_ping_or_mask_links() -> None:
    body = rendered({"event": "RuleFailed", "workflow": "wf", "rule": "r", "message": "@everyone [click](http://evil)"}, "discord")
    assert body["allowed_mentions"] == {"parse": []}
    assert "\\[click\\](http://evil)" in body["embeds"][0]["description"]
    assert body["embeds"][0]["description"].startswith("@\u2060everyone")


def test_teams_and_text_cannot_ping_or_hide_links() -> None:
    data = {"event": "RuleFailed", "workflow": "wf", "rule": "r", "message": "@here [click](https://evil) <https://evil|x> <users/all>"}
    broken = "@\u2060here [click]\u2060(https://evil) <\u2060https://evil|x> <\u2060users/all>"
    assert rendered(data, "teams")["attachments"][0]["content"]["body"][1]["text"] == broken
    assert rendered(data, "text")["text"].split("\n")[1] == broken


def test_long_stderr_keeps_its_tail_in_a_closed_code_block() -> None:
    stderr = "noise line\n" * 5000 + "``` sneaky fence\nFATAL: out of memory"
    data = {"event": "RuleFailed", "workflow": "wf", "rule": "r", "details": {"stderr": stderr}}
    slack_code = rendered(data, "slack")["attachments"][0]["blocks"][2]["text"]["text"]
    assert slack_code.startswith("```\n…") and slack_code.endswith("FATAL: out of memory\n```") and slack_code.count("```") == 2
    discord_description = rendered(data, "discord")["embeds"][0]["description"]
    assert discord_description.endswith("FATAL: out of memory\n```") and discord_description.count("```") == 2
    assert rendered(data, "teams")["attachments"][0]["content"]["body"][3]["text"].endswith("FATAL: out of memory")
    assert "FATAL: out of memory\n```" in rendered(data, "text")["text"]


def test_control_and_bidi_characters_are_removed_from_chat_text() -> None:
    data = {"event": "RuleFailed", "workflow": "wf", "rule": "r\x1b[31m", "message": "evil\u202etxt.exe\x00"}
    for fmt in ("slack", "teams", "discord", "text"):
        text = json.dumps(rendered(data, fmt), ensure_ascii=False)
        assert "\u202e" not in text and "\\u0000" not in text and "\\u001b" not in text, fmt


def test_the_json_format_keeps_the_event_as_published() -> None:
    data = {**message("rule-failed"), "message": "échec ✗ \x1b"}
    assert rendered(data, "json")["message"] == "échec ✗ \x1b"
    assert "échec ✗".encode() in render(event_of(data), "json")


def test_a_lone_surrogate_becomes_a_replacement_character() -> None:
    for fmt in FORMATS:
        assert "\ufffd" in render(event_of({"event": "RuleFailed", "workflow": "wf", "rule": "r\ud800"}), fmt).decode()


def test_fitting_never_splits_a_character_and_marks_the_cut() -> None:
    assert fit("abcdef", 4) == "abc…" and fit("abc", 4) == "abc"
    assert fit_tail("abcdef", 4) == "…def" and fit_tail("abc", 4) == "abc"
    assert units("😀") == 2 and units(fit("😀" * 10, 5)) <= 5 and fit("😀" * 10, 5) == "😀😀…"
    assert fit_tail("😀" * 10, 5) == "…😀😀"
    assert fit_bytes("é" * 10, 7) == "éé…" and len(fit_bytes("é" * 10, 7).encode()) <= 7


def test_the_samples_in_docs_formats_md_are_the_golden_files() -> None:
    doc = (ROOT / "docs" / "formats.md").read_text(encoding="utf-8")
    for fmt in FORMATS:
        golden = (GOLDEN / fmt / "rule-failed.json").read_text(encoding="utf-8").rstrip("\n")
        assert f"```json\n{golden}\n```" in doc, f"docs/formats.md shows an outdated {fmt} sample"

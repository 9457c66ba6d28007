"""No event text becomes a mention or a link in any chat format.

Hostile text (mentions, angle forms, markdown links, character references, backslash escapes,
invisible and control characters, in random mixes and at lengths that force cuts) goes into every
text field of every event type; each chat body is then read the way its receivers read it and
checked for the live forms they parse (see docs/formats.md, "What event text can and cannot do").

The checkers are deliberately broader than the services: a form that *might* be parsed counts.
``json`` and ``oxoflow`` are raw data for programs, not chat text: the test pins that they carry
the text unchanged.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from oxoflow_notify.errors import EventError
from oxoflow_notify.formats import render
from oxoflow_notify.inbound.events import EVENT_NAMES, parse_event
from tests.conftest import RECEIVED_AT

CHAT_FORMATS = ("slack", "teams", "discord", "text")
WJ = "\u2060"  # WORD JOINER: what the renderers put after a sigil to break it

# -- the live forms each service parses --------------------------------------------------------

# @here @channel @everyone @all @name: Slack (link_names, newer clients), Discord, Mattermost,
# Rocket.Chat. Any at-sign directly followed by a name character counts.
MENTION = re.compile(r"@(?=[\w.\-])")
# #channel (Slack with link_names, Rocket.Chat) and ~channel (Mattermost) channel links.
HASH_CHANNEL = re.compile(r"#(?=\w)")
TILDE_CHANNEL = re.compile(r"~(?=\w)")
# Every angle form: Slack <!here> <!channel> <!everyone> <!subteam^…> <@U…> <#C…> <url|text>;
# Google Chat <users/all> <users/123> <url|text>; Rocket.Chat <url|text>; Discord <@id> <@&id>
# <#id> <t:…> </cmd:id>; CommonMark autolinks <https://…>; Teams <at>. Any '<' counts unless a
# word joiner breaks it or it is the last character before a cut's "…" (no target starts with …).
ANGLE = re.compile(r"<(?![\u2060…])")
# Markdown links: inline [t](u) and images ![a](u), reference [t][r] (old marked allows a space
# between), and reference definitions [r]: u (which would make a bare [t] a link).
MARKDOWN_LINK = re.compile(r"\][ \t]*[(\[:]")

# Discord's markdown escape (simple-markdown): a backslash before any ASCII character that is not
# a letter, digit or space makes it literal. Escaped characters are blanked before matching.
DISCORD_ESCAPED = re.compile(r"\\[^0-9A-Za-z\s]")
# Markdown receivers (Mattermost, Google Chat's Markdown syntax, Teams) turn \@ into @ *before*
# Mattermost looks for mentions, and Teams' mobile clients ignore escapes: backslashes protect
# nothing, so they are removed before matching; character references are decoded (&#64;here is
# @here to Mattermost's mention parser).
MARKDOWN_ESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")


def _markdown_decoded(text: str) -> str:
    return html.unescape(MARKDOWN_ESCAPE.sub(r"\1", text))


def _discord_decoded(text: str) -> str:
    return DISCORD_ESCAPED.sub("\x00", text)


Form = tuple[str, re.Pattern[str]]
CHECKS: dict[str, tuple[Callable[[str], str], list[Form]]] = {
    # mrkdwn: &lt; &gt; &amp; are literal text to Slack, so no decoding.
    "slack": (str, [("mention", MENTION), ("#channel", HASH_CHANNEL), ("angle form", ANGLE), ("markdown link", MARKDOWN_LINK)]),
    "teams": (_markdown_decoded, [("mention", MENTION), ("angle form", ANGLE), ("markdown link", MARKDOWN_LINK)]),
    "discord": (_discord_decoded, [("mention", MENTION), ("angle form", ANGLE), ("markdown link", MARKDOWN_LINK)]),
    "text": (
        _markdown_decoded,
        [
            ("mention", MENTION),
            ("#channel", HASH_CHANNEL),
            ("~channel", TILDE_CHANNEL),
            ("angle form", ANGLE),
            ("markdown link", MARKDOWN_LINK),
        ],
    ),
}


def visible_strings(fmt: str, payload: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, text) for every string of the body a person sees."""
    if fmt == "slack":
        yield "text", payload["text"]
        for i, block in enumerate(payload["blocks"]):
            yield f"blocks[{i}]", block["text"]["text"]
        for i, block in enumerate(payload["attachments"][0]["blocks"]):
            if "text" in block:
                yield f"attachment block {i}", block["text"]["text"]
            for j, item in enumerate(block.get("fields", []) + block.get("elements", [])):
                yield f"attachment block {i} item {j}", item["text"]
    elif fmt == "teams":

        def walk(items: list[dict[str, Any]], where: str) -> Iterator[tuple[str, str]]:
            for i, item in enumerate(items):
                if item["type"] == "TextBlock":
                    yield f"{where}[{i}]", item["text"]
                elif item["type"] == "FactSet":
                    for j, fact in enumerate(item["facts"]):
                        yield f"{where}[{i}].facts[{j}].title", fact["title"]
                        yield f"{where}[{i}].facts[{j}].value", fact["value"]
                elif item["type"] == "Container":
                    yield from walk(item["items"], f"{where}[{i}].items")

        yield from walk(payload["attachments"][0]["content"]["body"], "body")
    elif fmt == "discord":
        assert payload["allowed_mentions"] == {"parse": []}, "Discord must be told to parse no mentions"
        for embed in payload["embeds"]:
            yield "title", embed["title"]
            yield "description", embed["description"]
            for j, field in enumerate(embed["fields"]):
                yield f"fields[{j}].name", field["name"]
                yield f"fields[{j}].value", field["value"]
            yield "footer", embed["footer"]["text"]
    else:
        yield "text", payload["text"]


def live_forms(fmt: str, payload: dict[str, Any]) -> list[str]:
    """Every mention or link a receiver of ``fmt`` could find in the body, described."""
    decode, forms = CHECKS[fmt]
    found = []
    for where, raw in visible_strings(fmt, payload):
        text = decode(raw)
        for name, pattern in forms:
            for match in pattern.finditer(text):
                found.append(f"{fmt} {where}: live {name} at {match.start()}: {text[max(0, match.start() - 12) : match.start() + 24]!r}")
    return found


# -- hostile text ------------------------------------------------------------------------------

TOKENS = [
    "@here", "@channel", "@everyone", "@all", "@alice", "@U123ABC", "@here:", "(@channel)", "@_x",
    "<!here>", "<!channel>", "<!everyone>", "<!subteam^S0123|@oncall>", "<!date^1392734382^{date}|x>",
    "<@U123>", "<@!123456789012345678>", "<@&123456789012345678>", "<#C123|general>", "<#123456789012345678>",
    "</deploy:123456789012345678>", "<t:1700000000:R>", "<users/all>", "<users/123456789012345678901>",
    "<at>Alice</at>", "<https://evil.example|click>", "<https://evil.example>", "<mailto:a@evil.example|mail>",
    "[click](https://evil.example)", "![x](https://evil.example/p.png)", "[click] (https://evil.example)",
    "[click][1]\n\n[1]: https://evil.example", "[click]\n\n[click]: https://evil.example", "[a] [b]",
    "\\[x\\](https://evil.example)", "\\@here", "\\<!channel>", "&#64;here", "&#x40;channel", "&commat;all",
    "&lt;!channel&gt;", "&#91;x&#93;(https://evil.example)", "#general", "~town-square", "@\u200beveryone",
    "@\ufeffhere", "<\ufeff!channel>", "]\ufeff(https://evil.example)", "https://bare.example/path",
    "www.bare.example", "a@b.example",
]  # fmt: skip
FRAGMENTS = [
    "@", "<", ">", "[", "]", "(", ")", "!", "|", "\\", "&", "#", "~", ";", ":", "/", "^", "\n", "\n\n", " ", "\t",
    WJ, "\u200b", "\ufeff", "\u202e", "\x00", "\x1b", "\r", "é", "😀", "＠", "`", "```", "*", "_", "here", "all",
    "channel", "everyone", "https://e.example", "users/all",
]  # fmt: skip
pieces = st.one_of(
    st.sampled_from(TOKENS),
    st.sampled_from(FRAGMENTS),
    st.text(max_size=6),
    st.from_regex(r"[a-z0-9]{1,6}", fullmatch=True),
)
hostile = st.lists(pieces, min_size=1, max_size=16).map("".join)
# Long repeats force every cut (head and tail, by units and by bytes) to land inside the forms.
repeated = st.tuples(st.sampled_from([*TOKENS, "@", "<", "]", "&#64;"]), st.integers(200, 1200)).map(lambda t: t[0] * t[1])
any_hostile = st.one_of(hostile, hostile, repeated)
workflows = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,40}\Z")
names = st.sampled_from([*EVENT_NAMES, "rule_failed", "workflow_cancelled"])


@st.composite
def hostile_events(draw: st.DrawFn) -> dict[str, Any]:
    """An event with hostile text in every field that can carry text."""
    details: dict[str, Any] = {"stderr": draw(any_hostile)}
    details["exit_code"] = draw(st.one_of(st.integers(-5, 300), any_hostile.map(lambda s: s[:200])))
    if draw(st.booleans()):
        details["duration_s"] = draw(st.floats(0, 1e6))
        details["succeeded"] = draw(st.integers(0, 1000))
    return {
        "event": draw(names),
        "workflow": draw(workflows),
        "rule": draw(any_hostile).strip()[:1024] or "r@here",
        "message": draw(any_hostile)[:4096],
        "run_id": draw(any_hostile)[:1024],
        "id": draw(any_hostile)[:1024],
        "details": details,
    }


def event_of(data: dict[str, Any]) -> Any:
    return parse_event(json.dumps(data), message_id="m-1", received_at=RECEIVED_AT)


def body(data: dict[str, Any], fmt: str) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads(render(event_of(data), fmt))
    return payload


# -- the tests ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", CHAT_FORMATS)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.large_base_example])
@given(data=hostile_events())
def test_no_hostile_text_becomes_a_mention_or_a_link(fmt: str, data: dict[str, Any]) -> None:
    try:
        event_of(data)
    except EventError:
        assume(False)
    assert live_forms(fmt, body(data, fmt)) == []


@pytest.mark.parametrize("fmt", CHAT_FORMATS)
@pytest.mark.parametrize("token", TOKENS)
def test_each_known_form_is_broken_in_every_field(fmt: str, token: str) -> None:
    data = {
        "event": "RuleFailed",
        "workflow": "wf",
        "rule": f"r {token}",
        "message": f"m {token} m",
        "run_id": token,
        "id": token,
        "details": {"stderr": f"line\n{token}\nend", "exit_code": token},
    }
    assert live_forms(fmt, body(data, fmt)) == []


@pytest.mark.parametrize("fmt", CHAT_FORMATS)
def test_the_checker_sees_each_form_it_claims(fmt: str) -> None:
    """The checkers are not vacuous: fed raw text, each finds the forms its receivers parse."""
    decode, forms = CHECKS[fmt]
    names = {name for name, _ in forms}
    samples = {"mention": "@here", "#channel": "#general", "~channel": "~town", "angle form": "<!channel>", "markdown link": "[a](b)"}
    for name in names:
        assert any(p.search(decode(samples[name])) for n, p in forms if n == name), (fmt, name)
    if fmt in ("teams", "text"):
        assert MENTION.search(decode("&#64;here")) and MENTION.search(decode("\\@here"))
    if fmt == "discord":
        assert not MARKDOWN_LINK.search(decode("\\[a\\](b)")) and MARKDOWN_LINK.search(decode("\\\\[a](b)"))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.large_base_example])
@given(data=hostile_events())
def test_json_and_oxoflow_are_raw_data_and_carry_the_text_unchanged(data: dict[str, Any]) -> None:
    """Programs, not people, read these two: they get exactly what was published."""
    try:
        event = event_of(data)
    except EventError:
        assume(False)
        return
    as_json = body(data, "json")
    assert (as_json["rule"], as_json["message"], as_json["run_id"], as_json["id"]) == (event.rule, event.message, event.run_id, event.id)
    assert as_json["details"]["stderr"] == event.details["stderr"]
    assert body(data, "oxoflow")["data"]["rule"] == event.rule


def test_text_and_teams_keep_the_text_readable() -> None:
    """Only invisible word joiners are added: remove them and the text reads as it was sent."""
    data = {"event": "RuleFailed", "workflow": "wf", "rule": "align", "message": "@here see [docs](https://x.example) <!channel> &#64;all"}
    for fmt in ("text", "teams"):
        shown = json.dumps(body(data, fmt), ensure_ascii=False)
        assert "@here see [docs](https://x.example) <!channel> &#64;all" in shown.replace(WJ, ""), fmt

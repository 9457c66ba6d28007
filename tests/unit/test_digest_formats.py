"""Rendering a digest (many Rule* events of one run as one message): goldens per format, the
receivers' limits and no live mention or link under hostile input, "and N more" that adds up, the
json payload against events/digest.schema.json and back, and renderers imported only when used."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oxoflow_notify.config.format_names import FORMAT_NAMES
from oxoflow_notify.formats import DIGEST_FORMATS, FORMATS, render, render_digest
from oxoflow_notify.inbound.digests import CLOSED_BY, Digest, digest_from_payload
from oxoflow_notify.inbound.events import parse_event
from oxoflow_notify.pipeline.digest import digest_delivery_id, group_of, kept_form
from oxolocal.shapes import problems_of
from tests.conftest import EVENTS, GOLDEN, RECEIVED_AT, ROOT, assert_golden
from tests.unit.test_neutralisation import any_hostile, live_forms, visible_strings

SCHEMA = json.loads((EVENTS / "digest.schema.json").read_text(encoding="utf-8"))
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)
CHAT_FORMATS = ("slack", "teams", "discord", "text")
DIGEST_KINDS = ("digest-failure-storm", "digest-small")
MORE = re.compile(r"and (\d+) more rule events?\b")
LISTED = re.compile(r"\br(\d{3})-")  # the rule names the fixtures give kept events: r000-..., r001-...


# -- the digests the tests render ---------------------------------------------------------------


OPENED = 1779105600.0  # 2026-05-18T12:00:00Z, when the sample windows opened


def kept(event: str, rule: str, n: int, details: dict[str, Any], run_id: str | None = "r-42") -> dict[str, Any]:
    """A kept event, as a window keeps it: the parsed event's payload (trimmed when large)."""
    data: dict[str, Any] = {"event": event, "workflow": "variant-calling", "rule": rule, "details": details,
                            "timestamp": f"2026-05-18T12:00:{n:02d}Z", "run_id": run_id}  # fmt: skip
    parsed = parse_event(json.dumps(data), message_id=f"4a7c1a3e-0000-4000-8000-{n:012d}", received_at=RECEIVED_AT)
    return kept_form(parsed.to_payload())


def digest_of(kind: str) -> Digest:
    """The digests of the goldens (and of the docs' samples)."""
    group = group_of("variant-calling.oxoflow", "wh_chat", "variant-calling", "r-42")
    if kind == "digest-small":
        events = (
            kept("RuleFailed", "align_reads", 1, {"exit_code": 1, "stderr": "bwa: command not found"}),
            kept("RuleCompleted", "fastqc", 2, {"duration_s": 200}),
            kept("RuleSkipped", "index_reference", 3, {}),
        )
        counts = {"RuleFailed": 1, "RuleCompleted": 1, "RuleSkipped": 1}
        return Digest(id=digest_delivery_id(group, 1, OPENED), workflow="variant-calling", run_id="r-42", opened="2026-05-18T12:00:01Z",
                      closed="2026-05-18T12:01:10Z", seconds=120.0, closed_by="workflow_end", counts=counts, events=events,
                      total=3, window=1)  # fmt: skip
    if kind == "digest-failure-storm":
        stderr = "chr{}: reading BAM\nKilled: out of memory"
        failed = tuple(
            kept("RuleFailed", f"call_variants_chr{i + 1}", i, {"exit_code": 137, "stderr": stderr.format(i + 1)}) for i in range(10)
        )
        completed = tuple(kept("RuleCompleted", f"fastqc_sample{i + 1}", 10 + i, {"duration_s": 30 + i}) for i in range(10))
        counts = {"RuleFailed": 280, "RuleCompleted": 20}
        return Digest(id=digest_delivery_id(group, 2, OPENED), workflow="variant-calling", run_id="r-42", opened="2026-05-18T12:00:00Z",
                      closed="2026-05-18T12:02:00Z", seconds=120.0, closed_by="timer", counts=counts,
                      events=failed + completed, total=300, window=2)  # fmt: skip
    raise ValueError(kind)


def numbered(count: int, total: int, name: str = "", stderr: str = "", closed_by: str = "full") -> Digest:
    """``count`` kept events named r000-<name>, r001-<name>, ...: half failed (first), half completed."""
    events = []
    for i in range(count):
        event = "RuleFailed" if i < count / 2 else "RuleCompleted"
        events.append({"event": event, "workflow": "wf", "timestamp": "2026-05-18T12:00:00Z", "rule": f"r{i:03d}-{name}",
                       "message": "m", "details": {"exit_code": 2, "stderr": stderr}, "id": f"e{i}"})  # fmt: skip
    failed = sum(1 for e in events if e["event"] == "RuleFailed")
    counts = {k: v for k, v in {"RuleFailed": failed + (total - count), "RuleCompleted": count - failed}.items() if v}
    return Digest(id="d-1", workflow="wf", run_id=None, opened="2026-05-18T12:00:00Z", closed="2026-05-18T12:15:00Z", seconds=900.0,
                  closed_by=closed_by, counts=counts, events=tuple(events), total=total)  # fmt: skip


def body(digest: Digest, fmt: str) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads(render_digest(digest, fmt))
    return payload


def visible(fmt: str, payload: dict[str, Any]) -> str:
    return "\n".join(text for _, text in visible_strings(fmt, payload))


def readable(fmt: str, payload: dict[str, Any]) -> str:
    """The visible text as people read it: no word joiners, Discord's escapes honoured."""
    text = visible(fmt, payload).replace("\u2060", "")
    return re.sub(r"\\([^0-9A-Za-z\s])", r"\1", text) if fmt == "discord" else text


def code_blocks_closed(fmt: str, payload: dict[str, Any]) -> bool:
    """Every markdown text is left with its ``` blocks closed (Teams has none: stderr is a monospace
    TextBlock; Slack's header and Discord's title and footer are plain text)."""
    if fmt == "discord":
        return all(embed["description"].count("```") % 2 == 0 for embed in payload["embeds"])
    markdown = [text for where, text in visible_strings(fmt, payload) if not where.startswith("blocks[")]
    return fmt == "teams" or all(text.count("```") % 2 == 0 for text in markdown)


# -- goldens ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", DIGEST_KINDS)
@pytest.mark.parametrize("fmt", FORMAT_NAMES)
def test_digest_golden_payloads(kind: str, fmt: str) -> None:
    """tests/golden/<format>/digest-*.json, as test_formats.py's goldens: UPDATE_GOLDEN=1 rewrites
    them and fails on purpose; review the diff and run again without it."""
    # given a digest of the fixtures, when it is rendered
    raw = render_digest(digest_of(kind), fmt)
    # then the body is the golden file, byte for byte in its compact form, and the receiver takes it
    assert_golden(fmt, kind, raw)


@pytest.mark.parametrize("kind", DIGEST_KINDS)
def test_oxoflow_receivers_get_the_json_digest_payload(kind: str) -> None:
    # given oxo-flow's own receivers, which have no digest shape
    # then the oxoflow format sends exactly the json format's digest payload
    assert render_digest(digest_of(kind), "oxoflow") == render_digest(digest_of(kind), "json")
    assert json.loads(render_digest(digest_of(kind), "json")) == digest_of(kind).to_payload()


def test_the_samples_in_docs_formats_md_are_the_digest_golden_files() -> None:
    # given docs/formats.md's Digests section; then its samples are the digest-small goldens
    doc = (ROOT / "docs" / "formats.md").read_text(encoding="utf-8")
    section = doc.split("\n## Digests", 1)[1]
    for fmt in ("json", "slack", "teams", "discord", "text"):
        golden = (GOLDEN / fmt / "digest-small.json").read_text(encoding="utf-8").rstrip("\n")
        assert f"```json\n{golden}\n```" in section, f"docs/formats.md's Digests section shows an outdated {fmt} sample"


# -- what the storm shows -----------------------------------------------------------------------


@pytest.mark.parametrize("fmt", CHAT_FORMATS)
def test_the_storm_shows_counts_failed_rules_first_three_stderr_tails_and_the_rest_as_and_n_more(fmt: str) -> None:
    # given 300 events, 280 failed and 20 completed, 10 of each kept
    text = readable(fmt, body(digest_of("digest-failure-storm"), fmt))
    # then the headline says it all, failed rules come before completed ones, with their exit code
    assert "variant-calling (run r-42): 300 rule events in 2 min 0 s — 280 failed, 20 completed" in text
    assert text.index("call_variants_chr10") < text.index("fastqc_sample1")
    assert "call_variants_chr1 — failed with exit code 137" in text
    # and only the first three failed rules show their stderr tail
    assert [n for n in range(1, 11) if f"chr{n}: reading BAM" in text] == [1, 2, 3]
    assert text.count("Killed: out of memory") == 3
    # and everything not listed is "and N more"
    assert "and 280 more rule events" in text
    # and the window and the footer
    assert "Window 2 opened 2026-05-18T12:00:00Z, closed 2026-05-18T12:02:00Z when its time was up." in text
    assert "workflow variant-calling · run r-42" in text and digest_of("digest-failure-storm").id in text


@pytest.mark.parametrize(("counts", "slack", "discord", "teams"), [
    ({"RuleFailed": 1, "RuleSkipped": 1, "RuleCompleted": 1}, "#e01e5a", 0xE01E5A, "attention"),
    ({"RuleSkipped": 2, "RuleCompleted": 1, "RuleStarted": 1}, "#ecb22e", 0xECB22E, "warning"),
    ({"RuleCompleted": 3, "RuleStarted": 1}, "#2eb67d", 0x2EB67D, "good"),
    ({"RuleStarted": 4}, "#868e96", 0x868E96, "emphasis"),
])  # fmt: skip
def test_the_colour_is_the_worst_outcome_of_the_window(counts: dict[str, int], slack: str, discord: int, teams: str) -> None:
    # given a digest of only those counts (no kept events)
    digest = Digest(id="d", workflow="wf", run_id=None, opened="2026-05-18T12:00:00Z", closed="2026-05-18T12:01:00Z", seconds=60,
                    closed_by="timer", counts=counts, total=sum(counts.values()))  # fmt: skip
    # then each chat format takes the colour of the worst event in it
    assert body(digest, "slack")["attachments"][0]["color"] == slack
    assert body(digest, "discord")["embeds"][0]["color"] == discord
    assert body(digest, "teams")["attachments"][0]["content"]["body"][0]["style"] == teams


@pytest.mark.parametrize("closed_by", CLOSED_BY)
def test_every_format_says_why_the_window_closed(closed_by: str) -> None:
    # given a window closed by the timer, the workflow's end or being full; then every chat format says which
    reason = {"timer": "when its time was up", "workflow_end": "when the workflow ended", "full": "early, as it was full"}[closed_by]
    for fmt in CHAT_FORMATS:
        assert reason in visible(fmt, body(numbered(2, 2, closed_by=closed_by), fmt)), fmt


# -- "and N more" adds up --------------------------------------------------------------------------


def listed_and_more(fmt: str, payload: dict[str, Any]) -> tuple[int, int]:
    text = visible(fmt, payload)
    more = [int(n) for n in MORE.findall(text)]
    assert len(more) <= 1, more
    return len(set(LISTED.findall(text))), (more[0] if more else 0)


@pytest.mark.parametrize("fmt", CHAT_FORMATS)
@pytest.mark.parametrize(("count", "total", "name", "stderr"), [
    (3, 3, "small", "oops"),  # all listed, no "and N more"
    (20, 300, "storm", "x\n" * 100),
    (40, 40, "n" * 10_000, "e" * 50_000),  # names and stderr far beyond every limit
    (45, 5000, "😀" * 3000, "😀\n" * 20_000),
    (0, 7, "", ""),  # nothing kept: all seven are "and N more"
])  # fmt: skip
def test_listed_plus_n_more_is_the_total(fmt: str, count: int, total: int, name: str, stderr: str) -> None:
    # given a digest whose kept events may not all fit the receiver
    raw = render_digest(numbered(count, total, name, stderr), fmt)
    # then it fits, and what is listed plus "and N more" is every event of the window
    assert problems_of(fmt, raw) == []
    listed, more = listed_and_more(fmt, json.loads(raw))
    assert listed + more == total and listed <= count
    assert (more == 0) == (listed == total)


@pytest.mark.parametrize("fmt", CHAT_FORMATS)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(count=st.integers(0, 45), extra=st.integers(0, 10_000), name=st.integers(0, 3000), stderr=st.integers(0, 40_000))
def test_listed_plus_n_more_is_the_total_for_any_sizes(fmt: str, count: int, extra: int, name: int, stderr: int) -> None:
    # given any number of kept events, of any size, and any number left out; when rendered
    raw = render_digest(numbered(count, count + extra or 1, "é" * name, "line\n" * (stderr // 5)), fmt)
    # then it fits, and listed plus "and N more" is the total
    assert problems_of(fmt, raw) == []
    listed, more = listed_and_more(fmt, json.loads(raw))
    assert listed + more == (count + extra or 1)


def test_slack_lists_what_fits_its_fifty_blocks_and_counts_the_rest(monkeypatch: pytest.MonkeyPatch) -> None:
    # given 40 failed rules with long names and long stderr
    events = tuple({"event": "RuleFailed", "rule": f"r{i:03d}-" + "n" * 3000, "details": {"stderr": "e" * 3000}} for i in range(40))
    digest = Digest(id="d", workflow="wf", run_id=None, opened="o", closed="c", seconds=60, closed_by="timer",
                    counts={"RuleFailed": 40}, events=events, total=40)  # fmt: skip
    # when Slack renders them, then all are listed within the limits
    raw = render_digest(digest, "slack")
    assert problems_of("slack", raw) == [] and listed_and_more("slack", json.loads(raw)) == (40, 0)
    # and when fewer blocks are left than the list needs (here 8 in all: 3 for the list)
    monkeypatch.setattr("oxoflow_notify.formats.slack.BLOCKS_MAX", 8)
    payload = body(digest, "slack")
    # then the list stops at the limit, and every event is listed or counted
    assert len(payload["blocks"]) + len(payload["attachments"][0]["blocks"]) == 8
    assert listed_and_more("slack", payload) == (3, 37)


# -- hostile input -------------------------------------------------------------------------------

HOSTILE = ["<!here>", "<!channel>", "@everyone", "@here", "[x](http://evil)", "<https://evil|click>", "#general", "~town",
           "&#64;here", "```", "\u202e", "\x00\x1b[31m", "😀", "\r\n", "]:", "<users/all>"]  # fmt: skip
hostile_text = st.one_of(any_hostile, st.lists(st.sampled_from(HOSTILE), max_size=8).map("".join))
huge_text = st.tuples(hostile_text, st.integers(1, 10_000)).map(lambda t: ((t[0] or "@") * t[1])[:12_000])
texts = st.one_of(hostile_text, hostile_text, huge_text)


@st.composite
def hostile_events(draw: st.DrawFn) -> dict[str, Any]:
    details: dict[str, Any] = {
        "stderr": draw(st.one_of(texts, st.just("x" * 200_000), st.integers())),
        "exit_code": draw(st.one_of(st.integers(-(2**63), 2**63), texts, st.none())),
    }
    if draw(st.booleans()):
        details["duration_s"] = draw(st.floats(0, 1e12))
    return {
        "event": draw(st.sampled_from(["RuleFailed", "RuleFailed", "RuleCompleted", "RuleSkipped", "RuleStarted"])),
        "workflow": "wf",
        "timestamp": "2026-05-18T12:00:00Z",
        "rule": draw(st.one_of(texts, st.just("<!here>" * 1500))),
        "message": draw(texts),
        "details": details,
        "id": draw(texts),
    }


@st.composite
def hostile_digests(draw: st.DrawFn) -> Digest:
    events = tuple(draw(st.lists(hostile_events(), max_size=22)))
    counts = {name: n for name in ("RuleFailed", "RuleCompleted", "RuleSkipped", "RuleStarted") if (n := draw(st.integers(0, 10**6)))}
    return Digest(
        id=draw(texts),
        workflow=draw(st.one_of(st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z"), texts)),
        run_id=draw(st.none() | texts),
        opened=draw(st.one_of(st.just("2026-05-18T12:00:00Z"), texts)),
        closed=draw(st.one_of(st.just("2026-05-18T12:02:00.5+02:00"), texts)),
        seconds=draw(st.floats(1, 900)),
        closed_by=draw(st.one_of(st.sampled_from(CLOSED_BY), texts)),
        counts=counts,
        events=events,
        total=max(1, len(events) + draw(st.integers(0, 10**6))),  # a window opens with its first event
        window=draw(st.integers(1, 10**9)),
    )


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.large_base_example])
@given(hostile_digests())
def test_any_digest_renders_within_every_receivers_limits_and_nothing_becomes_a_mention_or_a_link(digest: Digest) -> None:
    # given a digest with hostile text wherever text can go, at lengths far beyond the limits
    for fmt in FORMAT_NAMES:
        # when it is rendered in each format
        raw = render_digest(digest, fmt)
        # then the receiver takes it
        assert problems_of(fmt, raw) == [], fmt
        if fmt in CHAT_FORMATS:
            payload = json.loads(raw)
            # and no text became a live mention or link, no code block is left open, and N adds up
            assert live_forms(fmt, payload) == []
            assert code_blocks_closed(fmt, payload), fmt
            more = [int(n) for n in MORE.findall(visible(fmt, payload))]
            assert not more or more[-1] <= digest.total
            assert "\u202e" not in raw.decode() and "\\u0000" not in raw.decode(), fmt


@pytest.mark.parametrize("fmt", CHAT_FORMATS)
def test_the_known_mention_and_link_forms_are_broken_everywhere_in_a_digest(fmt: str) -> None:
    # given every field that carries text holding the forms the receivers parse
    forms = "<!here> @everyone [x](http://evil) <https://evil|x> #general ~town &#64;all <users/all>"
    events = (
        {"event": "RuleFailed", "rule": f"r {forms}", "details": {"exit_code": forms, "stderr": f"line\n{forms}\nend"}},
        {"event": "RuleCompleted", "rule": forms, "details": {}},
    )
    digest = Digest(id=forms, workflow=forms, run_id=forms, opened=forms, closed=forms, seconds=60, closed_by=forms,
                    counts={"RuleFailed": 1, "RuleCompleted": 1}, events=events, total=2)  # fmt: skip
    payload = body(digest, fmt)
    # then none of them is live
    assert live_forms(fmt, payload) == []
    if fmt != "discord":  # there the markdown escape \\<!here> is what breaks it
        assert "<!here>" not in json.dumps(payload, ensure_ascii=False)


def test_a_huge_stderr_keeps_its_tail_in_a_closed_code_block() -> None:
    # given a failed rule whose stderr is far too long, with a fence of its own
    stderr = "noise line\n" * 20_000 + "``` sneaky fence\nFATAL: out of memory"
    digest = numbered(1, 1, "x", stderr)
    # then every chat format shows its end, the error, in a closed code block
    for fmt in CHAT_FORMATS:
        payload = body(digest, fmt)
        assert "FATAL: out of memory" in visible(fmt, payload) and code_blocks_closed(fmt, payload), fmt
    assert body(digest, "discord")["allowed_mentions"] == {"parse": []}


# -- the payload: schema and round trip ----------------------------------------------------------


def test_the_digest_schema_is_a_valid_json_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


@pytest.mark.parametrize("kind", DIGEST_KINDS)
@pytest.mark.parametrize("fmt", ["json", "oxoflow"])
def test_every_json_golden_is_valid_against_the_digest_schema(kind: str, fmt: str) -> None:
    # given the json (and oxoflow) golden digest bodies; then each is valid against the schema
    golden = json.loads((GOLDEN / fmt / f"{kind}.json").read_text(encoding="utf-8"))
    assert list(VALIDATOR.iter_errors(golden)) == []


def test_a_trimmed_kept_event_is_valid_against_the_digest_schema() -> None:
    # given an event larger than a window keeps whole
    event = kept("RuleFailed", "big", 1, {"exit_code": 1, "stderr": "x" * 100_000})
    assert event["trimmed"] is True
    digest = Digest(id="d", workflow="wf", run_id=None, opened="2026-05-18T12:00:00Z", closed="2026-05-18T12:01:00Z", seconds=60,
                    closed_by="full", counts={"RuleFailed": 1}, events=(event,), total=1)  # fmt: skip
    # then its payload is still a valid digest
    assert list(VALIDATOR.iter_errors(json.loads(render_digest(digest, "json")))) == []


def _wrong(change: Any) -> dict[str, Any]:
    payload = json.loads(render_digest(digest_of("digest-small"), "json"))
    change(payload)
    assert isinstance(payload, dict)
    return payload


@pytest.mark.parametrize("payload", [
    _wrong(lambda p: p.update(event="RuleFailed")),
    _wrong(lambda p: p.pop("total")),
    _wrong(lambda p: p.update(total=0)),
    _wrong(lambda p: p.update(left_out=-1)),
    _wrong(lambda p: p.update(run_id=3)),
    _wrong(lambda p: p["window"].update(seconds=901)),
    _wrong(lambda p: p["window"].update(seconds=0.5)),
    _wrong(lambda p: p["window"].update(closed_by="manual")),
    _wrong(lambda p: p["window"].update(opened="yesterday")),
    _wrong(lambda p: p["counts"].update(WorkflowFailed=1)),
    _wrong(lambda p: p["counts"].update(RuleFailed=0)),
    _wrong(lambda p: p["events"].append({"event": "RuleFailed", "workflow": "wf"})),
    _wrong(lambda p: p["events"][0].update(trimmed=False)),
    _wrong(lambda p: p["events"][0].update(colour="red")),
    _wrong(lambda p: p.update(extra=1)),
], ids=["event", "no-total", "total-0", "left-out", "run-id", "seconds-high", "seconds-low", "closed-by", "opened", "count-name",
        "count-0", "event-incomplete", "trimmed-false", "event-extra-key", "extra-key"])  # fmt: skip
def test_the_digest_schema_rejects_wrong_payloads(payload: dict[str, Any]) -> None:
    # given the small digest's payload with one thing wrong; then the schema says so
    assert list(VALIDATOR.iter_errors(payload)), "schema accepted a wrong digest payload"


@pytest.mark.parametrize("kind", DIGEST_KINDS)
def test_the_json_payload_reads_back_as_the_same_digest(kind: str) -> None:
    # given a digest, when its json body is read back (as a retry message or a dead letter is)
    digest = digest_of(kind)
    # then it is the same digest
    assert digest_from_payload(json.loads(render_digest(digest, "json"))) == digest


# -- wiring --------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMAT_NAMES)
def test_render_takes_a_digest_as_it_takes_an_event(fmt: str) -> None:
    # given the one render outbound.delivery.prepare calls
    # then a digest renders as render_digest renders it
    assert render(digest_of("digest-small"), fmt) == render_digest(digest_of("digest-small"), fmt)


def test_formats_is_a_mapping_of_every_format_name_to_its_renderer() -> None:
    # given the lazy mappings; then they read as dicts did: names in FORMAT_NAMES order, KeyError for others
    assert tuple(FORMATS) == tuple(DIGEST_FORMATS) == FORMAT_NAMES
    assert len(FORMATS) == len(FORMAT_NAMES) and "slack" in FORMATS and "nope" not in FORMATS
    assert all(callable(FORMATS[name]) and callable(DIGEST_FORMATS[name]) for name in FORMAT_NAMES)
    with pytest.raises(KeyError):
        FORMATS["nope"]
    with pytest.raises(KeyError):
        render_digest(digest_of("digest-small"), "nope")


def test_a_cold_start_that_renders_json_imports_no_chat_renderer() -> None:
    # given a fresh interpreter that imports the delivery module and renders one json body
    code = (
        "import sys, json\n"
        "import oxoflow_notify.outbound.delivery\n"
        "from oxoflow_notify.formats import render\n"
        "from datetime import UTC, datetime\n"
        "from oxoflow_notify.inbound.events import parse_event\n"
        "data = json.dumps({'event': 'RuleFailed', 'workflow': 'wf', 'rule': 'r'})\n"
        "event = parse_event(data, message_id='m', received_at=datetime.now(UTC))\n"
        "render(event, 'json')\n"
        "loaded = [m for m in ('slack', 'teams', 'discord', 'text', 'digest_common') if 'oxoflow_notify.formats.' + m in sys.modules]\n"
        "assert not loaded, loaded\n"
        "assert 'oxoflow_notify.inbound.oxoflow' not in sys.modules\n"
        "assert 'oxoflow_notify.formats.json_event' in sys.modules\n"
        "from oxoflow_notify.formats import FORMATS\n"
        "assert 'slack' in FORMATS and list(FORMATS)[1] == 'slack' and 'oxoflow_notify.formats.slack' not in sys.modules\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "layers" / "notify")}
    # then none of the chat renderers, nor oxo-flow's dialect, was imported
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr

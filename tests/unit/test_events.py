"""Event parsing: the published contract, its defaults, and rejections that name the field."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

from oxoflow_notify.errors import EventError
from oxoflow_notify.inbound.events import EVENT_NAMES, parse_event
from tests.conftest import EVENT_KINDS, EVENTS, RECEIVED_AT, message, sns_event

SCHEMA = json.loads((EVENTS / "event.schema.json").read_text(encoding="utf-8"))
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def parse(data: Any, message_id: str = "msg-1") -> Any:
    raw = data if isinstance(data, str) else json.dumps(data)
    return parse_event(raw, message_id=message_id, received_at=RECEIVED_AT)


def test_schema_is_a_valid_json_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


@pytest.mark.parametrize("kind", EVENT_KINDS)
def test_every_sample_event_is_valid_against_the_schema_and_the_parser(kind: str) -> None:
    # given the sample message and the SNS event built from it
    sample = message(kind)
    sns = sns_event(kind)["Records"][0]["Sns"]
    # then the SNS event carries exactly that message, the schema accepts it, and so does the parser
    assert json.loads(sns["Message"]) == sample
    VALIDATOR.validate(sample)
    event = parse(sns["Message"], sns["MessageId"])
    assert event.event in EVENT_NAMES
    assert event.id == sns["MessageId"]


def test_the_eight_samples_cover_the_eight_event_types() -> None:
    assert sorted(parse(message(k)).event for k in EVENT_KINDS) == sorted(EVENT_NAMES)


def test_snake_case_names_are_accepted_and_output_in_pascal_case() -> None:
    event = parse({"event": "rule_failed", "workflow": "wf", "rule": "r"})
    assert event.event == "RuleFailed"
    assert event.to_payload()["event"] == "RuleFailed"


def test_defaults_come_from_the_sns_record() -> None:
    # given a minimal event / when parsed / then id, timestamp and message are filled in
    event = parse({"event": "WorkflowStarted", "workflow": "variant-calling"}, message_id="sns-42")
    assert event.id == "sns-42"
    assert event.timestamp == "2026-05-18T12:00:01Z"
    assert event.message == "Workflow 'variant-calling' started"
    assert event.details == {}
    assert event.rule is None


def test_default_message_mentions_rule_and_exit_code() -> None:
    event = parse({"event": "RuleFailed", "workflow": "wf", "rule": "align", "details": {"exit_code": 137}})
    assert event.message == "Rule 'align' failed in workflow 'wf' (exit code 137)"


def test_timestamps_are_normalised_to_utc() -> None:
    event = parse({"event": "WorkflowStarted", "workflow": "wf", "timestamp": "2026-05-18T14:00:00.250+02:00"})
    assert event.timestamp == "2026-05-18T12:00:00.250Z"


def test_json_payload_has_the_seed_shape_in_order() -> None:
    event = parse(message("rule-failed"), message_id="m-1")
    assert list(event.to_payload()) == ["event", "workflow", "timestamp", "rule", "message", "details", "id"]
    with_run = parse({**message("rule-failed"), "run_id": "r1"})
    assert with_run.to_payload()["run_id"] == "r1"


BAD_EVENTS: list[tuple[Any, str]] = [
    ("not json at all", "message is not valid JSON"),
    ("[1, 2]", "message must be a JSON object, got list"),
    ({"workflow": "wf"}, "field 'event' is required"),
    ({"event": 7, "workflow": "wf"}, "field 'event' must be a string"),
    ({"event": "RuleFaild", "workflow": "wf", "rule": "r"}, "unknown event 'RuleFaild' (did you mean 'RuleFailed'?)"),
    ({"event": "workflow_complete", "workflow": "wf"}, "did you mean 'workflow_completed'?"),
    ({"event": "Deployed", "workflow": "wf"}, "field 'event': unknown event 'Deployed'"),
    ({"event": "WorkflowStarted"}, "field 'workflow' is required"),
    ({"event": "WorkflowStarted", "workflow": ""}, "field 'workflow' must not be empty"),
    ({"event": "WorkflowStarted", "workflow": "../etc/passwd"}, "field 'workflow' must start with a letter or digit"),
    ({"event": "WorkflowStarted", "workflow": ["wf"]}, "field 'workflow' must be a string, got list"),
    ({"event": "RuleFailed", "workflow": "wf"}, "field 'rule' is required"),
    ({"event": "RuleFailed", "workflow": "wf", "rule": "  "}, "field 'rule' must not be empty"),
    ({"event": "WorkflowStarted", "workflow": "wf", "timestamp": "yesterday"}, "field 'timestamp': not an RFC 3339 date-time"),
    ({"event": "WorkflowStarted", "workflow": "wf", "timestamp": "2026-05-18T12:00:00"}, "field 'timestamp'"),
    ({"event": "WorkflowStarted", "workflow": "wf", "details": "exit 1"}, "field 'details' must be a JSON object, got str"),
    ({"event": "WorkflowStarted", "workflow": "wf", "detail": {}}, "unknown field 'detail' (did you mean 'details'?)"),
    ({"event": "WorkflowStarted", "workflow": "wf", "message": 5}, "field 'message' must be a string, got int"),
    ({"event": "WorkflowStarted", "workflow": "wf", "message": "x" * 5000}, "field 'message' is 5000 characters long; the limit is 4096"),
    (
        {"event": "WorkflowStarted", "workflow": "wf", "details": {"log": "x" * 262_144}},
        "bytes; the limit is 262,144 (SNS's message size limit)",
    ),
]


@pytest.mark.parametrize(("data", "expected"), BAD_EVENTS, ids=[e for _, e in BAD_EVENTS])
def test_bad_events_are_rejected_with_a_message_naming_the_problem(data: Any, expected: str) -> None:
    with pytest.raises(EventError) as caught:
        parse(data)
    assert expected in str(caught.value)


# JSON Schema cannot express a size in bytes: that one rule lives in the parser alone.
SCHEMA_EXPRESSIBLE = [b for b in BAD_EVENTS if not isinstance(b[0], str) and "SNS's message size limit" not in b[1]]


@pytest.mark.parametrize(("data", "expected"), SCHEMA_EXPRESSIBLE, ids=lambda v: str(v)[:40])
def test_the_schema_rejects_what_the_parser_rejects(data: Any, expected: str) -> None:
    assert list(VALIDATOR.iter_errors(data)), f"schema accepted an event the parser refuses ({expected})"


# Hostile input: each of these escaped as OverflowError, RecursionError or a ValueError from deep
# inside json/datetime (crashing the invocation and every other delivery in it). Now each is an
# EventError naming the field. Raw text, because json.dumps cannot write most of them.
def hostile(extra: str) -> str:
    """A valid event's JSON text with ``extra`` (raw JSON text) added."""
    return '{"event": "WorkflowStarted", "workflow": "wf", ' + extra + "}"


HOSTILE_EVENTS: list[tuple[str, str]] = [
    (hostile('"details": {"duration_s": Infinity}'), "field 'details.duration_s' is not a finite number"),
    (hostile('"details": {"duration_s": -Infinity}'), "field 'details.duration_s' is not a finite number"),
    (hostile('"details": {"ratio": NaN}'), "field 'details.ratio' is not a finite number"),
    (hostile('"details": {"duration_ms": 1e999}'), "field 'details.duration_ms' is not a finite number"),
    (hostile('"details": {"runs": [1, {"s": -1e400}]}'), "field 'details.runs[1].s' is not a finite number"),
    (hostile('"details": {"n": ' + "9" * 5000 + "}"), "field 'details.n' is an integer of more than 4,300 digits"),
    (hostile('"details": {"n": -' + "9" * 4301 + "}"), "field 'details.n' is an integer of more than 4,300 digits"),
    (hostile('"timestamp": "9999-12-31T23:59:59-23:59"'), "field 'timestamp' is out of range"),
    (hostile('"timestamp": "0001-01-01T00:00:00+23:59"'), "field 'timestamp' is out of range"),
    (hostile('"details": {"a": ' + "[" * 10_000 + "1" + "]" * 10_000 + "}"), "field 'details' is nested more than 32 levels deep"),
    ("[" * 10_000 + "]" * 10_000, "message is nested more than 32 levels deep"),
    (hostile('"details": {"a": ' + "[" * 40 + "1" + "]" * 40 + "}"), "field 'details.a[0][0]"),
    (hostile('"rule": NaN'), "field 'rule' is not a finite number"),
]


@pytest.mark.parametrize(("raw", "expected"), HOSTILE_EVENTS, ids=[e for _, e in HOSTILE_EVENTS])
def test_hostile_numbers_timestamps_and_nesting_are_event_errors_naming_the_field(raw: str, expected: str) -> None:
    # given a message a hostile or broken publisher could send
    # when it is parsed
    with pytest.raises(EventError) as caught:
        parse(raw)
    # then it is refused as an invalid event (dead-lettered), with the field named
    assert expected in str(caught.value)


def test_nesting_is_allowed_up_to_the_documented_depth_and_no_further() -> None:
    # given details nested to exactly MAX_EVENT_NESTING levels, the message object counted as one
    from oxoflow_notify.inbound.events import MAX_EVENT_NESTING

    inner: Any = 1
    for _ in range(MAX_EVENT_NESTING - 2):
        inner = [inner]
    # when parsed / then accepted; one level more is refused, naming the path down to it
    assert parse({"event": "WorkflowStarted", "workflow": "wf", "details": {"a": inner}}).details["a"] == inner
    with pytest.raises(EventError, match=r"field 'details\.a(\[0\])+' is nested more than 32 levels deep"):
        parse({"event": "WorkflowStarted", "workflow": "wf", "details": {"a": [inner]}})


def test_a_python_object_given_directly_is_held_to_the_same_limits() -> None:
    # given a direct invocation that hands parse_event a dict (no JSON text in between)
    base = {"event": "WorkflowStarted", "workflow": "wf"}
    deep: Any = 1
    for _ in range(5000):  # deeper than the stack allows recursing into
        deep = {"x": deep}
    for details, expected in [
        ({"d": float("inf")}, "field 'details.d' is not a finite number"),
        ({"d": 10**5000}, "field 'details.d' is an integer of more than 4,300 digits"),
        ({"d": {1, 2}}, "field 'details.d' is not a JSON value (set)"),
        ({1: "x"}, "field 'details' has a key that is not a string (int)"),
        ({"d": deep}, "is nested more than 32 levels deep"),
    ]:
        # when it is parsed / then it is refused like the same text would be
        with pytest.raises(EventError) as caught:
            parse_event({**base, "details": details}, message_id="m", received_at=RECEIVED_AT)
        assert expected in str(caught.value)


def test_early_and_late_years_keep_four_digits_and_the_edges_of_the_range_are_accepted() -> None:
    early = parse({"event": "WorkflowStarted", "workflow": "wf", "timestamp": "0001-01-01T00:00:00Z"})
    late = parse({"event": "WorkflowStarted", "workflow": "wf", "timestamp": "9999-12-31T23:59:59Z"})
    assert (early.timestamp, late.timestamp) == ("0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z")


def test_a_long_unknown_field_or_event_name_is_quoted_short_without_a_slow_did_you_mean() -> None:
    # given names far longer than any real one, with a line break inside
    long = "RuleFailed" + "x" * 100_000 + "\n"
    for data, start in [
        ({"event": long, "workflow": "wf"}, "field 'event': unknown event 'RuleFailedxxx"),
        ({"event": "WorkflowStarted", "workflow": "wf", long: 1}, "unknown field 'RuleFailedxxx"),
    ]:
        with pytest.raises(EventError) as caught:
            parse(data)
        # then the message quotes the first 64 characters and marks the cut
        text = str(caught.value)
        assert text.startswith(start) and "RuleFailed" + "x" * 54 + "…'" in text and len(text) < 300 and "\n" not in text


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"details": {"d": float("nan")}}, "field 'details.d' is not a finite number"),
        ({"details": [1]}, "field 'details' must be a JSON object, got list"),
        ({"timestamp": "9999-12-31T23:59:59-23:59"}, "field 'timestamp' is out of range"),
        ({"timestamp": 5}, "field 'timestamp' must be a string, got int"),
        ({"event": "rule_failed"}, "field 'event': unknown event 'rule_failed'"),
        ({"workflow": "../x"}, "field 'workflow' must start with a letter or digit"),
        ({"message": None}, "field 'message' must be a string, got NoneType"),
    ],
)
def test_a_payload_coming_back_from_a_queue_is_checked_again(change: dict[str, Any], expected: str) -> None:
    # given the payload a retry message or a dead letter carries, mangled on the way
    from oxoflow_notify.inbound.events import event_from_payload

    payload = {**parse(message("rule-failed")).to_payload(), **change}
    # when it is rebuilt into an event / then it is an EventError (a ValueError too: the retry path
    # catches ValueError and dead-letters the message) naming the field, not a crash while rendering
    with pytest.raises(EventError) as caught:
        event_from_payload(payload)
    assert expected in str(caught.value) and isinstance(caught.value, ValueError)


def test_a_valid_payload_round_trips() -> None:
    from oxoflow_notify.inbound.events import event_from_payload

    event = parse({**message("rule-failed"), "run_id": "r1"})
    assert event_from_payload(event.to_payload()) == event

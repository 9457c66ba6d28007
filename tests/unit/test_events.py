"""Event parsing: the published contract, its defaults, and rejections that name the field."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

from oxoflow_notify.errors import EventError
from oxoflow_notify.events import EVENT_NAMES, parse_event
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

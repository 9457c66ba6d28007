"""The WorkflowOverdue alert in every format: its json body matches its schema
(events/workflow-overdue.schema.json), every chat format reads within the receiver's shape
(tests/golden/<format>/workflow-overdue.json), a late ending is marked, and it is never a publisher's event."""

from __future__ import annotations

import json

import jsonschema
import pytest

from oxoflow_notify.errors import EventError
from oxoflow_notify.formats import FORMATS, render
from oxoflow_notify.inbound.events import Event, parse_event
from oxoflow_notify.pipeline.watching import Watch, after_overdue, overdue_event
from tests.conftest import RECEIVED_AT, ROOT, assert_golden

T0 = 1_900_000_000.0
WATCH = Watch(T0, T0 + 600, {"event": "RuleCompleted", "rule": "align_reads", "at": T0 + 600})
EVENT = overdue_event("variant-calling", "run-7", WATCH, "overdue", T0 + 7200, "g")


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_the_alert_reads_in_every_format(fmt: str) -> None:
    body = render(EVENT, fmt)
    assert_golden(fmt, "workflow-overdue", body)
    text = body.decode()
    assert "run-7" in text or fmt == "pagerduty"
    assert "overdue" in text.lower()


def test_the_json_alert_matches_its_schema_and_says_why_and_since_when() -> None:
    schema = json.loads((ROOT / "events" / "workflow-overdue.schema.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    body = json.loads(render(EVENT, "json"))
    jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker()).validate(body)
    assert body["details"]["reason"] == "overdue" and body["details"]["last_event"]["rule"] == "align_reads"
    assert "2h00m" in body["message"]


def test_a_late_ending_is_marked_in_every_format() -> None:
    ending = after_overdue(Event(event="WorkflowCompleted", workflow="variant-calling", timestamp="2030-03-17T19:46:40.000Z", id="e",
                                 message="Workflow 'variant-calling' completed", run_id="run-7"))  # fmt: skip
    assert json.loads(render(ending, "json"))["details"]["after_overdue"] is True
    for fmt in ("slack", "teams", "discord", "text"):
        assert "finished after being reported overdue" in render(ending, fmt).decode()


def test_a_publisher_cannot_send_it() -> None:
    with pytest.raises(EventError, match="sent by oxoflow-notify itself"):
        parse_event(json.dumps({"event": "WorkflowOverdue", "workflow": "variant-calling"}), message_id="m", received_at=RECEIVED_AT)

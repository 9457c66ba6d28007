"""An empty run_id is no run, refused where it is published; an event is held to the size limit
in the form it is re-serialised in, not only as it was written."""

from __future__ import annotations

import json

import jsonschema
import pytest

from oxoflow_notify.errors import EventError
from oxoflow_notify.inbound.events import MAX_MESSAGE_BYTES, event_from_payload, parse_event
from tests.conftest import EVENTS, RECEIVED_AT

VALIDATOR = jsonschema.Draft202012Validator(json.loads((EVENTS / "event.schema.json").read_text(encoding="utf-8")))
BASE = {"event": "RuleFailed", "workflow": "variant-calling", "rule": "align"}


@pytest.mark.parametrize("run_id", ["", "   ", "\t"])
def test_an_empty_run_id_is_refused_by_the_parser_and_the_schema(run_id: str) -> None:
    # given a message whose run_id is empty (it would share a digest window with "no run")
    message = {**BASE, "run_id": run_id}
    # then both the published schema and the dispatcher refuse it, saying what to do
    assert not VALIDATOR.is_valid(message)
    with pytest.raises(EventError, match=r"field 'run_id' must not be empty: leave it out \(or null\) when there is no run"):
        parse_event(json.dumps(message), message_id="m", received_at=RECEIVED_AT)
    # while a real run_id, or none, is accepted by both
    for good in ({**BASE, "run_id": "r-42"}, BASE, {**BASE, "run_id": None}):
        VALIDATOR.validate(good)
        parse_event(json.dumps(good), message_id="m", received_at=RECEIVED_AT)


def test_an_empty_run_id_queued_by_an_older_version_reads_as_no_run() -> None:
    event = parse_event(json.dumps(BASE), message_id="m", received_at=RECEIVED_AT)
    assert event_from_payload({**event.to_payload(), "run_id": ""}).run_id is None


def test_an_event_growing_past_the_limit_once_normalised_is_refused_naming_why() -> None:
    # given a message under 256 KiB whose numbers are written as 1e5 (100000.0 once re-serialised)
    numbers = ",".join(["1e5"] * 40_000)
    raw = json.dumps(BASE)[:-1] + ', "details": {"samples": [' + numbers + "]}}"
    assert len(raw.encode()) <= MAX_MESSAGE_BYTES
    # when it is parsed, then it is refused with the size it would have been sent at
    with pytest.raises(EventError, match=r"the event is [\d,]+ bytes once normalised \(numbers such as 1e5 written out in full"):
        parse_event(raw, message_id="m", received_at=RECEIVED_AT)
    # and the same facts written compactly enough pass
    fitting = json.dumps(BASE)[:-1] + ', "details": {"samples": [' + ",".join(["1e5"] * 20_000) + "]}}"
    assert parse_event(fitting, message_id="m", received_at=RECEIVED_AT).details["samples"][0] == 100000.0

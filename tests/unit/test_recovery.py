"""Recovering Lambda on-failure records: the message published again keeps the event id (and time) it had."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest

from oxoflow_notify.errors import EventError
from oxoflow_notify.inbound.events import parse_event
from oxoflow_notify.tools.recovery import SnsRecord, is_on_failure_record, recovered_message, sns_records
from tests.conftest import RECEIVED_AT

MESSAGE_ID = "5f3c2a8e-0d1b-5c7e-9a2f-3b4c5d6e7f80"
SNS_TIME = "2026-05-18T12:00:00.250Z"


def record(message: dict[str, Any] | str) -> SnsRecord:
    return SnsRecord(MESSAGE_ID, message if isinstance(message, str) else json.dumps(message), SNS_TIME)


def test_a_message_without_id_or_timestamp_gets_the_ones_the_dispatcher_gave_it() -> None:
    # given a message as first published, with neither id nor timestamp
    published = {"event": "rule_failed", "workflow": "wgs", "rule": "bwa"}
    first = parse_event(json.dumps(published), message_id=MESSAGE_ID, received_at=datetime.fromisoformat(SNS_TIME))
    # when it is recovered
    again = recovered_message(record(published))
    # then it is the same message plus that id and time, so the event (and its delivery ids) are the same under any new MessageId
    assert again == {**published, "id": MESSAGE_ID, "timestamp": "2026-05-18T12:00:00.250Z"}
    assert parse_event(json.dumps(again), message_id="a-new-sns-message-id", received_at=RECEIVED_AT) == first


@pytest.mark.parametrize("empty", [None, ""])
def test_an_id_the_dispatcher_would_have_ignored_is_replaced_and_an_explicit_one_kept(empty: str | None) -> None:
    assert recovered_message(record({"event": "WorkflowStarted", "workflow": "wgs", "id": empty}))["id"] == MESSAGE_ID
    kept = recovered_message(
        record({"event": "WorkflowStarted", "workflow": "wgs", "id": "run-7", "timestamp": "2026-05-18T13:00:00+01:00"})
    )
    assert kept["id"] == "run-7" and kept["timestamp"] == "2026-05-18T13:00:00+01:00"


def test_what_cannot_be_recovered_is_an_event_error() -> None:
    with pytest.raises(EventError, match="not valid JSON"):
        recovered_message(record("{not json"))
    with pytest.raises(EventError, match="must be a JSON object, got list"):
        recovered_message(record("[1]"))
    with pytest.raises(EventError, match="holds no SNS message"):
        sns_records({"requestContext": {}, "requestPayload": {"Records": [{"body": "an SQS record"}]}})


def test_an_on_failure_record_is_told_from_other_letters() -> None:
    body = {"requestContext": {}, "requestPayload": {"Records": [{"Sns": {"MessageId": MESSAGE_ID, "Message": "{}"}}]}}
    assert is_on_failure_record(body) and sns_records(body) == [SnsRecord(MESSAGE_ID, "{}", None)]
    assert not is_on_failure_record({"schema": "oxoflow-notify/dead-letter/v1"})

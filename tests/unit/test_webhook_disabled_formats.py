"""The WebhookDisabled notice in every format: its json body matches its schema
(events/webhook-disabled.schema.json), every chat format is readable within the receiver's shape
(tests/golden/<format>/webhook-disabled.json, byte for byte), and it is never a publisher's event."""

from __future__ import annotations

import json

import jsonschema
import pytest

from oxoflow_notify.config import Webhook
from oxoflow_notify.errors import EventError
from oxoflow_notify.formats import FORMATS, render
from oxoflow_notify.inbound.events import parse_event
from oxoflow_notify.pipeline.disabled_notice import notice_event
from oxoflow_notify.pipeline.endpoints import EndpointState
from tests.conftest import RECEIVED_AT, ROOT, assert_golden

T0 = 1_900_000_000.0
WEBHOOK = Webhook(id="lims", url="https://lims.example.org/hook", format="json", events=None, secrets=(),
                  source="workflows/variant-calling.oxoflow", position=0)  # fmt: skip
EVENT = notice_event(WEBHOOK, EndpointState(T0, T0 + 432_000, "f"), "variant-calling")


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_the_notice_reads_in_every_format(fmt: str) -> None:
    body = render(EVENT, fmt)
    assert_golden(fmt, "webhook-disabled", body)
    text = body.decode()
    assert "lims" in text and "disabled" in text.lower()
    assert "lims.example.org" not in text  # the webhook's URL never: it may be a secret


def test_the_json_notice_matches_its_schema() -> None:
    schema = json.loads((ROOT / "events" / "webhook-disabled.schema.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker()).validate(json.loads(render(EVENT, "json")))


def test_a_publisher_cannot_send_it() -> None:
    with pytest.raises(EventError, match="sent by oxoflow-notify itself"):
        parse_event(json.dumps({"event": "WebhookDisabled", "workflow": "variant-calling"}), message_id="m", received_at=RECEIVED_AT)

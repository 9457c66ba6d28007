"""oxo-flow's own dialect: its singular [webhook] table, its payload and its signature header."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime

import pytest

from oxoflow_notify.config.parse import parse_config
from oxoflow_notify.errors import ConfigError, EventError
from oxoflow_notify.inbound.events import event_from_payload, parse_event
from oxoflow_notify.inbound.oxoflow import from_log_record, from_native
from oxoflow_notify.outbound.delivery import prepare
from oxoflow_notify.outbound.signing import oxoflow_signature
from oxoflow_notify.outbound.verify import verify_oxoflow

SOURCE = "workflows/wgs.oxoflow"


def one(text: str) -> object:
    config = parse_config(text, SOURCE)
    assert config.problems == (), config.problems
    (webhook,) = config.webhooks
    return webhook


def test_rfc_4231_vectors_give_oxoflows_header() -> None:
    # the vectors oxo-flow's own tests use for X-OxoFlow-Signature
    assert oxoflow_signature("\x0b" * 20, b"Hi There") == "hmac-sha256=b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
    assert (
        oxoflow_signature("Jefe", b"what do ya want for nothing?")
        == "hmac-sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    )
    assert verify_oxoflow(["old", "Jefe"], b"what do ya want for nothing?", oxoflow_signature("Jefe", b"what do ya want for nothing?"))
    assert not verify_oxoflow(["Jefe"], b"tampered", oxoflow_signature("Jefe", b"what do ya want for nothing?"))
    assert not verify_oxoflow(["Jefe"], b"x", None)


def test_the_singular_webhook_table_takes_oxoflows_keys_and_defaults() -> None:
    # given an oxo-flow config as its users write it today
    webhook = one(
        '[workflow]\nname = "wgs"\n\n[webhook]\nurl = "https://lims.example.org/hook"\nmethod = "put"\n'
        'headers = { "X-Team" = "genomics" }\nsecret = "s3cret"\ntimeout_secs = 20\nmax_retries = 2\n'
    )
    # then it is one webhook with oxo-flow's defaults and its settings translated
    assert webhook.method == "PUT"  # type: ignore[attr-defined]
    assert webhook.events == frozenset({"WorkflowCompleted"})  # type: ignore[attr-defined]
    assert webhook.format == "oxoflow" and webhook.oxoflow_signature  # type: ignore[attr-defined]
    assert webhook.timeout == 20 and webhook.max_attempts == 3  # type: ignore[attr-defined]
    assert webhook.headers == (("X-Team", "genomics"),)  # type: ignore[attr-defined]


def test_snake_case_events_and_both_tables_in_one_file() -> None:
    config = parse_config(
        '[webhook]\nurl = "https://a.example.org/h"\nevents = ["workflow_failed", "rule_failed"]\n\n'
        '[[webhooks]]\nurl = "https://b.example.org/h"\nformat = "slack"\n',
        SOURCE,
    )
    assert config.problems == ()
    plural, singular = config.webhooks
    assert singular.events == frozenset({"WorkflowFailed", "RuleFailed"}) and singular.format == "oxoflow"
    assert plural.events is None and plural.format == "slack" and not plural.oxoflow_signature


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            'url = "https://a.example.org/h"\ntimeout_sec = 5',
            "[webhook] (line 5): unknown key 'timeout_sec' (did you mean 'timeout_secs'?)",
        ),
        ('url = "https://a.example.org/h"\nevents = ["workflow_complete"]', "did you mean 'workflow_completed'?"),
        ('url = "https://a.example.org/h"\nmethod = "get"', "key 'method': 'get' is not supported; use post or put"),
        ('url = "https://a.example.org/h"\nsecret = "s"\nsignature_scheme = "sha256-keyed"', "legacy 'sha256-keyed'"),
        ('url = "https://a.example.org/h"\nmax_retries = -1', "key 'max_retries' must be a whole number from 0 to 49"),
        ('url = "https://a.example.org/h"\ntimeout_secs = 300', "key 'timeout_secs' must be a number of seconds from 0.5 to 30"),
        ('url = "https://a.example.org/h"\nsignature_scheme = "hmac-sha256"', "needs a secret"),
    ],
)
def test_mistakes_in_the_singular_table_are_named_with_their_line(body: str, expected: str) -> None:
    config = parse_config(f'[workflow]\nname = "wgs"\n[webhook]\n{body}\n', SOURCE)
    (problem,) = config.problems
    assert expected in problem.message
    bad_line = 3 + len(body.split("\n"))  # the body's last key, after the header at line 3
    assert problem.message.startswith(f"{SOURCE}: [webhook] (line {bad_line})")


def test_an_array_of_singular_tables_is_refused_with_a_pointer_to_the_plural() -> None:
    with pytest.raises(ConfigError, match=r"\[webhook\] is a single table; for several webhooks use \[\[webhooks\]\]"):
        parse_config('[[webhook]]\nurl = "https://a.example.org/h"\n', SOURCE)


def test_a_signed_oxoflow_webhook_gets_both_signature_headers_over_the_same_bytes() -> None:
    webhook = one('[webhook]\nurl = "https://a.example.org/h"\nsecret = "k"\nevents = ["rule_failed"]\n')
    event = parse_event('{"event": "rule_failed", "workflow": "wgs", "rule": "bwa"}', message_id="m", received_at=datetime.now(UTC))
    prepared = prepare(event, webhook, "d-1", 1)  # type: ignore[arg-type]
    expected = hmac.new(b"k", prepared.body, hashlib.sha256).hexdigest()
    assert prepared.headers["X-OxoFlow-Signature"] == f"hmac-sha256={expected}"
    assert prepared.headers["X-Hub-Signature-256"] == f"sha256={expected}"
    assert json.loads(prepared.body)["event"] == "rule_failed"


def test_a_native_completed_run_with_failures_stays_workflow_completed_with_its_counts() -> None:
    native = {
        "event": "workflow_completed",
        "workflow_name": "wgs",
        "timestamp": "2026-05-17T12:00:00Z",
        "data": {"total_rules": 5, "succeeded": 3, "failed": 2, "skipped": 0, "duration_ms": 1000},
        "version": "0.14.2",
    }
    event = parse_event(json.dumps(from_native(native)), message_id="m", received_at=datetime.now(UTC))
    assert event.event == "WorkflowCompleted"
    assert event.details == {"total_rules": 5, "succeeded": 3, "failed": 2, "skipped": 0, "duration_ms": 1000, "oxoflow_version": "0.14.2"}
    failed = from_native({"event": "rule_failed", "workflow_name": "wgs", "data": {"rule": "bwa", "exit_code": 137, "error": "OOM"}})
    assert failed == {
        "event": "rule_failed",
        "workflow": "wgs",
        "details": {"exit_code": 137, "error": "OOM"},
        "rule": "bwa",
        "message": "OOM",
    }
    with pytest.raises(EventError, match="'workflow_name' is required"):
        from_native({"event": "workflow_completed"})


def test_execution_log_records_map_to_events() -> None:
    record = {"event": "rule_completed", "rule": "bwa", "status": "failed", "exit_code": 1, "timestamp": "2026-05-17T12:00:00Z"}
    assert from_log_record(record, "wgs") == {
        "event": "rule_failed", "workflow": "wgs", "details": {"status": "failed", "exit_code": 1},
        "timestamp": "2026-05-17T12:00:00Z", "rule": "bwa",
    }  # fmt: skip
    ok = from_log_record({"event": "rule_completed", "rule": "bwa", "status": "success"}, "wgs")
    assert ok is not None and ok["event"] == "rule_completed"
    assert from_log_record({"event": "resource_sample", "cpu": 0.5}, "wgs") is None
    with pytest.raises(EventError, match="names no workflow"):
        from_log_record({"event": "workflow_started"})


def test_every_golden_oxoflow_body_round_trips_through_the_ingest_mapping() -> None:
    # what we send in oxo-flow's format, the ingest function reads back as the same event
    event = event_from_payload(
        {"event": "RuleFailed", "workflow": "wgs", "timestamp": "2026-05-18T12:00:00Z", "rule": "bwa", "message": "m",
         "details": {"exit_code": 1}, "id": "x"}
    )  # fmt: skip
    from oxoflow_notify.formats import render

    back = from_native(json.loads(render(event, "oxoflow")))
    assert back["event"] == "rule_failed" and back["rule"] == "bwa" and back["details"]["exit_code"] == 1

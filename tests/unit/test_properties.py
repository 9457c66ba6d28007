"""Property tests: whatever arrives, the parsers and the planner answer; they never crash, and every
rejection says what is wrong."""

from __future__ import annotations

import json
import re
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oxoflow_notify.config.parse import parse_config
from oxoflow_notify.errors import ConfigError, EventError
from oxoflow_notify.inbound.events import FIELDS, parse_event
from oxoflow_notify.pipeline.retry import next_delay
from tests.conftest import RECEIVED_AT, names_a_field

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
near_events = st.fixed_dictionaries(
    {},
    optional={
        **{name: json_values for name in FIELDS},
        "event": st.sampled_from(["RuleFailed", "rule_failed", "WorkflowStarted", "RuleFaild", "", "x"]) | json_values,
        "workflow": st.sampled_from(["wf", "variant-calling", "", "../x", "a" * 200]) | json_values,
    },
)


@FAST
@given(st.one_of(st.text(max_size=200), st.binary(max_size=200), json_values.map(json.dumps), near_events.map(json.dumps)))
def test_the_event_parser_accepts_or_names_the_problem(raw: Any) -> None:
    try:
        event = parse_event(raw, message_id="m", received_at=RECEIVED_AT)
    except EventError as exc:
        assert names_a_field(str(exc), raw), str(exc)
    else:
        assert event.workflow and event.id and event.timestamp.endswith("Z")
        json.dumps(event.to_payload(), ensure_ascii=False).encode("utf-8")  # always encodable


toml_lines = st.sampled_from(
    [
        "[[webhooks]]", 'url = "https://x.example.org/h"', 'url = "ftp://x"', "url = 3", 'events = ["RuleFailed"]',
        'events = ["Nope"]', "events = []", 'format = "slack"', 'format = "nope"', 'secret = "s"', "secret = []",
        "timeout = 5", "timeout = -1", "max_attempts = 3", "max_attempts = 0", 'headers = { "X-A" = "b" }',
        'headers = { "Host" = "b" }', 'id = "ok"', 'id = "bad id"', "evnts = 1", "[workflow]", 'name = "x"', "[[rules]]",
        "webhooks = 1", "[webhooks", 'signature = "standard-webhooks"', 'secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"',
        # oxo-flow's singular table and its spellings
        "[webhook]", "[[webhook]]", "webhook = 2", 'method = "put"', 'method = "get"', "method = 1", "timeout_secs = 20",
        "timeout_secs = 0", 'timeout_secs = "x"', "max_retries = 2", "max_retries = -1", "max_retries = true",
        'signature_scheme = "hmac-sha256"', 'signature_scheme = "sha256-keyed"', 'events = ["workflow_completed"]',
        'format = "oxoflow"',
    ]
)  # fmt: skip


@FAST
@given(st.one_of(st.lists(toml_lines, max_size=12).map("\n".join), st.text(max_size=200)))
def test_the_config_parser_accepts_or_names_file_and_problem(text: str) -> None:
    try:
        config = parse_config(text, "workflows/wf.oxoflow")
    except ConfigError as exc:
        # the file, then where in it: a line (TOML syntax), the key or table at fault, or the encoding
        assert str(exc).startswith("workflows/wf.oxoflow: ")
        assert re.search(r"\bline \d+|'webhooks?'|\[webhook\]|key '|not UTF-8 text", str(exc)), str(exc)
        return
    for problem in config.problems:
        assert problem.message.startswith(("workflows/wf.oxoflow: [[webhooks]] #", "workflows/wf.oxoflow: [webhook]"))
        assert "key" in problem.message or "must be a table" in problem.message
    for webhook in config.webhooks:
        assert webhook.url.startswith(("http://", "https://")) and webhook.id


@FAST
@given(
    schedule=st.lists(st.integers(0, 10**6), max_size=10).map(tuple),
    attempts_made=st.integers(-5, 20),
    retry_after=st.none() | st.floats(0, 3600),
    max_attempts=st.none() | st.integers(1, 50),
    throttled=st.booleans(),
    jitter=st.floats(0, 0.5),
    r=st.floats(0, 1),
)
def test_the_retry_planner_always_answers_a_sane_delay_or_stops(
    schedule: tuple[int, ...],
    attempts_made: int,
    retry_after: float | None,
    max_attempts: int | None,
    throttled: bool,
    jitter: float,
    r: float,
) -> None:
    delay = next_delay(schedule, attempts_made, retry_after, max_attempts=max_attempts, throttled=throttled, throttle_floor=60,
                       jitter=jitter, rand=lambda: r)  # fmt: skip
    if delay is None:
        return
    assert 1 <= attempts_made <= len(schedule) and (max_attempts is None or attempts_made < max_attempts)
    base = schedule[attempts_made - 1]
    assert delay >= base * (1 - jitter) - 1e-6
    assert delay <= max(base * (1 + jitter), 60 if throttled else 0, retry_after or 0) + 1e-6
    if throttled:
        assert delay >= 60
    if retry_after is not None:
        assert delay >= retry_after


native_like = st.fixed_dictionaries(
    {},
    optional={
        "event": st.sampled_from(["workflow_completed", "rule_failed", "rule_completed", "progress", "x"]) | json_values,
        "workflow_name": st.sampled_from(["wgs", "", "a b"]) | json_values,
        "workflow": st.sampled_from(["wgs", ""]) | json_values,
        "timestamp": st.sampled_from(["2026-05-18T12:00:00Z", "yesterday"]) | json_values,
        "status": st.sampled_from(["failed", "success"]) | json_values,
        "rule": json_values,
        "data": st.dictionaries(st.sampled_from(["total_rules", "failed", "rule", "error", "exit_code", "x"]), json_values) | json_values,
        "version": json_values,
    },
)


@FAST
@given(st.one_of(native_like, json_values))
def test_oxoflows_payloads_and_log_records_map_or_name_the_problem(payload: Any) -> None:
    from oxoflow_notify.inbound.oxoflow import from_log_record, from_native

    def from_log(record: Any) -> dict[str, Any] | None:
        return from_log_record(record, "wgs")

    for mapper, names_the_key in ((from_native, native_key_named), (from_log, log_key_named)):
        try:
            message = mapper(payload)
        except EventError as exc:
            assert names_the_key(str(exc), payload), str(exc)
            continue
        if message is None:
            continue
        raw = json.dumps(message)
        try:
            parse_event(raw, message_id="m", received_at=RECEIVED_AT)
        except EventError as exc:
            assert names_a_field(str(exc), raw), str(exc)  # a rejection names the field at fault


def native_key_named(text: str, payload: Any) -> bool:
    """from_native's rejection names the key that is wrong ('event', 'workflow_name' or 'data'), or
    says the payload is not an object."""
    if not isinstance(payload, dict):
        return "must be a JSON object" in text
    named = re.search(r"'(event|workflow_name|data)'", text)
    if named is None:
        return False
    key = named.group(1)
    value = payload.get(key)
    return not isinstance(value, dict) if key == "data" else not (isinstance(value, str) and value)


def log_key_named(text: str, payload: Any) -> bool:
    """from_log_record's rejection names the 'event' string it needs, or else the workflow it lacks."""
    if not isinstance(payload, dict) or not isinstance(payload.get("event"), str):
        return "'event' string" in text
    return "names no workflow" in text

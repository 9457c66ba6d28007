"""Hostile input: whatever a config file, a published message or oxo-flow's own POST holds, the
parsers answer with a ConfigError, a ConfigProblem or an EventError that names the key or field,
never another exception (which would crash the invocation and lose every other webhook's delivery).
The formats render every finite number, as strict JSON."""

from __future__ import annotations

import hashlib
import hmac
import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oxoflow_notify.aws.queues import MemoryQueue
from oxoflow_notify.config.parse import parse_config
from oxoflow_notify.errors import ConfigError, EventError
from oxoflow_notify.formats import FORMATS, facts, render
from oxoflow_notify.inbound.events import FIELDS, parse_event
from oxoflow_notify.pipeline.ingest import Ingest
from oxoflow_notify.tools.cli import main
from tests.conftest import RECEIVED_AT, names_a_field

PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
URL = "https://hooks.example.org/x"
MAX_CONFIG_BYTES = 1_048_576  # the documented limits (README "Limits"), pinned here
MAX_EVENT_NESTING = 32


def shown(text: str) -> str:
    """How a message quotes a name: control characters escaped, cut at 64 characters."""
    from oxoflow_notify.errors import shown as quote

    return quote(text)


def strict(body: bytes) -> Any:
    """json.loads that refuses NaN and Infinity, as a strict receiver does."""

    def refuse(name: str) -> Any:
        raise AssertionError(f"body holds {name}")

    return json.loads(body, parse_constant=refuse)


# -- formats: any finite number renders, and every body is strict JSON ---------------------------


@pytest.mark.parametrize(
    "details",
    [
        {"duration_s": 1e308},
        {"duration_s": -1e308},
        {"duration_s": 10**400},
        {"duration_ms": 10**300},
        {"duration_ms": 10**4000},
        {"duration_ms": 1.7976931348623157e308},
        {"duration_seconds": 5e-324},
        {"exit_code": 10**4000, "total_rules": 10**4000, "failed": -(10**4000), "succeeded": 1e308},
    ],
    ids=lambda details: str(details)[:40],
)
def test_every_format_renders_huge_finite_numbers_as_strict_json(details: dict[str, Any]) -> None:
    # given an event whose numbers are finite but far outside any real run
    text = json.dumps({"event": "RuleFailed", "workflow": "wf", "rule": "r", "details": details})
    event = parse_event(text, message_id="m", received_at=RECEIVED_AT)
    # when it is rendered in every format / then each body is strict JSON
    for fmt in FORMATS:
        strict(render(event, fmt))
    # and a duration reads as a short number
    assert all(len(value) < 40 for label, value in facts(event) if label == "Duration")


def test_a_huge_duration_falls_back_to_the_number_of_seconds() -> None:
    from oxoflow_notify.formats.common import duration_of

    assert duration_of({"duration_s": 1e308}) == "1e+308 s"
    assert duration_of({"duration_ms": 10**4000}) == "1.00000e+4000 ms"
    assert duration_of({"duration_s": 10**400}) == "1.00000e+400 s"
    assert duration_of({"duration_s": 7200.0}) == "2 h 0 min" and duration_of({"duration_ms": 1500}) == "1.5 s"


def test_render_refuses_to_write_a_non_finite_number_rather_than_send_invalid_json() -> None:
    # given an event built in Python (past the parser) that holds NaN
    from oxoflow_notify.inbound.events import Event

    event = Event("RuleFailed", "wf", "2026-05-18T12:00:00Z", "id", "m", rule="r", details={"x": math.nan})
    # when rendered / then it raises instead of sending "NaN", which JSON does not have
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        render(event, "json")


# -- the ingest function: a signed hostile POST is a 400 and a dead letter, never a crash -------

SECRET = "ingest-secret"
NATIVE = {"event": "workflow_completed", "workflow_name": "wf", "timestamp": "2026-05-18T12:00:00Z", "data": {"total_rules": 2}}


class Sns:
    def __init__(self) -> None:
        self.published: list[dict[str, Any]] = []

    def publish(self, **kwargs: Any) -> dict[str, str]:
        self.published.append(kwargs)
        return {"MessageId": "sns-1"}


def post(body: str) -> tuple[dict[str, Any], Sns, MemoryQueue]:
    sns, dead = Sns(), MemoryQueue()
    ingest = Ingest("arn:aws:sns:eu-west-1:1:t", lambda: (SECRET,), lambda: sns, dead)
    signature = "hmac-sha256=" + hmac.new(SECRET.encode(), body.encode(), hashlib.sha256).hexdigest()
    request = {
        "requestContext": {"http": {"method": "POST"}, "requestId": "r-1"},
        "headers": {"X-OxoFlow-Signature": signature},
        "body": body,
    }
    return ingest.handle(request), sns, dead


def native_with(data: str = '{"total_rules": 2}', timestamp: str = '"2026-05-18T12:00:00Z"') -> str:
    return f'{{"event": "workflow_completed", "workflow_name": "wf", "timestamp": {timestamp}, "data": {data}}}'


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (native_with('{"duration_ms": NaN}'), "field 'data.duration_ms' is not a finite number"),
        (native_with('{"duration_ms": Infinity}'), "field 'data.duration_ms' is not a finite number"),
        (native_with('{"duration_ms": 1e999}'), "field 'data.duration_ms' is not a finite number"),
        (native_with('{"total_rules": ' + "9" * 5000 + "}"), "field 'data.total_rules' is an integer of more than 4,300 digits"),
        (native_with('{"error": ' + "[" * 5000 + '"x"' + "]" * 5000 + "}"), "field 'data' is nested more than 32 levels deep"),
        (native_with('{"error": ' + "[" * 40 + '"x"' + "]" * 40 + "}"), "field 'data.error[0][0]"),
        (native_with(timestamp='"9999-12-31T23:59:59-23:59"'), "field 'timestamp' is out of range"),
    ],
    ids=lambda v: str(v)[-50:],
)
def test_a_signed_hostile_oxoflow_post_is_refused_with_400_and_dead_lettered(body: str, expected: str) -> None:
    # given oxo-flow's POST, signed, holding something hostile
    # when the ingest function handles it
    answer, sns, dead = post(body)
    # then it answers 400 naming the field, keeps it as a dead letter, and publishes nothing
    assert answer["statusCode"] == 400, answer
    assert expected in json.loads(answer["body"])["error"]
    ((letter, _),) = dead.messages
    assert letter["reason_code"] == "invalid_event" and expected in letter["reason"]
    assert sns.published == []


def test_a_signed_ordinary_oxoflow_post_is_still_published() -> None:
    answer, sns, dead = post(json.dumps(NATIVE))
    assert answer["statusCode"] == 202 and len(sns.published) == 1 and dead.messages == []


# -- validate: the same words as the Lambda, exit 1, no traceback (through cli.main) -------------


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (
            '[[webhooks]]\nurl = "https://a.example.org/h"\nheaders = { "X-A\\n" = "v" }\n',
            "header #1 has a name that is not a valid HTTP token",
        ),
        ('[[webhooks]]\nurl = "https://hooks..example.org/h"\n', "the URL's host has an empty label"),
        ("[config]\nx = " + "[" * 600 + "]" * 600 + "\n", "key 'config' is nested more than 32 levels deep (tables and arrays), at line 2"),
        ("#" * (MAX_CONFIG_BYTES + 1), f"the file is {MAX_CONFIG_BYTES + 1:,} bytes; the limit is 1,048,576 bytes (1 MiB)"),
        (f'[[webhooks]]\nurl = "{URL}"\nevents = [' + ", ".join(f'"E{i}"' for i in range(50_000)) + "]\n", "... and 49,997 more"),
    ],
    ids=["header", "host", "depth", "oversize", "events"],
)
def test_validate_prints_the_lambdas_problem_and_exits_1(tmp_path: Any, capsys: pytest.CaptureFixture[str], text: str, says: str) -> None:
    path = tmp_path / "wf.oxoflow"
    path.write_text(text, encoding="utf-8")
    assert main(["validate", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"{path}: ") and says in err and "Traceback" not in err and len(err) < 2000


def test_publish_refuses_hostile_details_naming_the_field(capsys: pytest.CaptureFixture[str]) -> None:
    for details, says in [
        ('{"duration_s": Infinity}', "field 'details.duration_s' is not a finite number"),
        ("[" * 5000 + "]" * 5000, "--details: nested more than 32 levels deep"),
        ('{"a": ' + "[" * 40 + "]" * 40 + "}", "field 'details.a[0]"),
    ]:
        code = main(["publish", "--dry-run", "--event", "WorkflowStarted", "--workflow", "wf", "--details", details])
        err = capsys.readouterr().err
        assert code == 1 and says in err and "Traceback" not in err, err


# -- properties ----------------------------------------------------------------------------------

# Values nobody should write, and that once escaped as another exception somewhere.
hostile_text = st.one_of(
    st.text(max_size=80),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=80),
    st.sampled_from(["X-A\n", "€", "a\r\nb", "\x00", "\x1b[31m", "hooks..example.com", "a" * 64, "xn--", "\ufffd", "*", " ", ""]),
    st.integers(min_value=1, max_value=400).map(lambda n: "x" * n),
)


def toml_string(text: str) -> str:
    """A TOML basic string holding exactly ``text`` (any code point but a surrogate)."""
    out = []
    for ch in text:
        if ch in '"\\' or ord(ch) < 32 or ord(ch) == 127:
            out.append(f"\\u{ord(ch):04x}")
        elif 0xD800 <= ord(ch) <= 0xDFFF:
            out.append("\ufffd")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def inline_table(name: str, value: str) -> str:
    return "{ " + toml_string(name) + " = " + toml_string(value) + " }"


def deep_toml(levels: int) -> str:
    return "[" * levels + "1" + "]" * levels


# (key, a hostile TOML value for it): each must end as a problem or an error naming the key
hostile_values: st.SearchStrategy[tuple[str, str]] = st.one_of(
    st.tuples(st.just("headers"), st.tuples(hostile_text, hostile_text).map(lambda kv: inline_table(*kv))),
    st.tuples(st.just("headers"), hostile_text.map(lambda v: f'{{ "X-Ok" = {toml_string(v)} }}')),
    st.tuples(st.just("url"), hostile_text.map(lambda host: toml_string(f"https://{host}/x"))),
    st.tuples(st.just("url"), hostile_text.map(lambda port: toml_string(f"https://a.example.org:{port}/x"))),
    st.tuples(st.just("url"), hostile_text.map(toml_string)),
    st.tuples(st.just("events"), st.lists(hostile_text, max_size=80).map(lambda xs: "[" + ", ".join(map(toml_string, xs)) + "]")),
    st.tuples(st.just("events"), st.integers(min_value=1, max_value=3000).map(lambda n: "[" + ", ".join(['"Nope"'] * n) + "]")),
    st.tuples(st.sampled_from(["format", "id", "secret", "signature", "method", "signature_scheme"]), hostile_text.map(toml_string)),
    st.tuples(st.sampled_from(["timeout", "max_attempts"]), st.sampled_from(["nan", "inf", "-inf", "1e999", "9" * 30, "-0.0", "1e-400"])),
    st.tuples(st.sampled_from(["headers", "events", "url", "secret"]), st.integers(min_value=28, max_value=1200).map(deep_toml)),
    st.tuples(st.sampled_from(["timeout", "max_attempts", "events"]), st.integers(min_value=4301, max_value=6000).map(lambda n: "9" * n)),
)


@PROPERTY
@given(hostile_values, st.booleans())
def test_a_hostile_value_for_any_key_is_a_problem_or_error_naming_that_key(key_value: tuple[str, str], singular: bool) -> None:
    # given one webhook (either table) with one hostile value, and a good webhook after it
    key, value = key_value
    table = "[webhook]" if singular else "[[webhooks]]"
    if singular and key in ("signature", "max_attempts", "timeout"):
        key = {"signature": "signature_scheme", "max_attempts": "max_retries", "timeout": "timeout_secs"}[key]
    url = "" if key == "url" else f'url = "{URL}"\n'
    text = f'{table}\n{url}{key} = {value}\n\n[[webhooks]]\nurl = "https://ok.example.org/a"\n'
    # when the file is parsed
    try:
        config = parse_config(text, "wf.oxoflow")
    except ConfigError as exc:
        # then either the whole file is refused, naming the key (or the table it sits in) ...
        message = str(exc)
        assert message.startswith("wf.oxoflow: ") and any(f"'{k}'" in message for k in (key, "webhooks", "webhook")), message
        return
    # ... or the good webhook works and the hostile one is a problem naming its key
    assert "ok.example.org" in [w.host for w in config.webhooks]
    for problem in config.problems:
        assert f"'{key}'" in problem.message, problem.message
        assert problem.message.startswith(f"wf.oxoflow: {table}") and len(problem.message) < 2000


toml_fragments = st.sampled_from(
    [
        "[[webhooks]]", f'url = "{URL}"', "[webhook]", "[config]", "[workflow]", 'name = "x"', "x = " + deep_toml(40),
        "x = " + deep_toml(450), "y = {" + "a = {" * 40 + "}" * 41, ".".join(["k"] * 40) + " = 1", "[" + ".".join(["t"] * 1100) + "]",
        "n = " + "9" * 5000, "f = nan", "f = inf", 'headers = { "X-A\\n" = "v" }', 'headers = { "X" = "\\u0000" }',
        'url = "https://hooks..example.com/x"', 'url = "https://a.example.org:x/y"', 'events = ["RuleFaild", "*"]',
        "events = [" + ", ".join(['"E"'] * 100) + "]", 't = 9999-12-31T23:59:59-23:59', '"\\n" = 1', "[[webhooks]]\nevents = [[[[1]]]]",
    ]
)  # fmt: skip


@PROPERTY
@given(st.lists(toml_fragments | st.text(max_size=30), max_size=12))
def test_any_file_made_of_hostile_fragments_is_parsed_or_refused_with_a_config_error(lines: list[str]) -> None:
    text = "\n".join(lines) + "\n"
    try:
        config = parse_config(text, "wf.oxoflow")
    except ConfigError as exc:
        assert str(exc).startswith("wf.oxoflow: ") and len(str(exc)) < 2000
    else:
        for problem in config.problems:
            message = problem.message
            assert message.startswith("wf.oxoflow: [") and ("key '" in message or "must be a table" in message), message


def json_deep(levels: int) -> str:
    return "[" * levels + "1" + "]" * levels


hostile_json = st.one_of(
    st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "-1e999", "9" * 4301, "-" + "9" * 5000, "1e308", "-0.0", "5e-324"]),
    st.integers(min_value=MAX_EVENT_NESTING, max_value=20_000).map(json_deep),
    st.integers(min_value=MAX_EVENT_NESTING - 2, max_value=2000).map(lambda n: '{"a": ' * n + "1" + "}" * n),
    st.sampled_from(['"9999-12-31T23:59:59-23:59"', '"0001-01-01T00:00:00+23:59"', '"0000-01-01T00:00:00Z"', '"2026-13-40T25:61:61Z"']),
    hostile_text.map(json.dumps),
    st.recursive(
        st.sampled_from(["NaN", "1e999", "1", '"x"', "null"]),
        lambda inner: (
            st.lists(inner, max_size=3).map(lambda xs: "[" + ", ".join(xs) + "]")
            | st.lists(st.tuples(hostile_text, inner), max_size=3).map(
                lambda kv: "{" + ", ".join(f"{json.dumps(k)}: {v}" for k, v in kv) + "}"
            )
        ),
        max_leaves=8,
    ),
)


@PROPERTY
@given(st.sampled_from([*FIELDS, "detail", "\n", "x" * 200]), hostile_json, st.booleans())
def test_a_hostile_value_in_any_field_is_an_event_error_naming_that_field(field: str, value: str, nested: bool) -> None:
    # given a valid event with one field (or one entry of details) replaced by hostile JSON text
    base = {"event": "RuleFailed", "workflow": "wf", "rule": "r"}
    if nested:
        field, raw = "details", json.dumps(base)[:-1] + f', "details": {{"x": {value}}}}}'
    else:
        raw = json.dumps({k: v for k, v in base.items() if k != field})[:-1] + f", {json.dumps(field)}: {value}}}"
    # when it is parsed
    try:
        event = parse_event(raw, message_id="m", received_at=RECEIVED_AT)
    except EventError as exc:
        # then it is refused naming that field, or it is accepted and renders as strict JSON
        assert f"'{shown(field)}" in str(exc), str(exc)
        assert len(str(exc)) < 2000
    else:
        for fmt in FORMATS:
            strict(render(event, fmt))


@PROPERTY
@given(st.text(max_size=300) | st.binary(max_size=300) | hostile_json)
def test_any_message_text_is_an_event_or_an_event_error(raw: str | bytes) -> None:
    try:
        event = parse_event(raw, message_id="m", received_at=RECEIVED_AT)
    except EventError as exc:
        assert names_a_field(str(exc), raw), str(exc)
    else:
        strict(render(event, "json"))

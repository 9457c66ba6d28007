"""A receiver that echoes our secrets back, re-encoded, gets none of them into a reason; ordinary
answers stay readable. No socket: the answer is cleaned as the sender cleans it (delivery._snippet)
and judged as the notifier judges it (answers.judge). What reaches logs and dead letters through a
whole run is in tests/e2e/test_secrets_canaries.py."""

from __future__ import annotations

import base64
import codecs
import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from oxoflow_notify.config import Webhook
from oxoflow_notify.inbound.events import parse_event
from oxoflow_notify.outbound.delivery import Outcome, Prepared, _snippet, prepare, redact
from oxoflow_notify.outbound.echoes import REDACTED, looks_secret
from oxoflow_notify.pipeline.answers import judge
from tests.conftest import RECEIVED_AT, message

EVENT = parse_event(json.dumps(message("rule-failed")), message_id="m-1", received_at=RECEIVED_AT)
SLACK_TOKEN = "q7Rk2PzX9mWb4LsT8vNc3HyD"
SIGNING_SECRET = "s3cr3t-Kx82mQp0Lz7Vw4Rt"
BEARER = "tok_9fK2mX7pQ4wL8zR3vN6bH1cJ"
WHSEC = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def _webhook(url: str = "https://receiver.example/hooks/1", **extra: Any) -> Webhook:
    fields: dict[str, Any] = {"format": "json", "events": None, "secrets": (), "source": "workflows/wf.oxoflow", "position": 1}
    return Webhook(id="wh", url=url, **{**fields, **extra})


# Each place a secret lives, and the value a receiver would echo from it.
PLACES: dict[str, tuple[Webhook, str]] = {
    "slack_url_token": (_webhook(f"https://hooks.slack.com/services/T0AB12CD3/B0EF45GH6/{SLACK_TOKEN}", format="slack"), SLACK_TOKEN),
    "webhook_secret": (_webhook(secrets=(SIGNING_SECRET,)), SIGNING_SECRET),
    "authorization_header": (_webhook(headers=(("Authorization", f"Bearer {BEARER}"),)), BEARER),
    "whsec_secret": (_webhook(secrets=(WHSEC,)), WHSEC),
}


def _b64(value: str, offset: int, url: bool = False) -> str:
    encode = base64.urlsafe_b64encode if url else base64.b64encode
    return encode(b"xy"[:offset] + value.encode()).decode()


def _half(value: str, sep: str) -> str:
    return value[: len(value) // 2] + sep + value[len(value) // 2 :]


# Every form of point 7 of issue #20 (and the plain value).
FORMS: dict[str, Callable[[str], str]] = {
    "plain": lambda v: v,
    "hex": lambda v: v.encode().hex(),
    "HEX": lambda v: v.encode().hex().upper(),
    "percent_every_char": lambda v: "".join(f"%{b:02X}" for b in v.encode()),
    "unicode_escapes": lambda v: "".join(f"\\u{ord(c):04x}" for c in v),
    "base64": lambda v: _b64(v, 0),
    "base64_offset_1": lambda v: _b64(v, 1),
    "base64_offset_2": lambda v: _b64(v, 2),
    "base64url_offset_1": lambda v: _b64(v, 1, url=True),
    "base64url_offset_2": lambda v: _b64(v, 2, url=True),
    "split_by_newline": lambda v: _half(v, "\n"),
    "split_by_space": lambda v: _half(v, " "),
    "html_decimal_entities": lambda v: "".join(f"&#{ord(c)};" for c in v),
    "html_hex_entities": lambda v: "".join(f"&#x{ord(c):x};" for c in v),
    "reversed": lambda v: v[::-1],
    "rot13": lambda v: codecs.encode(v, "rot13"),
    "zero_width_joined": lambda v: "\u200b".join(v),
    "first_10_characters": lambda v: v[:10],
}

ORDINARY = [
    "invalid_payload",
    "no such hook",
    '{"code": 50035, "message": "Invalid Form Body"}',
    "The channel was archived, so the message could not be posted.",
    "ResourceNotFoundException: webhook not found",
    "max_retries_exceeded_for_webhook_12345",
    "Too many requests; retry after 30 seconds",
    "Internal Server Error",
    "expected Content-Type application/json",
]


def _prepared(place: str) -> Prepared:
    return prepare(EVENT, PLACES[place][0], "d-1", 1)


def _leaks(form: str, cleaned: str) -> list[str]:
    """Any 10 characters of the echoed form still in the cleaned text (the whole form, when shorter)."""
    width = min(10, len(form))
    windows = {form[i : i + width] for i in range(len(form) - width + 1)}
    return sorted(w for w in windows if w.strip() and w in cleaned)


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("place", PLACES)
def test_no_form_of_an_echoed_secret_survives_the_cleaning_or_reaches_the_reason(place: str, form: str) -> None:
    # given a receiver that answers 500 with the secret in this form, between ordinary words
    prepared = _prepared(place)
    echoed = FORMS[form](PLACES[place][1])
    answer = f"upstream said {echoed} and gave up"
    # when the sender reads the answer, and the notifier words the reason from it
    snippet = _snippet(answer.encode(), 500, prepared)
    reason = judge(prepared.webhook.format, Outcome(500, None, 1.0, snippet=snippet), 0.0).reason
    # then neither holds any part of the form, nor of the secret itself, and the removal shows
    for text in (snippet, reason):
        assert _leaks(echoed, text) == [] and _leaks(PLACES[place][1], text) == [], text
        assert REDACTED in text and text.startswith(("upstream said", "HTTP 500 upstream said")), text


@pytest.mark.parametrize("place", PLACES)
@pytest.mark.parametrize("said", ORDINARY)
def test_ordinary_answers_stay_readable(place: str, said: str) -> None:
    # given a webhook with a secret in some place, and a receiver that explains itself in plain words
    prepared = _prepared(place)
    # when the answer is cleaned, then it reads as it was said
    assert _snippet(said.encode(), 400, prepared) == said
    assert judge("json", Outcome(400, None, 1.0, snippet=said), 0.0).reason == f"HTTP 400 {said}"


@pytest.mark.parametrize(
    ("token", "key_like"),
    [
        ("aB3dE5fG7hJ9kL1mN2pQ4rS6", True),  # base64-ish: classes change throughout
        ("xoxb-123456789012-1234567890123-abcdefghijk", True),  # by its prefix
        ("xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx", True),
        ("AKIAIOSFODNN7EXAMPLE", True),
        ("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b", True),  # hex
        ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0", True),
        ("invalid_payload_format_version", False),
        ("Invalid_Form_Body_or_missing_parameter", False),
        ("ResourceNotFoundException", False),
        ("application/x-www-form-urlencoded", False),
        ("ERR_INVALID_ARG_TYPE_IN_REQUEST_2024", False),
    ],
)
def test_a_key_nobody_told_us_about_is_found_by_its_look(token: str, key_like: bool) -> None:
    # given a webhook without secrets (the token is no secret of ours), when an answer holds the token
    prepared = _prepared("webhook_secret")
    cleaned = redact(f"error: {token} refused", prepared)
    # then it is removed when it looks like a key (the way secret scanners find them), kept otherwise
    assert (token not in cleaned) == key_like, cleaned
    assert looks_secret(token.split(".")[0]) == key_like


def test_an_answer_over_the_cleaning_limit_is_cut_at_a_word_and_cleaned_in_a_few_milliseconds() -> None:
    # given a 4 KB answer full of near-tokens and one echo at its end, and one 64 KB long
    prepared = _prepared("slack_url_token")
    four_kb = (" ".join(f"field_{i} invalid value{i}" for i in range(200)))[:4000] + " " + SLACK_TOKEN.encode().hex()
    assert len(four_kb) >= 4000
    started = time.perf_counter()
    for _ in range(10):
        _snippet(four_kb.encode(), 500, prepared)
    per_call = (time.perf_counter() - started) / 10
    print(f"cleaning one 4 KB answer: {per_call * 1000:.1f} ms")  # measured, never asserted (no wall clock in assertions)
    # when an answer is longer than the limit, the secret's start at the cut is dropped with its word
    long = ("x " * 2047) + SLACK_TOKEN + ("y" * 60000)
    assert SLACK_TOKEN[:6] not in _snippet(long.encode(), 500, prepared)

"""Receivers' documented answers mapped to delivered / retry / give up."""

from __future__ import annotations

import functools

import pytest

from oxoflow_notify.outbound.delivery import Outcome
from oxoflow_notify.outbound.failures import Failure
from oxoflow_notify.pipeline.answers import Kind, judge, snippet

SUCCESS, RETRYABLE, PERMANENT = Kind.DELIVERED, Kind.RETRY, Kind.GIVE_UP

NOW = 1_000_000_000.0


def answer(status: int, body: str = "", retry_after: str | None = None) -> Outcome:
    return Outcome(status, None, 5.0, retry_after, body)


@pytest.mark.parametrize(
    ("fmt", "status", "body", "kind", "says"),
    [
        ("slack", 200, "ok", SUCCESS, "HTTP 200"),
        ("slack", 400, "invalid_payload", PERMANENT, "HTTP 400 invalid_payload"),
        ("slack", 403, "action_prohibited", PERMANENT, "action_prohibited"),
        ("slack", 404, "channel_not_found", PERMANENT, "channel_not_found, the webhook's channel is gone"),
        ("slack", 410, "channel_is_archived", PERMANENT, "channel_is_archived"),
        ("slack", 429, "rate_limited", RETRYABLE, "HTTP 429"),
        ("slack", 500, "rollup_error", RETRYABLE, "HTTP 500 rollup_error"),
        ("discord", 204, "", SUCCESS, "HTTP 204"),
        ("discord", 404, '{"message": "Unknown Webhook", "code": 10015}', PERMANENT, "unknown webhook, it was deleted"),
        ("discord", 400, '{"code": 50035}', PERMANENT, "HTTP 400"),
        ("teams", 202, "", SUCCESS, "HTTP 202"),
        ("teams", 200, "1", SUCCESS, "HTTP 200"),
        ("teams", 200, "Webhook message delivery failed with error: Microsoft Teams endpoint returned HTTP error 429", RETRYABLE,
         "with an error in the body"),
        ("teams", 400, "Bad payload received by generic incoming webhook.", PERMANENT, "Bad payload"),
        ("json", 200, "anything, even error", SUCCESS, "HTTP 200"),
        ("json", 301, "", PERMANENT, "redirects are not followed"),
        ("json", 503, "", RETRYABLE, "HTTP 503"),
    ],
)  # fmt: skip
def test_documented_answers(fmt: str, status: int, body: str, kind: Kind, says: str) -> None:
    verdict = judge(fmt, answer(status, body), NOW)
    assert verdict.kind is kind
    assert says in verdict.reason


def test_retry_after_header_and_discords_json_retry_after() -> None:
    assert judge("slack", answer(429, "", "30"), NOW).retry_after == 30
    assert judge("discord", answer(429, '{"retry_after": 2.5, "global": false}'), NOW).retry_after == 2.5
    assert judge("discord", answer(429, '{"retry_after": 2.5}', "7"), NOW).retry_after == 7
    assert judge("json", answer(429, "not json"), NOW).retry_after is None


@pytest.mark.parametrize(("body", "expected"), [('{"retry_after": 3600000}', 3600.0), ('{"retry_after": -5}', 0.0),
                                                ('{"retry_after": 1e999}', None), ('{"retry_after": true}', None)])  # fmt: skip
def test_discords_json_retry_after_is_held_to_the_hour_a_header_may_ask(body: str, expected: float | None) -> None:
    # given a 429 whose JSON asks for 41 days (a proxy, or milliseconds as API v6 gave them), less than
    # nothing, an infinity, or not a number; when / then: at most the hour a Retry-After header may ask
    assert judge("discord", answer(429, body), NOW).retry_after == expected


def test_transport_errors_are_retryable() -> None:
    verdict = judge("slack", Outcome(None, Failure.CONNECTION_RESET, 1.0), NOW)
    assert (verdict.kind, verdict.reason) == (RETRYABLE, "connection reset")


def test_snippets_drop_urls_and_control_characters_and_stay_short() -> None:
    assert snippet("see https://hooks.slack.com/services/T/B/SECRET for details\nmore") == "see <url> for details"
    assert snippet("a\x1b[31mb") == "a[31mb"
    assert len(snippet("x" * 500)) == 81


@pytest.mark.parametrize(
    ("outcome", "reason"),
    [
        (Outcome(None, Failure.HTTPS_REQUIRED, 0.0, detail="plain http is refused (REQUIRE_HTTPS is on); use an https URL"),
         "plain http is refused (REQUIRE_HTTPS is on); use an https URL (permanent; not retried)"),
        (Outcome(404, None, 1.0, snippet="no such hook"), "HTTP 404 no such hook (permanent; not retried)"),
    ],
)  # fmt: skip
def test_a_permanent_failure_reads_as_its_reason_then_what_was_done(outcome: Outcome, reason: str) -> None:
    from oxoflow_notify.pipeline.answers import Policy, decide

    decision = decide("json", outcome, 1, None, Policy(schedule=(0,)), 0.0)
    assert (decision.kind, decision.reason, decision.code) == (PERMANENT, reason, "permanent_failure")


def test_a_secret_the_store_could_not_give_is_a_hold_not_an_attempt() -> None:
    # given SSM or Secrets Manager throttled or timed out (our fault, not the receiver's)

    from oxoflow_notify.pipeline.answers import SECRET_HOLD_SECONDS, Policy, decide

    outcome = Outcome(None, Failure.SECRET_UNAVAILABLE, 0.0, detail="ssm is unavailable (ThrottlingException)")
    # when the last allowed attempt meets it
    for rand in (0.0, 0.999):
        policy = Policy((5, 300), rand=functools.partial(float, rand))
        decision = decide("json", outcome, attempt=8, max_attempts=8, policy=policy, now=0.0)
        # then it is held (no attempt spent, never dead-lettered), back within 0.5x-1.5x of the hold, blaming no endpoint
        assert decision.kind is Kind.HELD and decision.code == Failure.SECRET_UNAVAILABLE
        assert 0.5 * SECRET_HOLD_SECONDS <= decision.wait <= 1.5 * SECRET_HOLD_SECONDS
        assert decision.endpoint_failed is None

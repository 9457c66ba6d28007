"""Mistyped replay filters and durations are refused with the fix, and `verify` says which Standard
Webhooks check failed: all before any AWS call (run in process, no sockets)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from oxoflow_notify.outbound.signing import standard_headers
from oxoflow_notify.outbound.verify import standard_problem, verify_standard
from oxoflow_notify.pipeline import deadletter
from oxoflow_notify.tools.cli import main
from oxoflow_notify.tools.replay import REASON_CODES

QUEUE = "https://sqs.eu-west-1.amazonaws.com/123456789012/dlq"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse's own errors
        code = int(exc.code or 0)
    return code, capsys.readouterr().err


def test_a_mistyped_reason_is_refused_with_the_code_it_meant(capsys: pytest.CaptureFixture[str]) -> None:
    # when replay is asked for a reason code no dead letter carries
    code, err = run(capsys, "replay", "--queue-url", QUEUE, "--reason", "permanent_failur")
    # then it says so, with the right one, and exits 2 instead of "nothing matched"
    assert code == 2
    assert "replay: --reason: unknown reason code 'permanent_failur' (did you mean 'permanent_failure'?)" in err
    assert "retries_exhausted" in err and "Traceback" not in err


def test_every_reason_code_a_dead_letter_can_carry_is_a_known_one() -> None:
    codes = {v for k, v in vars(deadletter).items() if re.fullmatch(r"[A-Z_]+", k) and isinstance(v, str) and re.fullmatch(r"[a-z_]+", v)}
    assert codes and codes <= set(REASON_CODES)


@pytest.mark.parametrize(("given", "says"), [("rule_faild", "did you mean 'rule_failed'?"), ("RuleFaild", "did you mean 'RuleFailed'?")])
def test_a_mistyped_event_is_refused_with_the_event_it_meant(capsys: pytest.CaptureFixture[str], given: str, says: str) -> None:
    for on_failure in ([], ["--on-failure", "--dry-run"]):
        code, err = run(capsys, "replay", "--queue-url", QUEUE, "--event", given, *on_failure)
        assert code == 2 and f"--event: unknown event '{given}'" in err and says in err


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (
            ["replay", "--queue-url", QUEUE, "--older-than", "3"],
            "argument --older-than: '3' is not a duration; write a number and a unit: 30m, 12h, 7d",
        ),
        (["replay", "--queue-url", QUEUE, "--newer-than", "a week"], "argument --newer-than: 'a week' is not a duration"),
        (
            ["follow", "run.jsonl", "--idle-exit", "soon"],
            "argument --idle-exit: 'soon' is not a duration; write seconds or a number and a unit",
        ),
    ],
)
def test_a_duration_that_is_not_one_says_how_to_write_one(capsys: pytest.CaptureFixture[str], argv: list[str], says: str) -> None:
    code, err = run(capsys, *argv)
    assert code == 2 and says in err and "_age" not in err


STANDARD_ID, STANDARD_AT, BODY = "msg_1", 1_779_000_000, b'{"event":"RuleFailed"}'


def signed(secret: str = "whsec_" + "a" * 32) -> dict[str, str]:
    return standard_headers([secret], STANDARD_ID, STANDARD_AT, BODY)


@pytest.mark.parametrize(
    ("headers", "now", "says"),
    [
        (signed(), STANDARD_AT + 10, None),
        (signed("whsec_" + "b" * 32), STANDARD_AT, "bad signature: this secret did not sign these 22 bytes"),
        (signed(), STANDARD_AT + 3600, "timestamp 3600 s old, outside the tolerance of 300 s"),
        (signed(), STANDARD_AT - 900, "timestamp 900 s in the future, outside the tolerance of 300 s"),
        ({k: v for k, v in signed().items() if k != "webhook-id"}, STANDARD_AT, "missing header webhook-id"),
        ({**signed(), "webhook-timestamp": "yesterday"}, STANDARD_AT, "webhook-timestamp 'yesterday' is not whole unix seconds"),
        ({**signed(), "webhook-signature": "v2,abc"}, STANDARD_AT, "no v1 signature in webhook-signature"),
    ],
)
def test_standard_webhooks_says_which_check_failed_and_agrees_with_verify_standard(
    headers: dict[str, str], now: int, says: str | None
) -> None:
    problem = standard_problem("whsec_" + "a" * 32, headers, BODY, now=now)
    assert problem == says or (says is not None and problem is not None and problem.startswith(says))
    assert verify_standard("whsec_" + "a" * 32, headers, BODY, now=now) is (says is None)


def test_a_bad_signature_and_an_old_timestamp_are_both_named() -> None:
    problem = standard_problem("whsec_" + "a" * 32, signed("whsec_" + "b" * 32), BODY, now=STANDARD_AT + 3600)
    assert problem is not None and problem.startswith("bad signature") and "timestamp 3600 s old" in problem


def test_verify_prints_which_standard_webhooks_check_failed(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # given a body and a secret, signed an hour before the check (the tolerance is 300 s)
    body, secret = tmp_path / "body.json", tmp_path / "secret"
    body.write_bytes(BODY)
    secret.write_text("whsec_" + "a" * 32, encoding="utf-8")
    headers = [f"{k}: {v}" for k, v in signed().items()]
    # when verify checks it now
    code, err = run(capsys, "verify", "--body", str(body), "--secret-file", str(secret), *[a for h in headers for a in ("--header", h)])
    # then it exits 1 and says the timestamp failed, not the signature
    assert code == 1
    assert err.startswith("invalid Standard Webhooks request: timestamp ") and "outside the tolerance of 300 s" in err
    assert "bad signature" not in err


def test_verify_with_a_secret_that_is_not_a_standard_webhooks_one_says_how_to_write_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    body = tmp_path / "body.json"
    body.write_bytes(BODY)
    headers = [a for k, v in signed().items() for a in ("--header", f"{k}: {v}")]
    code, err = run(capsys, "verify", "--body", str(body), "--secret", "k", *headers)
    assert code == 2 and "write whsec_ followed by its base64" in err and "Traceback" not in err

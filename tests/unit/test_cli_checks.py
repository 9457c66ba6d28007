"""Mistyped replay filters and durations are refused with the fix, and `verify` says which Standard
Webhooks check failed: all before any AWS call (run in process, no sockets)."""

from __future__ import annotations

import io
import re
import sys
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


# -- a hostile read's findings: each input below once ended in a traceback or a wrong verdict --------


def test_files_a_command_reads_are_bounded_and_must_be_utf8(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # given a binary file and a file larger than any event
    binary, huge = tmp_path / "bin.json", tmp_path / "huge.json"
    binary.write_bytes(b"\xff\xfe")
    huge.write_bytes(b" " * (2 << 20))
    # when publish and verify read them, each says what is wrong with the file, exit 2
    assert run(capsys, "publish", str(binary), "--dry-run") == (2, f"cannot read {binary}: not UTF-8 text (byte 0)\n")
    code, err = run(capsys, "publish", str(huge), "--dry-run")
    assert code == 2 and "larger than 1,048,576 bytes" in err
    code, err = run(capsys, "verify", "--body", str(huge), "--secret", "s", "--signature", "sha256=00")
    assert code == 2 and "larger than" in err and "Traceback" not in err


def test_an_endpoint_that_is_no_url_is_one_sentence(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "AWS_ENDPOINT_URL": "notaurl",
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "y",
        "AWS_EC2_METADATA_DISABLED": "true",
    }.items():
        monkeypatch.setenv(name, value)
    code, err = run(capsys, "publish", "--event", "WorkflowStarted", "--workflow", "wf", "--topic-arn", "arn:aws:sns:eu-west-1:1:t")
    assert code == 2 and err.startswith("sns: Invalid endpoint: notaurl: set AWS_ENDPOINT_URL to a URL") and len(err.splitlines()) == 1


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["follow", "x.log", "--poll", "-1"], "'-1' is not a positive number of seconds"),
        (["follow", "x.log", "--poll", "nan"], "'nan' is not a positive number of seconds"),
        (["verify", "--tolerance", "nan", "--secret", "s"], "'nan' is not a positive number of seconds"),
        (["replay", "--queue-url", QUEUE, "--limit", "0"], "'0' is not a whole number of 1 or more"),
        (["replay", "--queue-url", QUEUE, "--workflow", "bad name!"], "--workflow 'bad name!' is no workflow name"),
        (["replay", "--queue-url", QUEUE, "--older-than", "2h", "--newer-than", "1h"], "--newer-than must be longer ago than --older-than"),
    ],
)
def test_options_that_could_only_match_nothing_or_spin_are_refused(capsys: pytest.CaptureFixture[str], argv: list[str], says: str) -> None:
    code, err = run(capsys, *argv)
    assert code == 2 and says in err and "Traceback" not in err


def test_compound_ages_read_like_the_configs_durations() -> None:
    from oxoflow_notify.tools.replay import parse_age

    assert (parse_age("1h30m"), parse_age("90s"), parse_age("7d")) == (5400, 90, 604800)
    for bad in ("3", "-1h", "nan", "1e308d", "1h 30m", ""):
        with pytest.raises(ValueError, match=r"e\.g\. 30m, 12h, 1h30m"):
            parse_age(bad)


def test_follow_refuses_a_state_file_it_could_not_save(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    log = tmp_path / "run.jsonl"
    log.write_text('{"event": "workflow_started", "workflow_name": "wf"}\n')
    code, err = run(capsys, "follow", str(log), "--dry-run", "--state", str(tmp_path))
    assert code == 2 and "is a directory; give a file" in err
    code, err = run(capsys, "follow", str(log), "--dry-run", "--state", str(tmp_path / "no" / "such.json"))
    assert code == 2 and "no such folder" in err


def test_a_bad_require_https_names_that_setting_not_the_allowlist(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "wf.oxoflow"
    config.write_text('[[webhooks]]\nurl = "https://hooks.example.org/x"\n')
    monkeypatch.setenv("REQUIRE_HTTPS", "maybe")
    code, err = run(capsys, "validate", str(config))
    assert code == 2 and "REQUIRE_HTTPS" in err and "true or false" in err and "CIDR" not in err


def test_anything_unexpected_is_one_sentence_never_a_traceback(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    # given a command that hits a bug of ours
    from oxoflow_notify.tools import cli

    def broken(args: object) -> int:
        raise RuntimeError("something we did not expect")

    monkeypatch.setattr(cli, "cmd_publish", broken)
    monkeypatch.delenv("OXOFLOW_NOTIFY_DEBUG", raising=False)
    # when it runs, it says so in one sentence (how to get the traceback included), exit 2
    code, err = run(capsys, "publish", "--dry-run")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "publish: failed (RuntimeError: something we did not expect)" in err and "OXOFLOW_NOTIFY_DEBUG=1" in err


def test_follow_does_not_retry_what_waiting_cannot_fix(tmp_path: Path) -> None:
    # given a publisher with no credentials (final: waiting cannot help)
    from oxoflow_notify.tools.cli import Usage
    from oxoflow_notify.tools.follow import Follower

    log = tmp_path / "run.jsonl"
    log.write_text('{"event": "workflow_started", "workflow_name": "wf", "timestamp": "2026-05-18T12:00:00Z"}\n')
    slept: list[float] = []

    def publish(message: dict[str, object]) -> str:
        raise Usage("follow: no AWS credentials found")

    follower = Follower(log, publish, from_start=True, log=lambda text: None, sleep=slept.append)
    # when it publishes the first line, the refusal goes straight up, with no retries slept
    with pytest.raises(Usage):
        follower.poll_once()
    assert slept == []


def test_validate_refuses_what_upload_could_not_place(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # given a valid file whose name is no workflow name, and no [workflow] name
    config = tmp_path / "my config.oxoflow"
    config.write_text('[[webhooks]]\nurl = "https://hooks.example.org/x"\n')
    # when it is validated, validate says what upload would (so `validate && upload` stops at validate)
    code, err = run(capsys, "validate", str(config))
    assert code == 1 and "which workflow is this file for?" in err and "--workflow" in err
    # and with the workflow named, it is fine
    assert run(capsys, "validate", str(config), "--workflow", "wgs")[0] == 0


@pytest.mark.parametrize("signature", ["garbage", "sha256=zz", "sha256=" + "0" * 63])
def test_verify_tells_a_malformed_signature_from_a_wrong_one(capsys: pytest.CaptureFixture[str], tmp_path: Path, signature: str) -> None:
    body = tmp_path / "body.json"
    body.write_bytes(b"{}")
    code, err = run(capsys, "verify", "--body", str(body), "--secret", "s", "--signature", signature)
    assert code == 1 and err.startswith("malformed X-Hub-Signature-256 signature: expected sha256= and 64 hex digits")
    code, err = run(capsys, "verify", "--body", str(body), "--secret", "s", "--signature", "sha256=" + "0" * 64)
    assert code == 1 and err.startswith("invalid X-Hub-Signature-256 signature: this secret did not sign these 2 bytes")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_replays_progress_bar_is_drawn_on_a_terminal_only(monkeypatch: pytest.MonkeyPatch) -> None:
    from oxoflow_notify.tools import cmd_replay

    # given replay's output going to a pipe or a log file: then no bar (a line of carriage returns) is written
    piped = io.StringIO()
    monkeypatch.setattr(sys, "stderr", piped)
    cmd_replay._progress_bar(1, 4, "delivered")
    assert piped.getvalue() == ""
    # given a terminal: then the bar is drawn in place
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    cmd_replay._progress_bar(1, 4, "delivered")
    assert terminal.getvalue().startswith("\r  [#######") and "1/4 delivered" in terminal.getvalue()

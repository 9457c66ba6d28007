"""The exit-code table in docs/publishing.md is what the commands do: each cell it fills is run, as
the installed command, against moto server, and must end with that code and no traceback."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from oxolocal.receivers import Answer, Receiver
from oxolocal.stack import Stack
from tests.conftest import EVENTS
from tests.e2e.test_cli import envelope_for, on_failure_record, run

ROOT = Path(__file__).resolve().parents[2]
Run = Callable[["Case"], subprocess.CompletedProcess[str]]


def documented_codes() -> dict[tuple[str, int], str]:
    """(command, code) -> the meaning the table gives it; '—' cells (never) are left out."""
    text = (ROOT / "docs" / "publishing.md").read_text(encoding="utf-8")
    start = text.index("| command | 0 | 1 | 2 |")
    cells: dict[tuple[str, int], str] = {}
    for line in text[start:].splitlines()[2:]:
        if not line.startswith("|"):
            break
        command, *meanings = [c.strip() for c in line.strip("|").split("|")]
        assert len(meanings) == 3, line
        cells |= {(command.strip("`"), code): meaning for code, meaning in enumerate(meanings) if meaning not in ("", "—")}
    return cells


class Case:
    """What a scenario needs: the local stack, a scratch directory, receivers, and the CLI's environment."""

    def __init__(self, stack: Stack, tmp_path: Path, receivers: Callable[..., Receiver]) -> None:
        self.stack, self.tmp, self.receivers = stack, tmp_path, receivers
        self.env = {**os.environ, **stack.function_env("RetryFunction"), "OXOFLOW_NOTIFY_TOPIC_ARN": stack.topic_arn,
                    "OXOFLOW_NOTIFY_BUCKET": stack.bucket}  # fmt: skip

    def file(self, name: str, text: str) -> str:
        path = self.tmp / name
        path.write_text(text, encoding="utf-8")
        return str(path)

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return run(*args, env={**self.env, **env})

    def dead_letter_that_fails_again(self) -> None:
        """A delivery dead-lettered after its retries, whose receiver still answers 503."""
        down = self.receivers(lambda n, r: Answer(503))
        self.stack.overrides["RETRY_SCHEDULE"] = "0"
        self.stack.put_config("wgs", f'[[webhooks]]\nid = "lims"\nurl = "{down.url}"\n')
        self.stack.publish(json.dumps({"event": "RuleFailed", "workflow": "wgs", "rule": "bwa"}))
        self.stack.carry_published()
        self.stack.drain_retries()
        self.env |= self.stack.function_env("RetryFunction")

    def on_failure(self, message: dict[str, object]) -> None:
        record = on_failure_record(envelope_for(self.stack, json.dumps(message)))
        self.stack.sqs.send_message(QueueUrl=self.stack.dead_letter_queue_url, MessageBody=json.dumps(record))

    def log(self, *records: dict[str, str]) -> str:
        return self.file("run.jsonl", "".join(json.dumps({"timestamp": "2026-05-18T12:00:00Z", **r}) + "\n" for r in records))


GOOD_CONFIG = str(EVENTS / "variant-calling.oxoflow")
BAD_CONFIG = '[workflow]\nname = "wf"\n\n[[webhooks]]\nurl = "https://a.example.org/h"\nformt = "slack"\n'
SIGNED = b'{"event":"RuleFailed"}'


def verify(case: Case, signature_of: bytes | None) -> subprocess.CompletedProcess[str]:
    body, secret = case.tmp / "body.json", case.file("secret", "k1")
    body.write_bytes(SIGNED)
    signature = [] if signature_of is None else ["--signature", "sha256=" + hmac.new(b"k1", signature_of, hashlib.sha256).hexdigest()]
    return case.run("verify", "--body", str(body), "--secret-file", secret, *signature)


def replay_fails_again(case: Case) -> subprocess.CompletedProcess[str]:
    case.dead_letter_that_fails_again()
    return case.run("replay", "--workflow", "wgs")


def on_failure_invalid(case: Case) -> subprocess.CompletedProcess[str]:
    case.on_failure({"event": "RuleFaild", "workflow": "wgs", "rule": "bwa"})
    return case.run("replay", "--on-failure")


def on_failure_republished(case: Case) -> subprocess.CompletedProcess[str]:
    case.on_failure({"event": "WorkflowFailed", "workflow": "wgs"})
    return case.run("replay", "--on-failure")


def follow_skips(case: Case) -> subprocess.CompletedProcess[str]:
    log = case.log({"event": "workflow_started"}, {"event": "rule_faild", "rule": "bwa"}, {"event": "workflow_completed"})
    return case.run("follow", log, "--workflow", "wgs", "--from-start", "--until-done", "--poll", "0.05", "--idle-exit", "60")


def follow_ends(case: Case) -> subprocess.CompletedProcess[str]:
    log = case.log({"event": "workflow_started"}, {"event": "workflow_completed"})
    return case.run("follow", log, "--workflow", "wgs", "--from-start", "--until-done", "--poll", "0.05", "--idle-exit", "60")


# One representative run for each cell of the table.
SCENARIOS: dict[tuple[str, int], Run] = {
    ("publish", 0): lambda c: c.run("publish", "--event", "WorkflowStarted", "--workflow", "wgs"),
    ("publish", 1): lambda c: c.run("publish", "--event", "RuleFaild", "--workflow", "wgs", "--rule", "bwa"),
    ("publish", 2): lambda c: c.run("publish", str(c.tmp / "no-such-event.json")),
    ("validate", 0): lambda c: c.run("validate", GOOD_CONFIG),
    ("validate", 1): lambda c: c.run("validate", c.file("wf.oxoflow", BAD_CONFIG)),
    ("validate", 2): lambda c: c.run("validate", GOOD_CONFIG, str(c.tmp / "no-such.oxoflow")),
    ("upload", 0): lambda c: c.run("upload", GOOD_CONFIG),
    ("upload", 1): lambda c: c.run("upload", c.file("wf.oxoflow", BAD_CONFIG)),
    ("upload", 2): lambda c: c.run("upload", str(c.tmp / "no-such.oxoflow")),
    ("verify", 0): lambda c: verify(c, SIGNED),
    ("verify", 1): lambda c: verify(c, SIGNED + b" "),
    ("verify", 2): lambda c: verify(c, None),
    ("replay", 0): lambda c: c.run("replay", "--dry-run"),
    ("replay", 1): replay_fails_again,
    ("replay", 2): lambda c: c.run("replay", "--reason", "permanent_failur"),
    ("replay --on-failure", 0): on_failure_republished,
    ("replay --on-failure", 1): on_failure_invalid,
    ("replay --on-failure", 2): lambda c: c.run("replay", "--on-failure", "--webhook", "lims"),
    ("follow", 0): follow_ends,
    ("follow", 1): follow_skips,
    ("follow", 2): lambda c: c.run("follow", c.log({"event": "workflow_started"}), "--idle-exit", "10s", OXOFLOW_NOTIFY_TOPIC_ARN=""),
}


def test_every_cell_of_the_table_has_a_run_and_every_run_a_cell() -> None:
    assert set(documented_codes()) == set(SCENARIOS)


@pytest.mark.parametrize(("command", "code"), sorted(documented_codes()))
def test_the_command_exits_as_the_table_says(
    stack: Stack, tmp_path: Path, receivers: Callable[..., Receiver], command: str, code: int
) -> None:
    # given the situation the table's cell describes, when the command runs
    done = SCENARIOS[(command, code)](Case(stack, tmp_path, receivers))
    # then it exits with that code, and a failure is explained in words, not a traceback
    assert done.returncode == code, f"{command} -> {done.returncode}, the table says {code}\n{done.stdout}\n{done.stderr}"
    assert "Traceback" not in done.stderr
    if code == 2:
        assert done.stderr.strip() and not re.search(r"^\s+File \"", done.stderr, re.M)

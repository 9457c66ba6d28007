"""The commands a user runs: `make demo`'s script and the Docker-free invoke, as subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import EVENT_KINDS, ROOT


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("AWS_ENDPOINT_URL", "DEAD_LETTER_QUEUE_URL")}
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, input=stdin, capture_output=True, text=True, timeout=180, check=False)


def test_the_demo_runs_the_whole_pipeline_and_passes_its_checks() -> None:
    result = run("scripts/demo.py")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "demo passed" in result.stdout and "FAIL" not in result.stdout
    assert "sha256=" in result.stdout  # shows a signed delivery


@pytest.mark.parametrize("kind", EVENT_KINDS)
def test_invoke_runs_the_dispatcher_on_every_sample_sns_event(kind: str) -> None:
    result = run("scripts/invoke.py", "DispatchFunction", "-e", f"events/sns-{kind}.json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)  # stdout is the result alone; logs went to stderr
    assert report["events"] == 1
    assert "-- retry queue:" in result.stderr and "-- dead-letter queue:" in result.stderr


def test_invoke_runs_the_retry_function_on_the_sample_sqs_event() -> None:
    result = run("scripts/invoke.py", "RetryFunction", "-e", "events/sqs-retry.json")
    assert result.returncode == 0, result.stderr
    assert '"batchItemFailures": []' in result.stdout


def test_invoke_uploads_a_given_config_and_reads_the_event_from_stdin(tmp_path: Path) -> None:
    config = tmp_path / "wf.oxoflow"
    config.write_text('[[webhooks]]\nurl = "ftp://nope"\n', encoding="utf-8")
    event = (ROOT / "events" / "sns-workflow-started.json").read_text(encoding="utf-8").replace('\\"variant-calling\\"', '\\"wf\\"')
    result = run("scripts/invoke.py", "DispatchFunction", "--no-seed", "--config", f"wf={config}", stdin=event)
    assert result.returncode == 0, result.stderr
    assert "must use http or https" in result.stderr  # the dead letter's reason is listed


def test_invoke_explains_an_unknown_function() -> None:
    result = run("scripts/invoke.py", "NoSuchFunction", "-e", "events/sns-rule-failed.json")
    assert result.returncode == 2
    assert "no function 'NoSuchFunction'" in result.stderr and "DispatchFunction" in result.stderr


def test_the_replay_command_shows_then_redelivers_dead_letters(stack: Any, receivers: Any) -> None:
    from oxolocal.receivers import Answer

    up = {"on": False}
    receiver = receivers(lambda n, r: Answer(200) if up["on"] else Answer(503))
    stack.overrides["RETRY_SCHEDULE"] = "0"
    stack.put_config("variant-calling", f'[[webhooks]]\nid = "lims"\nurl = "{receiver.url}"\n')
    stack.publish((ROOT / "events" / "messages" / "rule-failed.json").read_text(encoding="utf-8"))
    stack.carry_published()
    stack.drain_retries()  # two failed attempts: dead-lettered as retries_exhausted
    env = {**os.environ, **stack.function_env("RetryFunction")}

    def replay(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "scripts/replay.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
        )

    dry = replay("--dry-run", "--reason", "retries_exhausted")
    assert dry.returncode == 0, dry.stderr
    assert "would replay" in dry.stdout and "1 would replay" in dry.stdout and len(receiver.requests) == 2
    up["on"] = True
    real = replay("--workflow", "variant-calling")
    assert real.returncode == 0, real.stderr
    assert "1 delivered" in real.stdout and "\r" not in real.stderr  # the summary table; no progress bar into a pipe
    assert [r.answered for r in receiver.requests] == [503, 503, 200]
    assert receiver.requests[-1].header("X-OxoFlow-Attempt") == "3"


def test_the_replay_command_explains_missing_settings() -> None:
    result = run("scripts/replay.py", "--dry-run")
    assert result.returncode == 2 and "DEAD_LETTER_QUEUE_URL" in result.stderr


def test_invoke_names_a_missing_env_vars_file_and_the_documented_one_works() -> None:
    # when the --env-vars file does not exist, then one sentence names it, exit 2
    missing = run("scripts/invoke.py", "RetryFunction", "-e", "events/sqs-retry.json", "--env-vars", "env.json")
    assert missing.returncode == 2 and missing.stdout == ""
    assert missing.stderr.splitlines() == [
        "invoke: --env-vars: no such file: env.json; give a JSON file of environment overrides in `sam local invoke` format, "
        "such as events/env-vars.json"
    ]
    # and the README's own line, with the sample file, runs
    done = run("scripts/invoke.py", "RetryFunction", "-e", "events/sqs-retry.json", "--env-vars", "events/env-vars.json")
    assert done.returncode == 0, done.stderr
    assert '"batchItemFailures": []' in done.stdout


def test_invoke_refuses_a_plain_event_on_stdin_and_says_what_to_give() -> None:
    # given a plain event (what `publish` takes), not the Lambda event SNS would hand the function
    plain = json.dumps({"event": "RuleFailed", "workflow": "wgs", "rule": "bwa"})
    result = run("scripts/invoke.py", "DispatchFunction", stdin=plain)
    # then it is refused in one sentence naming a sample and the right command, exit 1, no traceback
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.splitlines() == [
        "invoke: the event on stdin is not an SNS event (no 'Records'): give a Lambda event such as events/sns-rule-failed.json, "
        "or publish a plain event with `oxoflow-notify publish`"
    ]


def test_invoke_twice_against_one_endpoint_reuses_what_is_there(moto_endpoint: str) -> None:
    # given a moto server named by AWS_ENDPOINT_URL, as a user would start one
    env = {**os.environ, "AWS_ENDPOINT_URL": moto_endpoint}

    def invoke() -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "scripts/invoke.py", "DispatchFunction", "-e", "events/sns-rule-failed.json"],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=180, check=False)  # fmt: skip

    # when invoke runs on it twice, then both runs dispatch the event
    first, second = invoke(), invoke()
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["events"] == 1 and "Traceback" not in second.stderr


def test_make_invoke_of_the_ingest_sample_is_accepted_and_published() -> None:
    # when the README's `make invoke FUNCTION=IngestFunction EVENT=events/url-oxoflow-workflow-completed.json` runs
    result = run("scripts/invoke.py", "IngestFunction", "-e", "events/url-oxoflow-workflow-completed.json")
    # then the sample's signature checks against the local sample secret: 202, published to the topic
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["statusCode"] == 202, answer
    accepted = json.loads(answer["body"])
    assert accepted["event"] == "WorkflowCompleted" and accepted["workflow"] == "variant-calling" and accepted["message_id"]

"""Every command that talks to AWS finds its region as the AWS tools do (--region, AWS_REGION,
AWS_DEFAULT_REGION, the region in the topic ARN or queue URL), run as installed against moto
server; without one, one sentence and exit 2, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from oxolocal.stack import REGION, Stack
from tests.conftest import EVENTS
from tests.e2e.test_cli import run, tapped

ROOT = Path(__file__).resolve().parents[2]
SENTENCE = "no AWS region: pass --region, set AWS_REGION or AWS_DEFAULT_REGION, or give an ARN in your region"


def without_region(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The test process's environment (moto's endpoint and dummy credentials) with no region
    anywhere: neither variable, no profile."""
    env = {k: v for k, v in os.environ.items() if k not in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE")}
    return env | {"AWS_CONFIG_FILE": str(tmp_path / "none"), "HOME": str(tmp_path), **extra}


def test_publish_takes_the_region_from_the_topic_arn(stack: Stack, tmp_path: Path) -> None:
    # given only the topic ARN, as the publishing example states
    env = without_region(tmp_path, OXOFLOW_NOTIFY_TOPIC_ARN=stack.topic_arn)
    # when an event is published, then the topic got it
    done = run("publish", "--event", "WorkflowStarted", "--workflow", "wgs", env=env)
    assert done.returncode == 0, done.stderr
    (envelope,) = tapped(stack)
    assert envelope["MessageId"] == done.stdout.strip()


@pytest.mark.parametrize("given", [{"AWS_REGION": REGION}, {"AWS_DEFAULT_REGION": REGION}, {"--region": REGION}])
def test_upload_reads_the_region_from_the_flag_or_either_variable(stack: Stack, tmp_path: Path, given: dict[str, str]) -> None:
    # given a bucket (whose name holds no region) and the region in one place only
    flags = [a for k, v in given.items() if k.startswith("--") for a in (k, v)]
    env = without_region(tmp_path, OXOFLOW_NOTIFY_BUCKET=stack.bucket, **{k: v for k, v in given.items() if not k.startswith("--")})
    # when a config is uploaded, then it is where the Lambda reads it
    done = run("upload", str(EVENTS / "variant-calling.oxoflow"), *flags, env=env)
    assert done.returncode == 0, done.stderr
    stack.s3.head_object(Bucket=stack.bucket, Key="workflows/variant-calling.oxoflow")


def test_the_operations_replay_recipe_works_with_aws_region_alone(stack: Stack, tmp_path: Path) -> None:
    # given docs/operations.md's recipe: `export AWS_REGION=... CONFIG_BUCKET=... DEAD_LETTER_QUEUE_URL=...`
    letter = {"schema": "oxoflow-notify/dead-letter/v1", "reason_code": "retries_exhausted", "reason": "503",
              "event": {"event": "RuleFailed", "workflow": "wgs", "rule": "bwa"},
              "webhook": {"id": "lims", "source": "workflows/wgs.oxoflow"}, "delivery_id": "d1"}  # fmt: skip
    stack.sqs.send_message(QueueUrl=stack.dead_letter_queue_url, MessageBody=json.dumps(letter))
    env = without_region(tmp_path, AWS_REGION=REGION, **stack.function_env("RetryFunction"))
    env.pop("AWS_DEFAULT_REGION", None)
    # when `.venv/bin/python scripts/replay.py --dry-run` runs, then it shows the letter it would replay
    done = subprocess.run(
        [sys.executable, "scripts/replay.py", "--dry-run"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "1 would replay" in done.stdout and "RuleFailed of wgs (retries_exhausted)" in done.stdout


@pytest.mark.parametrize(
    "argv",
    [
        ["publish", "--event", "WorkflowStarted", "--workflow", "wgs", "--topic-arn", "my-topic"],
        ["upload", str(EVENTS / "variant-calling.oxoflow"), "--bucket", "my-bucket"],
        ["replay", "--dry-run"],
        ["replay", "--on-failure", "--dry-run"],
        ["follow", str(EVENTS / "variant-calling.oxoflow"), "--topic-arn", "my-topic", "--idle-exit", "1"],
    ],
)
def test_no_region_anywhere_is_one_sentence_and_exit_2(stack: Stack, tmp_path: Path, argv: list[str]) -> None:
    # given settings whose names hold no region (the local queue URL neither), and no region set
    env = without_region(tmp_path, **stack.function_env("RetryFunction"))
    # when the command runs, then it names every way to give one, once, and sends nothing
    done = run(*argv, env=env)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.strip().splitlines()[-1].endswith(f": {SENTENCE}") and done.stderr.count(SENTENCE) == 1
    assert "Traceback" not in done.stderr
    assert tapped(stack) == []


def test_scripts_replay_is_the_same_command(tmp_path: Path) -> None:
    # given no region and no settings but the queue, when the documented script runs, then it answers as the command does
    env = without_region(tmp_path, DEAD_LETTER_QUEUE_URL="http://127.0.0.1:9/123456789012/dlq")
    script = subprocess.run(
        [sys.executable, "scripts/replay.py", "--dry-run"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    command = run("replay", "--dry-run", env=env)
    assert (script.returncode, script.stderr) == (command.returncode, command.stderr) == (2, f"replay: {SENTENCE}\n")

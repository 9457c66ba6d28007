"""Every publishing example in scripts/examples/ (and docs/publishing.md) publishes a valid event to moto."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from oxoflow_notify.tools.cli import checked_event, schema_problems
from oxolocal.stack import Stack
from tests.conftest import EVENTS, require_tool

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "scripts" / "examples"
AWS = ROOT / ".venv-awscli" / "bin" / "aws"
COMMANDS = {
    "publish-awscli.sh": ["sh", "publish-awscli.sh"],
    "publish-curl.sh": ["bash", "publish-curl.sh"],
    "publish.py": [sys.executable, "publish.py"],
    "publish.mjs": ["node", "publish.mjs"],
    "publish-cli.sh": ["sh", "publish-cli.sh"],
}
EXPECTED = {"event": "RuleFailed", "workflow": "example-wf", "rule": "align_reads", "details": {"exit_code": 1}}


@pytest.mark.parametrize("example", sorted(COMMANDS))
def test_the_example_publishes_the_event_with_its_attributes(stack: Stack, example: str) -> None:
    # given the example as a user runs it: topic and credentials from the environment
    if example == "publish.mjs":
        require_tool("node")  # fails under CI=true, skips elsewhere
        assert (EXAMPLES / "node_modules" / "@aws-sdk" / "client-sns").is_dir(), "run `make test` (it runs npm ci in scripts/examples)"
    if example == "publish-awscli.sh":
        assert AWS.exists(), "run `make test` (it installs the AWS CLI into .venv-awscli)"
    path = os.pathsep.join([str(AWS.parent), str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    env = {**os.environ, "PATH": path, "OXOFLOW_NOTIFY_TOPIC_ARN": stack.topic_arn, "WORKFLOW": "example-wf"}
    # when it runs
    done = subprocess.run(COMMANDS[example], cwd=EXAMPLES, env=env, capture_output=True, text=True, timeout=120)
    # then it printed the message id of what the topic received: the event, valid, with both attributes
    assert done.returncode == 0, done.stderr
    (envelope,) = [json.loads(m["Body"]) for m in stack.receive(stack.tap_url)]
    assert envelope["MessageId"] == done.stdout.strip()
    message = json.loads(envelope["Message"])
    assert message == EXPECTED and checked_event(message) == EXPECTED
    assert {k: v["Value"] for k, v in envelope["MessageAttributes"].items()} == {"event": "RuleFailed", "workflow": "example-wf"}


def test_every_example_is_shown_in_docs_publishing_md() -> None:
    doc = (ROOT / "docs" / "publishing.md").read_text(encoding="utf-8")
    for example in COMMANDS:
        assert (EXAMPLES / example).read_text(encoding="utf-8").strip() in doc, f"docs/publishing.md shows an outdated {example}"


def test_every_sample_event_satisfies_the_schema() -> None:
    for path in sorted((EVENTS / "messages").glob("*.json")):
        assert schema_problems(json.loads(path.read_text(encoding="utf-8"))) == [], path
    for path in sorted(EVENTS.glob("sns-*.json")):
        message = json.loads(json.loads(path.read_text(encoding="utf-8"))["Records"][0]["Sns"]["Message"])
        assert schema_problems(message) == [] and checked_event(message), path

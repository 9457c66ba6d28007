"""Every publishing example in scripts/examples/ (and docs/publishing.md) publishes a valid event to moto."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from oxoflow_notify.tools.cli import checked_event, schema_problems
from oxolocal.stack import REGION, Stack
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
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


def needs(example: str) -> set[str]:
    """The environment variables an example's "Needs:" sentence names ("AWS credentials": a key id
    and secret); what it says in parentheses is optional or an explanation."""
    text = (EXAMPLES / example).read_text(encoding="utf-8")
    prose = " ".join(line.strip().lstrip("#/").strip() for line in text.splitlines())
    match = re.search(r"Needs: (.*?)\.(\s|$)", prose)
    assert match, f"{example} says nothing about what it needs"
    sentence = re.sub(r"\([^)]*\)", "", match.group(1))
    names = set(re.findall(r"\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b", sentence))
    return names | (set(CREDENTIALS) if "AWS credentials" in sentence else set())


def stated_environment(stack: Stack, tmp_path: Path, names: set[str]) -> dict[str, str]:
    """Exactly ``names`` (their values from the local stack), plus what only the harness needs: the
    tools on PATH, AWS_ENDPOINT_URL for moto and an empty home, so no profile supplies a region."""
    values = {"OXOFLOW_NOTIFY_TOPIC_ARN": stack.topic_arn, "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION, **CREDENTIALS}
    assert names <= set(values), f"an example needs {sorted(names - set(values))}, which the test does not know"
    path = os.pathsep.join([str(AWS.parent), str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    harness = {"PATH": path, "HOME": str(tmp_path), "AWS_CONFIG_FILE": str(tmp_path / "none"),
               "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"), "AWS_EC2_METADATA_DISABLED": "true",
               "AWS_ENDPOINT_URL": os.environ["AWS_ENDPOINT_URL"], "WORKFLOW": "example-wf"}  # fmt: skip
    return harness | {name: values[name] for name in names}


def runnable(example: str) -> None:
    if example == "publish.mjs":
        require_tool("node")  # fails under CI=true, skips elsewhere
        assert (EXAMPLES / "node_modules" / "@aws-sdk" / "client-sns").is_dir(), "run `make test` (it runs npm ci in scripts/examples)"
    if example == "publish-awscli.sh":
        assert AWS.exists(), "run `make test` (it installs the AWS CLI into .venv-awscli)"


@pytest.mark.parametrize("example", sorted(COMMANDS))
def test_the_example_publishes_the_event_with_its_attributes(stack: Stack, tmp_path: Path, example: str) -> None:
    # given the example as a user runs it, with exactly the environment its "Needs:" comment names
    runnable(example)
    env = stated_environment(stack, tmp_path, needs(example))
    # when it runs
    done = subprocess.run(COMMANDS[example], cwd=EXAMPLES, env=env, capture_output=True, text=True, timeout=120)
    # then it printed the message id of what the topic received: the event, valid, with both attributes
    assert done.returncode == 0, done.stderr
    (envelope,) = [json.loads(m["Body"]) for m in stack.receive(stack.tap_url)]
    assert envelope["MessageId"] == done.stdout.strip()
    message = json.loads(envelope["Message"])
    assert message == EXPECTED and checked_event(message) == EXPECTED
    assert {k: v["Value"] for k, v in envelope["MessageAttributes"].items()} == {"event": "RuleFailed", "workflow": "example-wf"}


@pytest.mark.parametrize(("example", "name"), [(e, n) for e in sorted(COMMANDS) for n in sorted(needs(e) - set(CREDENTIALS))])
def test_each_variable_an_example_says_it_needs_is_needed(stack: Stack, tmp_path: Path, example: str, name: str) -> None:
    # given the example's stated environment without one of the variables it names
    runnable(example)
    env = stated_environment(stack, tmp_path, needs(example) - {name})
    # when it runs, then it fails and publishes nothing: the claim is not padding
    done = subprocess.run(COMMANDS[example], cwd=EXAMPLES, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0, done.stdout
    assert stack.receive(stack.tap_url) == []


def test_the_examples_state_the_region_each_client_reads() -> None:
    # the AWS CLI v1 and boto3 read AWS_DEFAULT_REGION, the JavaScript SDK AWS_REGION; curl and the
    # oxoflow-notify command take it from the topic ARN
    assert {e: needs(e) & {"AWS_REGION", "AWS_DEFAULT_REGION"} for e in COMMANDS} == {
        "publish-awscli.sh": {"AWS_DEFAULT_REGION"},
        "publish.py": {"AWS_DEFAULT_REGION"},
        "publish.mjs": {"AWS_REGION"},
        "publish-curl.sh": set(),
        "publish-cli.sh": set(),
    }


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

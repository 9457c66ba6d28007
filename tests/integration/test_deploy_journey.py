"""The README's deploy path, as far as it runs without AWS: `sam deploy --guided` with every default
answered gets past every question (the SAM CLI stops only where it would reach AWS, a closed
loopback port here); `oxoflow-notify env` against a CloudFormation stack in moto prints the exports
the other commands then use, every failure one sentence and exit 2; the teardown line deletes a
versioned bucket with all its versions and delete markers."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from oxoflow_notify.tools import cli, stackenv
from oxolocal import template as tpl
from tests.conftest import ROOT, in_ci

REGION = "eu-west-2"
STACK = "oxoflow-notify"
# template.yaml's own parameters (with their defaults) for the ones env exports, so the stack's
# Parameters are what a real deploy records
PARAMETERS = {name: spec for name, spec in tpl.load()["Parameters"].items() if name in stackenv.PARAMETER_ENV}


def stack_body(outputs: dict[str, Any]) -> str:
    """A small template with the real stack's resources that commands reach, and these outputs."""
    resources = {
        "NotifyTopic": {"Type": "AWS::SNS::Topic"},
        "ConfigBucket": {"Type": "AWS::S3::Bucket"},
        "RetryQueue": {"Type": "AWS::SQS::Queue"},
        "DeadLetterQueue": {"Type": "AWS::SQS::Queue"},
        "DeliveryLedger": {
            "Type": "AWS::DynamoDB::Table",
            "Properties": {
                "BillingMode": "PAY_PER_REQUEST",
                "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}],
                "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
            },
        },
    }
    return json.dumps({"Parameters": PARAMETERS, "Resources": resources, "Outputs": {k: {"Value": v} for k, v in outputs.items()}})


OUTPUTS = {
    "TopicArn": {"Ref": "NotifyTopic"},
    "ConfigBucketName": {"Ref": "ConfigBucket"},
    "RetryQueueUrl": {"Ref": "RetryQueue"},
    "DeadLetterQueueUrl": {"Ref": "DeadLetterQueue"},
    "DeliveryLedgerName": {"Ref": "DeliveryLedger"},
    "DashboardUrl": "https://console.example/dashboard",
}


@pytest.fixture
def aws(restore_environ: None) -> Iterator[Any]:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_PROFILE"):
        os.environ.pop(name, None)
    os.environ.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"})
    with mock_aws():
        yield boto3.client("cloudformation", region_name=REGION)


def exports_of(text: str) -> dict[str, str]:
    """What a POSIX shell holds after `eval "$(oxoflow-notify env)"` (run by sh itself, no AWS involved)."""
    names = [line.split("=", 1)[0].removeprefix("export ") for line in text.splitlines()]
    script = 'eval "$1"; shift; for n in "$@"; do eval "printf \'%s\\0\' \\"\\${$n}\\""; done'
    done = subprocess.run(["sh", "-c", script, "sh", text, *names], capture_output=True, text=True, check=True, env={})
    return dict(zip(names, done.stdout.split("\0")[:-1], strict=True))


def test_env_prints_the_stack_as_exports_the_other_commands_then_use(aws: Any, capsys: pytest.CaptureFixture[str]) -> None:
    # given a deployed stack (defaults: no public ingest URL)
    aws.create_stack(
        StackName=STACK, TemplateBody=stack_body(OUTPUTS), Parameters=[{"ParameterKey": "RequireHttps", "ParameterValue": "false"}]
    )
    # when the operator runs env with the region as their only setting
    os.environ["AWS_DEFAULT_REGION"] = REGION
    assert cli.main(["env"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    env = exports_of(captured.out)
    # then every output a command reads, the region and the functions' settings are exported
    outputs = {o["OutputKey"]: o["OutputValue"] for o in aws.describe_stacks(StackName=STACK)["Stacks"][0]["Outputs"]}
    assert env["OXOFLOW_NOTIFY_TOPIC_ARN"] == outputs["TopicArn"] and env["OXOFLOW_NOTIFY_BUCKET"] == outputs["ConfigBucketName"]
    assert env["CONFIG_BUCKET"] == outputs["ConfigBucketName"]
    assert env["DEAD_LETTER_QUEUE_URL"] == outputs["DeadLetterQueueUrl"] and env["RETRY_QUEUE_URL"] == outputs["RetryQueueUrl"]
    assert env["LEDGER_TABLE"] == outputs["DeliveryLedgerName"]
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == REGION
    assert env["REQUIRE_HTTPS"] == "false" and env["CONFIG_PREFIX"] == "workflows/" and env["SECRETS_PREFIX"] == "oxoflow-notify/"
    assert "OXOFLOW_NOTIFY_INGEST_URL" not in env  # the default stack has no public ingest URL
    assert outputs["DashboardUrl"] not in captured.out

    # and with only those exports, publish reaches the stack's topic
    sqs = boto3.client("sqs", region_name=REGION)
    queue = sqs.create_queue(QueueName="listener")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    boto3.client("sns", region_name=REGION).subscribe(TopicArn=outputs["TopicArn"], Protocol="sqs", Endpoint=queue_arn)
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        os.environ.pop(name, None)
    os.environ.update(env)
    assert cli.main(["publish", "--event", "WorkflowStarted", "--workflow", "variant-calling"]) == 0
    (message,) = sqs.receive_message(QueueUrl=queue)["Messages"]
    assert json.loads(json.loads(message["Body"])["Message"])["workflow"] == "variant-calling"


def test_env_exports_the_ingest_url_when_the_stack_has_one(aws: Any, capsys: pytest.CaptureFixture[str]) -> None:
    url = "https://abcdefghij.lambda-url.eu-west-2.on.aws/"
    aws.create_stack(StackName="notify-prod", TemplateBody=stack_body({**OUTPUTS, "IngestUrl": url}))
    assert cli.main(["env", "--stack-name", "notify-prod", "--region", REGION]) == 0
    assert exports_of(capsys.readouterr().out)["OXOFLOW_NOTIFY_INGEST_URL"] == url


def test_a_missing_stack_is_one_sentence_naming_it_and_its_region(aws: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["env", "--stack-name", "not-deployed", "--region", REGION]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.strip() == (
        f"env: no stack named 'not-deployed' in {REGION}: pass the name you deployed with (--stack-name) and its region (--region)"
    )


def test_a_stack_that_is_not_oxoflow_notify_is_refused(aws: Any, capsys: pytest.CaptureFixture[str]) -> None:
    aws.create_stack(StackName="other", TemplateBody=json.dumps({"Resources": {"T": {"Type": "AWS::SNS::Topic"}}}))
    assert cli.main(["env", "--stack-name", "other", "--region", REGION]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "has no TopicArn output" in captured.err and "Traceback" not in captured.err


def test_no_region_names_every_way_to_give_one(restore_environ: None, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        os.environ.pop(name, None)
    assert cli.main(["env"]) == 2
    err = capsys.readouterr().err
    assert "--region" in err and "AWS_REGION" in err and "AWS_DEFAULT_REGION" in err and len(err.strip().splitlines()) == 1


def test_no_credentials_is_one_sentence(
    restore_environ: None, tmp_path: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # no credentials anywhere (not even a default session an earlier test left with its own), and
    # nothing that could reach a network: the request fails at signing
    import boto3

    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    for name in list(os.environ):
        if name.startswith("AWS_"):
            del os.environ[name]
    os.environ.update({"AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
                       "AWS_EC2_METADATA_DISABLED": "true", "AWS_ENDPOINT_URL": "http://127.0.0.1:9"})  # fmt: skip
    assert cli.main(["env", "--region", REGION]) == 2
    err = capsys.readouterr().err
    assert err.startswith("env: no AWS credentials found") and len(err.strip().splitlines()) == 1


# -- sam deploy --guided, every question answered with Enter ------------------------------------


def test_guided_deploy_with_every_default_asks_nothing_that_ends_it(tmp_path: Path) -> None:
    sam = ROOT / ".venv-sam" / "bin" / "sam"
    if not sam.exists():
        if in_ci():
            pytest.fail("no .venv-sam (make sam-check creates it), and CI=true needs it", pytrace=False)
        pytest.skip("no .venv-sam: make sam-check creates it (under CI=true this test fails instead)")
    # given a checkout's template and samconfig.toml, and an "AWS" that is a closed loopback port
    for name in ("template.yaml", "samconfig.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "SAM_CLI_TELEMETRY": "0", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "eu-west-1", "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
           "AWS_EC2_METADATA_DISABLED": "true"}  # fmt: skip
    # when the operator presses Enter at every question
    done = subprocess.run([str(sam), "deploy", "--guided"], input="\n" * 80, capture_output=True, text=True, cwd=tmp_path, env=env,
                          timeout=180, check=False)  # fmt: skip
    out = done.stdout + done.stderr
    # then every question had a default, none was about an unauthenticated URL, and SAM went on to
    # look for its artifacts bucket: the first step that needs AWS, which is where this one stops
    assert "Stack Name [oxoflow-notify]" in out and "Parameter PublicIngestUrl [Disabled]" in out
    assert "has no authentication" not in out and "Security Constraints Not Satisfied" not in out
    assert "Confirm changes before deploy [y/N]" in out  # no change-set question whose default is "no"
    assert "Looking for resources needed for deployment" in out and "127.0.0.1:9" in out, out[-2000:]


# -- teardown: the README's line deletes the retained, versioned bucket -------------------------


def readme_teardown_line() -> list[str]:
    section = (ROOT / "README.md").read_text(encoding="utf-8").split("## Deploying with SAM", 1)[1].split("\n## ", 1)[0]
    (line,) = [line for line in section.splitlines() if re.match(r"python3 -c ", line)]
    return shlex.split(line)


def test_the_readme_teardown_deletes_every_version_and_delete_marker_and_the_bucket(aws: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # given the config bucket as a deployed stack leaves it: versioned, a key with two versions, a deleted key
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="oxoflow-notify-configbucket")
    s3.put_bucket_versioning(Bucket="oxoflow-notify-configbucket", VersioningConfiguration={"Status": "Enabled"})
    for body in (b"one", b"two"):
        s3.put_object(Bucket="oxoflow-notify-configbucket", Key="workflows/wf.oxoflow", Body=body)
    s3.put_object(Bucket="oxoflow-notify-configbucket", Key="workflows/old.oxoflow", Body=b"x")
    s3.delete_object(Bucket="oxoflow-notify-configbucket", Key="workflows/old.oxoflow")
    # when the README's line runs, with the bucket name env exported
    python, flag, code, bucket = readme_teardown_line()
    assert (python, flag, bucket) == ("python3", "-c", "$OXOFLOW_NOTIFY_BUCKET")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setattr(sys, "argv", ["-c", "oxoflow-notify-configbucket"])
    exec(compile(code, "README.md", "exec"), {})  # noqa: S102 - the documented command itself
    # then the bucket is gone
    assert "oxoflow-notify-configbucket" not in [b["Name"] for b in s3.list_buckets()["Buckets"]]

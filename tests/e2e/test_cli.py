"""The oxoflow-notify command, run as installed (the console script), against moto server."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from oxolocal.receivers import Receiver, ok
from oxolocal.stack import Stack, sns_event
from tests.conftest import EVENTS

ROOT = Path(__file__).resolve().parents[2]
COMMAND = shutil.which("oxoflow-notify", path=str(Path(sys.executable).parent)) or "oxoflow-notify"


def run(*args: str, stdin: str | None = None, env: dict[str, str] | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([COMMAND, *args], input=stdin, capture_output=True, text=True, env=env or dict(os.environ), cwd=cwd, timeout=120)


def tapped(stack: Stack) -> list[dict[str, Any]]:
    return [json.loads(m["Body"]) for m in stack.receive(stack.tap_url)]


@pytest.fixture
def env(stack: Stack) -> dict[str, str]:
    return {**os.environ, "OXOFLOW_NOTIFY_TOPIC_ARN": stack.topic_arn, "OXOFLOW_NOTIFY_BUCKET": stack.bucket}


def test_publish_from_flags_validates_sets_attributes_and_prints_the_message_id(stack: Stack, env: dict[str, str]) -> None:
    # when a rule failure is published from flags
    done = run(
        "publish",
        "--event",
        "rule_failed",
        "--workflow",
        "variant-calling",
        "--rule",
        "bwa_mem",
        "--details",
        '{"exit_code": 137}',
        env=env,
    )
    # then the message id is printed and the topic got exactly that event, with filterable attributes
    assert done.returncode == 0, done.stderr
    (envelope,) = tapped(stack)
    assert envelope["MessageId"] == done.stdout.strip()
    assert json.loads(envelope["Message"]) == {
        "event": "rule_failed",
        "workflow": "variant-calling",
        "rule": "bwa_mem",
        "details": {"exit_code": 137},
    }
    attributes = envelope["MessageAttributes"]
    assert attributes["event"]["Value"] == "RuleFailed" and attributes["workflow"]["Value"] == "variant-calling"


def test_publish_from_stdin_and_from_a_file(stack: Stack, env: dict[str, str]) -> None:
    sample = (EVENTS / "messages" / "workflow-completed.json").read_text(encoding="utf-8")
    assert run("publish", "-", stdin=sample, env=env).returncode == 0
    assert run("publish", str(EVENTS / "messages" / "rule-started.json"), env=env).returncode == 0
    first, second = tapped(stack)
    assert json.loads(first["Message"]) == json.loads(sample)
    assert json.loads(second["Message"])["event"] == "RuleStarted"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (
            ["--event", "RuleFaild", "--workflow", "wf", "--rule", "r"],
            "field 'event': unknown event 'RuleFaild' (did you mean 'RuleFailed'?)",
        ),
        (["--event", "rule_faild", "--workflow", "wf", "--rule", "r"], "did you mean 'rule_failed'?"),
        (["--event", "RuleFailed", "--workflow", "wf"], "field 'rule' is required"),
        (["--event", "WorkflowStarted", "--workflow", "my workflow"], "field 'workflow' must start with a letter or digit"),
        (["--event", "WorkflowStarted", "--workflow", "wf", "--details", "{not json"], "--details: not valid JSON"),
    ],
)
def test_publish_refuses_an_invalid_event_naming_the_field_and_publishes_nothing(
    stack: Stack, env: dict[str, str], args: list[str], says: str
) -> None:
    done = run("publish", *args, env=env)
    assert done.returncode == 1
    assert says in done.stderr, done.stderr
    assert tapped(stack) == []


def test_publish_without_a_topic_or_credentials_says_what_to_set(stack: Stack, env: dict[str, str], tmp_path: Path) -> None:
    no_topic = {k: v for k, v in env.items() if k != "OXOFLOW_NOTIFY_TOPIC_ARN"}
    done = run("publish", "--event", "WorkflowStarted", "--workflow", "wf", env=no_topic)
    assert done.returncode == 2 and "set OXOFLOW_NOTIFY_TOPIC_ARN" in done.stderr
    no_credentials = {k: v for k, v in env.items() if not k.startswith("AWS_") or k in ("AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION")}
    no_credentials |= {"AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"), "AWS_CONFIG_FILE": str(tmp_path / "none"),
                       "AWS_EC2_METADATA_DISABLED": "true"}  # fmt: skip
    done = run("publish", "--event", "WorkflowStarted", "--workflow", "wf", env=no_credentials)
    assert done.returncode == 2 and "no AWS credentials found" in done.stderr and "Traceback" not in done.stderr
    missing = run("publish", "--event", "WorkflowStarted", "--workflow", "wf", "--topic-arn", stack.topic_arn + "-gone", env=env)
    assert missing.returncode == 2 and "NotFound" in missing.stderr


def test_validate_reports_file_line_and_did_you_mean_with_exit_codes(tmp_path: Path) -> None:
    good = EVENTS / "variant-calling.oxoflow"
    bad = tmp_path / "bad.oxoflow"
    bad.write_text('[workflow]\nname = "wf"\n\n[[webhooks]]\nurl = "https://a.example.org/h"\nformt = "slack"\n', encoding="utf-8")
    broken = tmp_path / "broken.oxoflow"
    broken.write_text('[[webhooks]]\nurl = "https://a.example.org\n', encoding="utf-8")
    ok = run("validate", str(good))
    assert ok.returncode == 0 and f"{good}: ok" in ok.stdout
    done = run("validate", str(good), str(bad), str(broken))
    assert done.returncode == 1
    assert f"{bad}: [[webhooks]] #1 (line 6): unknown key 'formt' (did you mean 'format'?)" in done.stderr  # the key's line
    assert f"{broken}: TOML syntax error at line 2" in done.stderr
    report = json.loads(run("validate", "--json", str(good), str(bad)).stdout)
    assert [r["ok"] for r in report] == [True, False]
    assert report[1]["problems"][0]["line"] == 6 and report[0]["workflow"] == "variant-calling"


HOSTILE_CONFIGS = {
    "header": '[[webhooks]]\nurl = "https://a.example.org/h"\nheaders = { "X-A\\n" = "v", "X-B" = "€" }\n',
    "host": '[workflow]\nname = "wf"\n\n[[webhooks]]\nurl = "https://hooks..example.org/h"\n',
    "depth": "[config]\nx = " + "[" * 500 + "]" * 500 + "\n",
    "oversize": "# " + "x" * 2_000_000 + "\n",
    "events": '[[webhooks]]\nurl = "https://a.example.org/h"\nevents = [' + ", ".join(['"RuleFaild"'] * 75_000) + "]\n",
    "webhooks": '[[webhooks]]\nurl = "https://a.example.org/h"\n' * 101,
}


@pytest.mark.parametrize("kind", HOSTILE_CONFIGS)
def test_validate_reports_hostile_files_exactly_as_the_lambda_would_without_a_traceback(tmp_path: Path, kind: str) -> None:
    from oxoflow_notify.config.parse import parse_config
    from oxoflow_notify.errors import ConfigError

    # given a hostile file, and what the Lambda's parser says of it
    path = tmp_path / f"{kind}.oxoflow"
    path.write_text(HOSTILE_CONFIGS[kind], encoding="utf-8")
    try:
        lambda_says = [p.message for p in parse_config(path.read_bytes(), str(path)).problems]
    except ConfigError as exc:
        lambda_says = [str(exc)]
    # when it is validated with the installed command
    done = run("validate", str(path))
    # then it exits 1 and prints exactly those problems, with file and (where known) line, and no traceback
    assert done.returncode == 1, done.stderr
    assert done.stderr.splitlines() == lambda_says and lambda_says
    assert all(line.startswith(f"{path}: ") for line in lambda_says)
    assert "Traceback" not in done.stderr and len(done.stderr) < 2000
    report = json.loads(run("validate", "--json", str(path)).stdout)
    assert [p["message"] for p in report[0]["problems"]] == lambda_says
    if kind in ("header", "host", "depth", "events", "webhooks"):
        assert all(p["line"] for p in report[0]["problems"]), report


def test_upload_puts_a_valid_file_at_the_key_the_lambda_reads_and_refuses_an_invalid_one(
    stack: Stack, env: dict[str, str], tmp_path: Path
) -> None:
    good = EVENTS / "variant-calling.oxoflow"
    done = run("upload", str(good), env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"s3://{stack.bucket}/workflows/variant-calling.oxoflow"
    stored = stack.s3.get_object(Bucket=stack.bucket, Key="workflows/variant-calling.oxoflow")["Body"].read()
    assert stored == good.read_bytes()
    assert run("upload", str(good), "--workflow", "other-wf", env=env).returncode == 0
    stack.s3.head_object(Bucket=stack.bucket, Key="workflows/other-wf.oxoflow")
    bad = tmp_path / "bad.oxoflow"
    bad.write_text('[workflow]\nname = "bad-wf"\n[[webhooks]]\nurl = "ftp://x"\n', encoding="utf-8")
    refused = run("upload", str(bad), env=env)
    assert refused.returncode == 1 and "must use http or https" in refused.stderr and "nothing uploaded" in refused.stderr
    assert "Contents" not in stack.s3.list_objects_v2(Bucket=stack.bucket, Prefix="workflows/bad-wf")


def test_verify_checks_each_signature_scheme(tmp_path: Path) -> None:
    body, secret = tmp_path / "body.json", tmp_path / "secret"
    body.write_bytes(b'{"event":"RuleFailed"}')
    secret.write_text("k1\n", encoding="utf-8")
    digest = hmac.new(b"k1", body.read_bytes(), hashlib.sha256).hexdigest()
    hub = run("verify", "--body", str(body), "--secret-file", str(secret), "--signature", f"sha256={digest}")
    assert hub.returncode == 0 and "valid X-Hub-Signature-256" in hub.stdout
    oxo = run("verify", "--body", str(body), "--secret-file", str(secret), "--header", f"X-OxoFlow-Signature: hmac-sha256={digest}")
    assert oxo.returncode == 0 and "valid X-OxoFlow-Signature" in oxo.stdout
    wrong = run("verify", "--secret-file", str(secret), "--signature", f"sha256={digest}", stdin='{"event":"RuleFailed" }')
    assert wrong.returncode == 1 and "did not sign these" in wrong.stderr
    assert run("verify", "--body", str(body), "--secret-file", str(secret)).returncode == 2


def test_invoke_runs_from_any_directory_by_importing_the_local_toolkit(stack: Stack, env: dict[str, str], tmp_path: Path) -> None:
    # given the installed command, run from a directory that is not the checkout
    # when it invokes the dispatch function with a sample event
    done = run("invoke", "DispatchFunction", "-e", str(EVENTS / "sns-rule-failed.json"), env=env, cwd=tmp_path)
    # then the function ran (the command found its checkout's template.yaml and toolkit), and usage errors keep their codes
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["events"] == 1
    wrong = run("invoke", "NoSuchFunction", "-e", str(EVENTS / "sns-rule-failed.json"), env=env, cwd=tmp_path)
    assert wrong.returncode == 2 and "no function 'NoSuchFunction'" in wrong.stderr and "Traceback" not in wrong.stderr
    assert run("invoke", "--bogus-option", cwd=tmp_path).returncode == 2


def test_invoke_and_replay_run_from_the_checkout(stack: Stack, env: dict[str, str]) -> None:
    done = run("invoke", "DispatchFunction", "-e", str(EVENTS / "sns-rule-failed.json"), env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["events"] == 1
    replay_env = {**env, **stack.function_env("DispatchFunction")}
    dry = run("replay", "--dry-run", env=replay_env)
    assert dry.returncode == 0, dry.stderr
    assert "nothing matched" in dry.stdout or "would replay" in dry.stdout


def on_failure_record(envelope: dict[str, Any]) -> dict[str, Any]:
    """What Lambda's on-failure destination puts in the dead-letter queue when the dispatcher
    failed on an SNS event every time: the event itself, wrapped."""
    return {
        "version": "1.0",
        "timestamp": "2026-05-18T12:03:00.000Z",
        "requestContext": {
            "requestId": str(uuid.uuid4()),
            "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:oxoflow-notify-DispatchFunction:$LATEST",
            "condition": "RetriesExhausted",
            "approximateInvokeCount": 3,
        },
        "requestPayload": sns_event(envelope),
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": {"errorType": "ClientError", "errorMessage": "An error occurred (ServiceUnavailable) when calling SendMessage"},
    }


def envelope_for(stack: Stack, message: str) -> dict[str, Any]:
    """An SNS notification as the topic would have sent it (never published: the on-failure record holds it)."""
    return {"Type": "Notification", "MessageId": str(uuid.uuid4()), "TopicArn": stack.topic_arn, "Message": message,
            "Timestamp": "2026-05-18T12:00:00.250Z"}  # fmt: skip


def test_replay_on_failure_republishes_with_the_original_event_id_so_nothing_is_posted_twice(
    stack: Stack, env: dict[str, str], receivers: Callable[..., Receiver]
) -> None:
    # given a receiver that already got an event's delivery (the dispatcher posted it, then its invocation failed)
    lims = receivers(ok(), "lims")
    stack.put_config("variant-calling", f'[workflow]\nname = "variant-calling"\n\n[[webhooks]]\nid = "lims"\nurl = "{lims.url}"\n')
    published = {"event": "RuleFailed", "workflow": "variant-calling", "rule": "bwa_mem", "details": {"exit_code": 137}}
    stack.publish(published)
    (tap_message,) = stack.receive(stack.tap_url)
    stack.sqs.delete_message(QueueUrl=stack.tap_url, ReceiptHandle=tap_message["ReceiptHandle"])
    envelope = json.loads(tap_message["Body"])
    assert stack.invoke("DispatchFunction", sns_event(envelope))["delivered"] == 1
    (first,) = lims.requests
    delivery_id = first.header("X-OxoFlow-Delivery")
    # and Lambda's on-failure record for that SNS message in the dead-letter queue
    stack.sqs.send_message(QueueUrl=stack.dead_letter_queue_url, MessageBody=json.dumps(on_failure_record(envelope)))
    replay_env = {**env, "DEAD_LETTER_QUEUE_URL": stack.dead_letter_queue_url}
    # when a dry run looks first
    dry = run("replay", "--on-failure", "--dry-run", env=replay_env)
    # then it names the event and its id, and publishes and deletes nothing
    assert dry.returncode == 0, dry.stderr
    assert "1 would republish" in dry.stdout and envelope["MessageId"] in dry.stdout and "RuleFailed of variant-calling" in dry.stdout
    assert tapped(stack) == [] and stack.depth(stack.dead_letter_queue_url)["visible"] == 1
    # when `replay --on-failure` runs
    done = run("replay", "--on-failure", env=replay_env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 republished" in done.stdout and "\r" not in done.stderr  # no progress bar into a pipe
    # then the topic got the message as published, plus the event id and timestamp SNS gave it the first time
    (again,) = stack.sqs.receive_message(QueueUrl=stack.tap_url, VisibilityTimeout=0)["Messages"]
    republished = json.loads(again["Body"])
    assert republished["MessageId"] != envelope["MessageId"]
    first_timestamp = json.loads(first.body)["timestamp"]
    assert json.loads(republished["Message"]) == {**published, "id": envelope["MessageId"], "timestamp": first_timestamp}
    assert republished["MessageAttributes"]["event"]["Value"] == "RuleFailed"
    # when the republished message is carried to the dispatcher
    (report,) = stack.carry_published()
    # then the receiver saw no second POST and no new delivery id: the delivery ledger stopped it
    assert report["delivered"] == 0 and report["already_delivered"] == 1
    assert [r.header("X-OxoFlow-Delivery") for r in lims.requests] == [delivery_id]
    # and the dead-letter queue is empty
    assert stack.drain(stack.dead_letter_queue_url) == []


def test_replay_on_failure_keeps_an_explicit_id_and_leaves_an_invalid_event_and_other_letters(
    stack: Stack, env: dict[str, str], receivers: Callable[..., Receiver]
) -> None:
    # given on-failure records for an event with its own id and for an invalid event, and a dead letter of a delivery
    lims = receivers(ok(), "lims")
    stack.put_config("variant-calling", f'[[webhooks]]\nid = "lims"\nurl = "{lims.url}"\n')
    own_id = envelope_for(stack, json.dumps({"event": "workflow_failed", "workflow": "variant-calling", "id": "run-42-failed"}))
    invalid = envelope_for(stack, json.dumps({"event": "RuleFaild", "workflow": "variant-calling", "rule": "bwa"}))
    letter = {"schema": "oxoflow-notify/dead-letter/v1", "reason_code": "permanent_failure", "reason": "404"}
    invalid_record = on_failure_record(invalid)
    for body in (on_failure_record(own_id), invalid_record, letter):
        stack.sqs.send_message(QueueUrl=stack.dead_letter_queue_url, MessageBody=json.dumps(body))
    replay_env = {**env, "DEAD_LETTER_QUEUE_URL": stack.dead_letter_queue_url}
    # when `replay --on-failure` runs
    done = run("replay", "--on-failure", env=replay_env)
    # then the valid event is republished under its own id, the invalid one is reported, and the run exits 1
    assert done.returncode == 1, done.stdout + done.stderr
    assert "1 invalid, 1 other letters, 1 republished" in done.stdout
    (row,) = [line for line in done.stdout.splitlines() if invalid["MessageId"] in line]
    assert row.split()[2:5] == ["invalid", "left", "in"]
    assert "left in the queue: field 'event': unknown event 'RuleFaild' (did you mean 'RuleFailed'?)" in row
    assert "WorkflowFailed of variant-calling" in done.stdout
    (report,) = stack.carry_published()
    assert report["delivered"] == 1 and json.loads(lims.requests[0].body)["id"] == "run-42-failed"
    # and the invalid event's record and the other letter are still in the queue, untouched
    left = stack.drain(stack.dead_letter_queue_url)
    assert sorted(json.dumps(b, sort_keys=True) for b in left) == sorted(json.dumps(b, sort_keys=True) for b in (invalid_record, letter))


def test_replay_on_failure_needs_a_topic_and_refuses_delivery_filters(env: dict[str, str]) -> None:
    queue = {**env, "DEAD_LETTER_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/1/dlq"}
    no_topic = {k: v for k, v in queue.items() if k != "OXOFLOW_NOTIFY_TOPIC_ARN"}
    done = run("replay", "--on-failure", env=no_topic)
    assert done.returncode == 2 and "set OXOFLOW_NOTIFY_TOPIC_ARN" in done.stderr
    done = run("replay", "--on-failure", "--webhook", "lims", env=queue)
    assert done.returncode == 2 and "--webhook does not apply" in done.stderr


def test_help_everywhere() -> None:
    for command in ("publish", "validate", "upload", "verify", "replay", "follow"):
        done = run(command, "--help")
        assert done.returncode == 0 and "usage: oxoflow-notify" in done.stdout
    assert run("invoke", "--help").returncode == 0
    assert run().returncode == 2


def test_follow_publishes_a_growing_log_until_the_run_ends(stack: Stack, env: dict[str, str], tmp_path: Path) -> None:
    # given a run's execution log that already has its first record
    import time

    log = tmp_path / "execution.jsonl"
    log.write_text(json.dumps({"event": "workflow_started", "timestamp": "2026-05-18T12:00:00Z"}) + "\n", encoding="utf-8")
    follower = subprocess.Popen(
        [COMMAND, "follow", str(log), "--workflow", "wgs", "--from-start", "--until-done", "--poll", "0.05", "--idle-exit", "60"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    # when the run writes more records while it is followed
    records = [
        {"event": "rule_started", "rule": "bwa", "timestamp": "2026-05-18T12:00:01Z"},
        {"event": "rule_completed", "rule": "bwa", "status": "failed", "exit_code": 137, "timestamp": "2026-05-18T12:05:00Z"},
        {"event": "workflow_completed", "status": "failed", "timestamp": "2026-05-18T12:05:01Z"},
    ]
    for record in records:
        time.sleep(0.3)
        with log.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
    _, stderr = follower.communicate(timeout=60)
    # then it exits after the run's end, and the topic got each record as our event, in order
    assert follower.returncode == 0, stderr
    published = [json.loads(e["Message"]) for e in tapped(stack)]
    assert [(m["event"], m.get("rule")) for m in published] == [
        ("workflow_started", None), ("rule_started", "bwa"), ("rule_failed", "bwa"), ("workflow_failed", None),
    ]  # fmt: skip
    assert published[2]["details"] == {"status": "failed", "exit_code": 137}
    assert "execution.jsonl:3: rule_failed published" in stderr


def test_follow_refuses_a_missing_log_and_exits_on_a_finished_one(tmp_path: Path) -> None:
    # a mistyped log path: refused at once, in one sentence, exit 2
    missing = tmp_path / "exection.jsonl"
    done = run("follow", str(missing), "--workflow", "wgs", "--until-done", "--dry-run")
    assert done.returncode == 2 and done.stdout == ""
    said = f"follow: no such file: {missing}; give the run's execution log (JSON lines), or pass --wait-for-log to wait for the run"
    said += " to create it"
    assert done.stderr == said + "\n"
    # a finished run's log, with a misspelled record: published through the final record, the typo reported, exit 1
    log = tmp_path / "execution.jsonl"
    records = [{"event": "workflow_started"}, {"event": "rule_faild", "rule": "bwa"},
               {"event": "rule_completed", "rule": "bwa", "status": "fail"}, {"event": "workflow_completed"}]  # fmt: skip
    log.write_text("".join(json.dumps({**r, "timestamp": "2026-05-18T12:00:00Z"}) + "\n" for r in records), encoding="utf-8")
    done = run("follow", str(log), "--workflow", "wgs", "--from-start", "--until-done", "--dry-run")
    assert done.returncode == 1, done.stderr
    assert [json.loads(s)["event"] for s in done.stdout.splitlines()] == ["workflow_started", "rule_failed", "workflow_completed"]
    assert "execution.jsonl:2: skipped: unknown event 'rule_faild' (did you mean 'rule_failed'?)" in done.stderr
    # followed again until done: the run has ended, nothing is published twice, exit 0
    again = run("follow", str(log), "--workflow", "wgs", "--until-done", "--dry-run")
    assert again.returncode == 0 and again.stdout == "", again.stderr
    assert "the run already ended at execution.jsonl:4 (workflow_completed)" in again.stderr


def test_validate_knows_the_live_keys_with_did_you_mean_and_the_platform_refusal(tmp_path: Path) -> None:
    # given a file with a live Slack webhook whose channel key is misspelt and a live Teams webhook
    path = tmp_path / "variant-calling.oxoflow"
    path.write_text(
        '[[webhooks]]\nid = "ops"\nurl = "https://slack.com/api"\nformat = "slack"\nlive = true\nchanel = "C0123456789"\n'
        'token = "xoxb-1-2-LiveTokenCanary"\n\n[[webhooks]]\nid = "team"\nurl = "https://example.org/x"\nformat = "teams"\nlive = true\n'
    )
    # when it is validated with the installed command
    done = run("validate", str(path))
    # then each problem is named at its line, with the did-you-mean and why Teams cannot be live; the token is never shown
    assert done.returncode == 1 and "Traceback" not in done.stderr
    out = done.stdout + done.stderr
    assert "(line 6): unknown key 'chanel' (did you mean 'channel'?)" in out
    assert "key 'channel' is required for a live Slack webhook" in out
    assert "(line 13): key 'live' applies to formats slack and discord only: teams cannot edit a message it posted" in out
    assert "LiveTokenCanary" not in out

"""Canaries in every place a secret can live, through dispatch, retries and dead letters.

Distinct canary strings are planted in a webhook URL's path, query, port and user info, in a custom
header's name and value, in literal signing secrets, and in SSM SecureString and Secrets Manager
values (in the workflow's scope, plus one outside it). The receiver is hostile: it answers 500 with
the request's path, query and every header value it got, so its answer snippet — which goes into
retry reasons and dead letters — carries them back. Then every log line (our logger at DEBUG, and
everything that reaches caplog), every EMF metric line, every retry-queue message at every hop and
every dead letter is searched for every canary, ignoring case (a URL scheme is lowercased on the way).

The receiver's answer is cleaned in delivery.redact (header values, URL path and query removed);
this test expects that cleaning and proves it happened (the snippets say REDACTED) on answers that
really echoed the canaries.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable
from typing import Any

import boto3
import pytest

from oxolocal.receivers import Answer, Received, Receiver
from oxolocal.stack import Stack, sqs_event
from tests.conftest import message

# One canary per place; lowercase-insensitive matching below.
CANARIES = {
    "path": "PATHCANARY-6b1f0e",
    "query": "QUERYCANARY-2c9d41",
    "port": "PORTCANARY-90aa13",
    "user": "USERCANARY-5e02f7",
    "password": "PASSCANARY-c3d8b2",
    "header_name": "X-HDRNAMECANARY-7f3a",
    "header_value": "HDRVALUECANARY-1d6e09",
    "authorization": "AUTHCANARY-44be7c",
    "literal_secret": "LITSECRETCANARY-a81f32",
    "ssm_path": "SSMPATHCANARY-0f7c55",
    "ssm_query": "SSMQUERYCANARY-b2e610",
    "ssm_secret": "SSMSECRETCANARY-93d0ac",
    "ssm_user": "SSMUSERCANARY-e4a5d1",
    "ssm_port": "SSMPORTCANARY-61c2f8",
    "ssm_scheme": "ssmschemecanary-d07b3e",
    "sm_path": "SMPATHCANARY-3a9e47",
    "sm_query": "SMQUERYCANARY-c5f120",
    "sm_secret": "SMSECRETCANARY-7b44d9",
    "other_team": "TEAMBCANARY-28f6ea",
}


def echo(n: int, request: Received) -> Answer:
    """A hostile receiver: 500, with the path and query and every header value, canaries first."""
    values = sorted(request.headers.values(), key=lambda value: "canary" not in value.lower())
    return Answer(500, (request.path + " " + " ".join(values)).encode())


def hooks(*entries: str) -> str:
    return '[workflow]\nname = "variant-calling"\n\n' + "\n".join(f"[[webhooks]]\n{e}\n" for e in entries)


def test_no_canary_reaches_a_log_line_a_metric_a_retry_message_or_a_dead_letter(
    stack: Stack, receivers: Callable[..., Receiver], capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    c = CANARIES
    receiver = receivers(echo, "echo")
    base = f"https://localhost:{receiver.port}"
    scope = f"oxoflow-notify/workflows/variant-calling/{stack.name_prefix}"  # the workflow's own scope
    ssm, sm = boto3.client("ssm"), boto3.client("secretsmanager")
    ssm.put_parameter(Name=f"/{scope}/url", Value=f"{base}/{c['ssm_path']}?s={c['ssm_query']}", Type="SecureString")
    ssm.put_parameter(Name=f"/{scope}/secret", Value=c["ssm_secret"], Type="SecureString")
    ssm.put_parameter(Name=f"/{scope}/userinfo", Value=f"https://{c['ssm_user']}:x@localhost:{receiver.port}/", Type="SecureString")
    ssm.put_parameter(Name=f"/{scope}/port", Value=f"https://localhost:{c['ssm_port']}/x", Type="SecureString")
    ssm.put_parameter(Name=f"/{scope}/scheme", Value=f"{c['ssm_scheme']}://localhost/x", Type="SecureString")
    sm.create_secret(
        Name=f"{scope}/hook", SecretString=json.dumps({"url": f"{base}/{c['sm_path']}?m={c['sm_query']}", "key": c["sm_secret"]})
    )
    other = f"oxoflow-notify/workflows/teamB-{stack.name_prefix}"
    ssm.put_parameter(Name=f"/{other}/url", Value=f"{base}/{c['other_team']}", Type="SecureString")
    headers = f'headers = {{ "{c["header_name"]}" = "{c["header_value"]}", Authorization = "Bearer {c["authorization"]}" }}'
    stack.put_config(
        "variant-calling",
        hooks(
            # answered by the echo (500, retried, then dead-lettered): every part of the request echoed back
            f'id = "literal"\nurl = "{base}/{c["path"]}?q={c["query"]}"\nsecret = "{c["literal_secret"]}"\n'
            f'signature_scheme = "hmac-sha256"\n{headers}',
            f'id = "from-ssm"\nurl = "ssm:/{scope}/url"\nsecret = "ssm:/{scope}/secret"\n{headers}',
            f'id = "from-secrets-manager"\nurl = "secretsmanager:{scope}/hook#url"\nsecret = "secretsmanager:{scope}/hook#key"\n{headers}',
            # refused as the config is read (invalid_webhook)
            f'id = "port"\nurl = "https://localhost:{c["port"]}/x"',
            f'id = "userinfo"\nurl = "https://{c["user"]}:{c["password"]}@localhost:{receiver.port}/x"',
            f'id = "other-team"\nurl = "ssm:/{other}/url"',
            # refused once resolved (permanent_failure): the values are bad URLs
            f'id = "ssm-userinfo"\nurl = "ssm:/{scope}/userinfo"',
            f'id = "ssm-port"\nurl = "ssm:/{scope}/port"',
            f'id = "ssm-scheme"\nurl = "ssm:/{scope}/scheme"',
        ),
    )
    from oxoflow_notify.observability import logger
    from oxoflow_notify.outbound.delivery import REDACTED

    level = logger.log_level
    logger.setLevel("DEBUG")  # every line, successes and request details included
    handler = logger.registered_handler
    assert isinstance(handler, logging.StreamHandler)
    logs = io.StringIO()
    previous = handler.setStream(logs)
    caplog.set_level(logging.INFO)
    retry_bodies: list[str] = []
    try:
        # when two events are dispatched, and every retry is carried until the schedule runs out
        stack.publish(message("rule-failed"))
        stack.publish(message("workflow-failed"))
        stack.carry_published()
        for _ in range(10):
            batch = stack.receive(stack.retry_queue_url)
            if not batch:
                break
            retry_bodies += [m["Body"] for m in batch]
            result = stack.invoke("RetryFunction", sqs_event(batch, stack.physical["RetryQueue"]["Arn"]))
            failed = {f["itemIdentifier"] for f in (result or {}).get("batchItemFailures", [])}
            for m in batch:
                if m["MessageId"] not in failed:
                    stack.sqs.delete_message(QueueUrl=stack.retry_queue_url, ReceiptHandle=m["ReceiptHandle"])
    finally:
        handler.setStream(previous)
        logger.setLevel(level)
    letters = stack.drain(stack.dead_letter_queue_url)
    printed = capsys.readouterr().out  # EMF metrics (and anything else printed)
    logged = caplog.text + "\n".join(json.dumps(r.__dict__, default=str) for r in caplog.records)

    # then the run really happened: the echo got every canary it could be sent, and answered them back
    got = receiver.requests
    assert len(got) == 3 * 2 * 3  # three webhooks, two events, three attempts each (RETRY_SCHEDULE 0,0)
    sent = " ".join(r.path + " " + " ".join(r.headers.values()) for r in got)
    for where in ("path", "query", "header_value", "authorization", "ssm_path", "ssm_query", "sm_path", "sm_query"):
        assert c[where] in sent, where
    assert all(c["header_name"].lower() in {name.lower() for name in r.headers} for r in got)
    echoed = [echo(0, r).body.decode() for r in got]
    assert all(c["header_value"] in body for body in echoed)
    assert len(retry_bodies) >= 12 and "DeadLettered" in printed and logs.getvalue()
    by_id: dict[str, list[dict[str, Any]]] = {}
    for letter in letters:
        by_id.setdefault(letter["webhook"]["id"], []).append(letter)
    codes = {webhook_id: {letter["reason_code"] for letter in group} for webhook_id, group in by_id.items()}
    assert codes == {
        "literal": {"retries_exhausted"},
        "from-ssm": {"retries_exhausted"},
        "from-secrets-manager": {"retries_exhausted"},
        "port": {"invalid_webhook"},
        "userinfo": {"invalid_webhook"},
        "other-team": {"invalid_webhook"},
        "ssm-userinfo": {"permanent_failure"},
        "ssm-port": {"permanent_failure"},
        "ssm-scheme": {"permanent_failure"},
    }
    assert all(len(group) == 2 for group in by_id.values())  # one per event
    # ... and the echoed answers were cleaned, not merely cut short: the snippets say what was removed
    exhausted = json.dumps([letter for letter in letters if letter["reason_code"] == "retries_exhausted"])
    assert "HTTP 500" in exhausted and REDACTED in exhausted

    # and no canary appears anywhere: logs, caplog, metrics, retry messages, dead letters
    everything = "\n".join([logs.getvalue(), logged, printed, *retry_bodies, json.dumps(letters)]).lower()
    leaked = {where: canary for where, canary in CANARIES.items() if canary.lower() in everything}
    assert leaked == {}, f"canaries leaked: {leaked}"


def _strings(value: Any) -> list[str]:
    """Every string inside a JSON value (log lines and letters are searched as decoded text, so an
    escape that JSON added, such as a zero-width character as \\u200b, hides nothing)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _decoded(text: str) -> list[str]:
    out = []
    for line in text.splitlines():
        try:
            out += _strings(json.loads(line))
        except ValueError:
            out.append(line)
    return out


def test_no_re_encoded_echo_of_a_secret_reaches_a_log_line_a_reason_or_a_dead_letter(
    stack: Stack, receivers: Callable[..., Receiver], capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    # given four webhooks with a secret each (a Slack URL's token, a signing secret, a bearer token,
    # a whsec_ secret), whose receiver refuses each event (400, so the circuit breaker, which a run of
    # 500s would open, lets every one through) with that secret in one of the forms of issue #20
    # point 7, a new form at each request; and a fifth whose receiver explains itself in plain words
    from tests.unit.test_echoes import BEARER, FORMS, ORDINARY, SIGNING_SECRET, SLACK_TOKEN, WHSEC

    secrets = {"slack": SLACK_TOKEN, "secret": SIGNING_SECRET, "bearer": BEARER, "whsec": WHSEC}
    asked: dict[str, int] = {}
    answered: list[tuple[str, str]] = []  # (place, what was said)

    def echo_encoded(n: int, request: Received) -> Answer:
        place = request.path.split("/")[1]
        k = asked[place] = asked.get(place, -1) + 1
        said = ORDINARY[k % len(ORDINARY)] if place == "plain" else "upstream said " + list(FORMS.values())[k % len(FORMS)](secrets[place])
        answered.append((place, said))
        return Answer(400, said.encode())

    receiver = receivers(echo_encoded, "echo-encoded")
    base = f"https://localhost:{receiver.port}"
    stack.put_config(
        "variant-calling",
        hooks(
            f'id = "slack"\nformat = "slack"\nurl = "{base}/slack/services/T0AB12CD3/B0EF45GH6/{SLACK_TOKEN}"',
            f'id = "secret"\nurl = "{base}/secret"\nsecret = "{SIGNING_SECRET}"',
            f'id = "bearer"\nurl = "{base}/bearer"\nheaders = {{ Authorization = "Bearer {BEARER}" }}',
            f'id = "whsec"\nurl = "{base}/whsec"\nsecret = "{WHSEC}"',
            f'id = "plain"\nurl = "{base}/plain"',
        ),
    )
    from oxoflow_notify.observability import logger
    from oxoflow_notify.outbound.echoes import REDACTED

    handler = logger.registered_handler
    assert isinstance(handler, logging.StreamHandler)
    logs = io.StringIO()
    # not setStream: it flushes the old stream, which an earlier test's capture may have closed
    previous, handler.stream = handler.stream, logs
    caplog.set_level(logging.INFO)
    try:
        # when one event per form is dispatched
        for number in range(len(FORMS)):
            stack.publish({**message("rule-failed"), "rule": f"align_reads_{number}"})
        stack.carry_published()
        stack.drain_retries(rounds=10)
    finally:
        handler.stream = previous
    letters = stack.drain(stack.dead_letter_queue_url)
    printed = capsys.readouterr().out

    # then every form was really answered, for every secret, and each answer dead-lettered with its reason
    assert {place: count + 1 for place, count in asked.items()} == {p: len(FORMS) for p in ("slack", "secret", "bearer", "whsec", "plain")}
    assert len(letters) == 5 * len(FORMS) and {letter["reason_code"] for letter in letters} == {"permanent_failure"}
    texts = [*_decoded(logs.getvalue()), *_decoded(printed), *_strings(letters), caplog.text]
    texts += [str(r.__dict__.get("reason", "")) for r in caplog.records]
    everything = "\n".join(texts)
    reasons = [letter["reason"] for letter in letters if letter["webhook"]["id"] != "plain"]
    assert len(reasons) == 4 * len(FORMS) and all(r.startswith("HTTP 400 upstream said") for r in reasons), reasons[:3]
    assert all(REDACTED in r for r in reasons), [r for r in reasons if REDACTED not in r]
    assert everything.count("HTTP 400 upstream said") >= 2 * 4 * len(FORMS)  # in a log line and a letter each
    # and no 10 characters of any echoed form, nor of any secret, survive anywhere
    leaked = []
    for place, said in answered:
        if place == "plain":
            continue
        echoed = said.removeprefix("upstream said ")
        for value in (echoed, secrets[place]):
            width = min(10, len(value))
            windows = {value[i : i + width] for i in range(len(value) - width + 1)}
            leaked += [(place, w) for w in windows if w.strip() and w in everything]
    assert leaked == [], f"echoed secrets leaked: {sorted(set(leaked))[:10]}"
    # while what the plain receiver said reads as it was said, in its reasons
    for text in ORDINARY:
        assert f"HTTP 400 {text}" in everything, text

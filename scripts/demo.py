#!/usr/bin/env python3
"""`make demo`: the whole pipeline on this machine, no AWS account, no Docker.

moto server plays SNS, S3 and SQS; loopback HTTP servers play the receivers (one verifying
signatures, a Slack-format one, one that fails once, one that answers 404). The sample events
are published to the topic and carried to the dispatch handler; the retry queue is drained by
the retry handler on a compressed schedule; the run ends with what each receiver got and what
was dead-lettered, and exits non-zero if anything expected did not happen. Then oxo-flow itself:
its signed native webhook POST goes through the ingest function to a receiver configured with
oxo-flow's own [webhook] table, and its retry of the same POST is delivered once (the ledger).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from oxolocal.receivers import Answer, Received, Receiver, always, fail_first, service, verify_hub
from oxolocal.stack import Stack, moto_server, repo_path, use_local_aws

LOG = repo_path(".demo", "lambda.log")
SECRET = "demo-secret-do-not-use-in-production"
OUT = sys.__stdout__


INGEST_SECRET = "demo-ingest-secret"  # what oxo-flow signs its own webhook with
OXO_SECRET = "demo-oxo-receiver-secret"  # what we sign deliveries to the oxo-flow-style receiver with


def verify_oxoflow(secret: str) -> Any:
    """A receiver written for oxo-flow: checks X-OxoFlow-Signature, answers 401 when it is wrong."""

    def behave(n: int, r: Received) -> Answer:
        expected = "hmac-sha256=" + hmac.new(secret.encode(), r.body, hashlib.sha256).hexdigest()
        return Answer(200) if hmac.compare_digest(expected, r.header("X-OxoFlow-Signature") or "") else Answer(401, b"bad signature")

    return behave


def oxoflow_post(native: dict[str, Any], secret: str | None) -> dict[str, Any]:
    """The Function URL request oxo-flow's webhook makes (events/url-oxoflow-workflow-completed.json, re-signed)."""
    request: dict[str, Any] = json.loads(repo_path("events", "url-oxoflow-workflow-completed.json").read_text(encoding="utf-8"))
    request["body"] = json.dumps(native, separators=(",", ":"))
    request["headers"].pop("x-oxoflow-signature")
    if secret is not None:
        digest = hmac.new(secret.encode(), request["body"].encode(), hashlib.sha256).hexdigest()
        request["headers"]["x-oxoflow-signature"] = f"hmac-sha256={digest}"
    return request


def say(text: str = "") -> None:
    print(text, file=OUT, flush=True)


def configs(r: dict[str, Receiver]) -> dict[str, str]:
    return {
        "variant-calling": f"""
[workflow]
name = "variant-calling"

[[rules]]
name = "align_reads"
shell = "bwa mem ..."

[[webhooks]]
id = "lims"
url = "{r["lims"].url}"
secret = "{SECRET}"

[[webhooks]]
id = "team-slack"
url = "{r["slack"].url}"
format = "slack"
events = ["WorkflowFailed", "RuleFailed", "WorkflowCompleted"]

[[webhooks]]
id = "team-teams"
url = "{r["teams"].url}"
format = "teams"
events = ["WorkflowFailed", "WorkflowCompleted"]

[[webhooks]]
id = "team-discord"
url = "{r["discord"].url}"
format = "discord"
events = ["RuleFailed", "RuleSkipped"]

[[webhooks]]
id = "flaky-dashboard"
url = "{r["flaky"].url}"
events = ["rule_failed"]

[[webhooks]]
id = "retired-endpoint"
url = "{r["gone"].url}"
events = ["WorkflowCompleted"]

[[webhooks]]
id = "typo"
url = "{r["lims"].url}"
events = ["WorkflowFailed", "RuleFaild"]
""",
        "_default": f"""
# Org-wide: every workflow's failures also reach the platform team.
[[webhooks]]
id = "platform-alerts"
url = "{r["org"].url}"
format = "slack"
events = ["WorkflowFailed"]
""",
        "rnaseq": """
[workflow]
name = "rnaseq"

[[webhooks]]
url = "https://example.org/hook"
events = ["WorkflowFailed"
""",
    }


def verified(receiver: Receiver) -> int:
    return sum(1 for r in receiver.requests if r.answered == 200)


def main() -> int:
    LOG.parent.mkdir(exist_ok=True)
    failures: list[str] = []

    def expect(what: str, condition: bool) -> None:
        say(f"  {'ok  ' if condition else 'FAIL'} {what}")
        if not condition:
            failures.append(what)

    with contextlib.ExitStack() as ctx:
        log = ctx.enter_context(open(LOG, "w", encoding="utf-8"))
        ctx.enter_context(contextlib.redirect_stdout(log))  # Lambda's JSON logs and EMF metrics
        endpoint = ctx.enter_context(moto_server())
        use_local_aws(endpoint)
        say(f"moto server (SNS, S3, SQS) on {endpoint}")
        stack = Stack(overrides={"RETRY_SCHEDULE": "0,0,0", "POWERTOOLS_LOG_LEVEL": "DEBUG"}).provision()
        say(f"created from template.yaml: topic, config bucket '{stack.bucket}', retry queue, dead-letter queue")

        # Chat receivers answer like the real service, after checking the shape it requires.
        lims = ctx.enter_context(Receiver(verify_hub(SECRET), "lims"))
        slack = ctx.enter_context(Receiver(service("slack"), "slack"))
        teams = ctx.enter_context(Receiver(service("teams"), "teams"))
        discord = ctx.enter_context(Receiver(service("discord"), "discord"))
        flaky = ctx.enter_context(Receiver(fail_first(1, 503), "flaky"))
        gone = ctx.enter_context(Receiver(always(404, b"no such hook"), "gone"))
        org = ctx.enter_context(Receiver(service("slack"), "platform"))
        receivers = {
            "lims (json, signed)": lims,
            "team-slack (slack)": slack,
            "team-teams (teams)": teams,
            "team-discord (discord)": discord,
            "flaky (503 once)": flaky,
            "retired (404)": gone,
            "platform (_default, slack)": org,
        }
        say("receivers on https://localhost (TLS from a throwaway CA the functions trust through SSL_CERT_FILE; REQUIRE_HTTPS on):")
        say("  " + ", ".join(receivers))

        named = {"lims": lims, "slack": slack, "teams": teams, "discord": discord, "flaky": flaky, "gone": gone, "org": org}
        for workflow, text in configs(named).items():
            stack.put_config(workflow, text)
        say("configs uploaded: workflows/variant-calling.oxoflow, workflows/_default.oxoflow, workflows/rnaseq.oxoflow (broken on purpose)")

        samples = sorted(repo_path("events", "messages").glob("*.json"))
        for path in samples:
            stack.publish(path.read_text(encoding="utf-8"))
        stack.publish({"event": "WorkflowFailed", "workflow": "rnaseq", "message": "STAR ran out of memory"})
        stack.publish({"event": "RuleFaild", "workflow": "variant-calling", "rule": "align_reads"})
        stack.publish("this is not JSON")
        published = len(samples) + 3
        say(
            f"\npublished {published} events to the SNS topic "
            f"({len(samples)} samples from events/messages/, 1 for the broken config, 2 malformed)"
        )

        reports: list[dict[str, Any]] = stack.carry_published()
        delivered = sum(r["delivered"] for r in reports)
        retrying = sum(r["retrying"] for r in reports)
        dead = sum(r["dead_lettered"] for r in reports)
        say(f"dispatch: {len(reports)} invocations -> {delivered} delivered, {retrying} to the retry queue, {dead} dead-lettered")
        handled = stack.drain_retries()
        say(f"retry: {handled} retry-queue messages handled (schedule compressed to 0,0,0 seconds)")
        letters = stack.drain(stack.dead_letter_queue_url)

        say("\nwhat each receiver got")
        say(f"  {'receiver':28} {'requests':>8} {'2xx':>5}  answers")
        for label, receiver in receivers.items():
            answers = ", ".join(str(r.answered) for r in receiver.requests)
            say(f"  {label:28} {len(receiver.requests):>8} {len(receiver.successes()):>5}  {answers}")

        sample = next(r for r in lims.requests if r.header("X-OxoFlow-Event") == "RuleFailed")
        say("\none signed delivery, as lims received it")
        say(f"  over https://localhost:{lims.port}: TLS SNI {lims.handshakes[0]!r}, certificate verified for that name")
        for name in ("Host", "User-Agent", "X-OxoFlow-Event", "X-OxoFlow-Delivery", "X-Hub-Signature-256"):
            say(f"  {name}: {sample.header(name)}")
        say(f"  body: {sample.body.decode()[:160]}...")

        card = json.loads(teams.requests[0].body)["attachments"][0]["content"]["body"]
        embed = json.loads(discord.requests[0].body)["embeds"][0]
        say("\nwhat people see")
        say(f"  slack:   {json.loads(slack.requests[0].body)['text'][:110]}")
        say(f"  teams:   {card[0]['items'][0]['text']} | " + ", ".join(f"{f['title']}: {f['value']}" for f in card[2]["facts"])[:70])
        say(f"  discord: {embed['title']} (colour #{embed['color']:06x}) | {embed['description'][:50]!r}")

        say("\ndead-letter queue")
        for letter in letters:
            webhook = (letter.get("webhook") or {}).get("id") or "-"
            say(f"  [{letter['reason_code']}] webhook {webhook}: {letter['reason'][:150]}")

        say("\noxo-flow itself: its signed webhook POST -> IngestFunction -> topic -> its [webhook] receiver")
        import boto3

        boto3.client("ssm").put_parameter(Name="/oxoflow-notify-ingest/secret", Value=INGEST_SECRET, Type="SecureString", Overwrite=True)
        oxo = ctx.enter_context(Receiver(verify_oxoflow(OXO_SECRET), "oxo"))
        stack.put_config("wgs", f'[workflow]\nname = "wgs"\n\n[webhook]\nurl = "{oxo.url}"\nsecret = "{OXO_SECRET}"\n')
        counts = {"total_rules": 40, "succeeded": 39, "failed": 1, "skipped": 0, "duration_ms": 5400000}
        native = {
            "event": "workflow_completed",
            "workflow_name": "wgs",
            "timestamp": "2026-05-18T13:00:00Z",
            "data": counts,
            "version": "0.14.2",
        }
        signed = oxoflow_post(native, INGEST_SECRET)
        ingest_answers = [stack.invoke("IngestFunction", signed) for _ in range(2)]  # oxo-flow retries the same POST
        unsigned = stack.invoke("IngestFunction", oxoflow_post(native, None))
        statuses = [a["statusCode"] for a in ingest_answers]
        say(f"  ingest answered {statuses} to the signed POST and its retry, {unsigned['statusCode']} unsigned")
        ingested = stack.carry_published()
        say(f"  dispatch: {sum(r['delivered'] for r in ingested)} delivered, {sum(r['already_delivered'] for r in ingested)} "
            "already delivered (the ledger)")  # fmt: skip
        if oxo.requests:
            got = oxo.requests[0]
            say(f"  oxo received: X-OxoFlow-Signature: {got.header('X-OxoFlow-Signature')}")
            say(f"  body: {got.body.decode()[:150]}...")

        say("\nchecks")
        expect("lims got all 8 sample events, each with a valid X-Hub-Signature-256", verified(lims) == 8 and len(lims.requests) == 8)
        events_at_lims = sorted(json.loads(r.body)["event"] for r in lims.requests)
        expect("lims saw every event type once", len(set(events_at_lims)) == 8)
        expect("team-slack got the 3 Slack messages it subscribed to", len(slack.successes()) == 3)
        expect(
            "slack bodies carry text, blocks and a coloured attachment",
            all({"text", "blocks", "attachments"} <= set(json.loads(r.body)) for r in slack.requests),
        )
        expect(
            "team-teams got 2 Adaptive Cards, answered 202 by a receiver checking Teams' shape",
            [r.answered for r in teams.requests] == [202] * 2,
        )
        expect(
            "team-discord got 2 embeds, answered 204 by a receiver checking Discord's limits",
            [r.answered for r in discord.requests] == [204] * 2,
        )
        expect(
            "flaky answered 503 once, then got the retry (same delivery id)",
            [r.answered for r in flaky.requests] == [503, 200] and len({r.header("X-OxoFlow-Delivery") for r in flaky.requests}) == 1,
        )
        expect(
            "platform got the org-wide WorkflowFailed of both workflows from _default.oxoflow",
            sorted(json.loads(r.body)["text"].split(":")[1].strip().split(" ")[0] for r in org.successes())
            == ["rnaseq", "variant-calling"],
        )
        codes = sorted(letter["reason_code"] for letter in letters)
        expect(
            "404 from the retired endpoint is dead-lettered, not retried", codes.count("permanent_failure") == 1 and len(gone.requests) == 1
        )
        expect(
            "the webhook with an unknown event name is dead-lettered with a did-you-mean",
            any("did you mean 'RuleFailed'" in letter["reason"] for letter in letters if letter["reason_code"] == "invalid_webhook"),
        )
        expect(
            "the broken rnaseq.oxoflow dead-letters its event with line and column",
            any(
                "line" in letter["reason"] and "column" in letter["reason"]
                for letter in letters
                if letter["reason_code"] == "invalid_config"
            ),
        )
        expect("both malformed messages are dead-lettered with their reason", codes.count("invalid_event") == 2)
        expect(
            "every delivery went over HTTPS: each handshake's SNI and each request's Host named localhost",
            all(set(r.handshakes) == {"localhost"} for r in named.values())
            and all(got.header("Host") == f"localhost:{r.port}" for r in named.values() for got in r.requests),
        )
        secret_leaks = [
            letter for letter in letters if SECRET in json.dumps(letter) or any(r.url in json.dumps(letter) for r in named.values())
        ]
        expect("no secret or webhook URL in any dead letter", not secret_leaks)
        log.flush()
        log_text = LOG.read_text(encoding="utf-8")
        expect(
            "no secret or webhook URL in the Lambda logs",
            all(x not in log_text for x in (SECRET, INGEST_SECRET, OXO_SECRET, "/hook/")),
        )
        expect(
            "oxo-flow's signed POST was accepted and its unsigned twin refused (401)",
            [a["statusCode"] for a in ingest_answers] == [202, 202] and unsigned["statusCode"] == 401,
        )
        expect(
            "the oxo-flow-style receiver got oxo-flow's payload once, with a valid X-OxoFlow-Signature (retry not re-posted)",
            [r.answered for r in oxo.requests] == [200] and json.loads(oxo.requests[0].body)["data"]["failed"] == 1,
        )
        expect("retry queue is empty at the end", stack.depth(stack.retry_queue_url)["visible"] == 0)

    say(f"\nLambda logs and EMF metrics (JSON lines): {LOG.relative_to(repo_path())}")
    if failures:
        say(f"\ndemo FAILED: {len(failures)} check(s) did not hold")
        return 1
    say("\ndemo passed: every (event, webhook) pair was delivered or dead-lettered with its reason")
    return 0


if __name__ == "__main__":
    sys.exit(main())

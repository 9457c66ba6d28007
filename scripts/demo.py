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
import re
import sys
import textwrap
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

sys.path.insert(0, str(Path(__file__).resolve().parent))

from oxolocal.receivers import (
    Answer,
    DiscordMessages,
    PagerDutyLike,
    Received,
    Receiver,
    SlackWebApi,
    always,
    fail_first,
    most_in_any_second,
    service,
    slack_like,
    verify_hub,
)
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


def clip(text: str, width: int) -> str:
    """At most ``width`` characters on one line, cut at a word's end with an ellipsis, never mid-word."""
    text = " ".join(text.split())
    if len(text) <= width:
        return text
    cut = text[: width - 1]
    if " " in cut[width // 2 :]:
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip(" ,;:") + "…"


def as_seen(markdown: str) -> str:
    """Chat markdown as a person reads it: ``align\\_reads`` shows as align_reads (the escape is
    right in the JSON body; printing it would show the escape, not the message)."""
    return re.sub(r"\\([\\`*_~|>#\[\]()-])", r"\1", markdown)


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


# -- the narrative: each step does one thing and says what it did ---------------------------------

LABELS = {  # the receivers, as the report names them
    "lims": "lims (json, signed)",
    "slack": "team-slack (slack)",
    "teams": "team-teams (teams)",
    "discord": "team-discord (discord)",
    "flaky": "flaky (503 once)",
    "gone": "retired (404)",
    "org": "platform (_default, slack)",
}


def start_stack(ctx: contextlib.ExitStack) -> Stack:
    endpoint = ctx.enter_context(moto_server())
    use_local_aws(endpoint)
    say(f"moto server (SNS, S3, SQS) on {endpoint}")
    stack = Stack(overrides={"RETRY_SCHEDULE": "0,0,0", "POWERTOOLS_LOG_LEVEL": "DEBUG"}).provision()
    say(f"created from template.yaml: topic, config bucket '{stack.bucket}', retry queue, dead-letter queue")
    return stack


def start_receivers(ctx: contextlib.ExitStack) -> dict[str, Receiver]:
    # Chat receivers answer like the real service, after checking the shape it requires.
    behaviours = {
        "lims": verify_hub(SECRET),
        "slack": service("slack"),
        "teams": service("teams"),
        "discord": service("discord"),
        "flaky": fail_first(1, 503),
        "gone": always(404, b"no such hook"),
        "org": service("slack"),
    }
    names = {"org": "platform"}
    named = {key: ctx.enter_context(Receiver(behaviour, names.get(key, key))) for key, behaviour in behaviours.items()}
    say("receivers on https://localhost (TLS from a throwaway CA the functions trust through SSL_CERT_FILE; REQUIRE_HTTPS on):")
    say("  " + ", ".join(LABELS.values()))
    return named


def upload_configs(stack: Stack, named: dict[str, Receiver]) -> None:
    for workflow, text in configs(named).items():
        stack.put_config(workflow, text)
    say("configs uploaded: workflows/variant-calling.oxoflow, workflows/_default.oxoflow, workflows/rnaseq.oxoflow (broken on purpose)")


def publish_events(stack: Stack) -> None:
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


def dispatch_and_retry(stack: Stack) -> list[dict[str, Any]]:
    """Carry the published events to the dispatcher, drain the retry queue; the dead letters."""
    reports: list[dict[str, Any]] = stack.carry_published()
    delivered = sum(r["delivered"] for r in reports)
    retrying = sum(r["retrying"] for r in reports)
    dead = sum(r["dead_lettered"] for r in reports)
    say(f"dispatch: {len(reports)} invocations -> {delivered} delivered, {retrying} to the retry queue, {dead} dead-lettered")
    handled = stack.drain_retries()
    say(f"retry: {handled} retry-queue messages handled (schedule compressed to 0,0,0 seconds)")
    return stack.drain(stack.dead_letter_queue_url)


def show_receivers(named: dict[str, Receiver]) -> None:
    say("\nwhat each receiver got")
    say(f"  {'receiver':28} {'requests':>8} {'2xx':>5}  answers")
    for key, label in LABELS.items():
        receiver = named[key]
        answers = ", ".join(str(r.answered) for r in receiver.requests)
        say(f"  {label:28} {len(receiver.requests):>8} {len(receiver.successes()):>5}  {answers}")


def show_signed_delivery(lims: Receiver) -> None:
    sample = next(r for r in lims.requests if r.header("X-OxoFlow-Event") == "RuleFailed")
    say("\none signed delivery, as lims received it")
    say(f"  over https://localhost:{lims.port}: TLS SNI {lims.handshakes[0]!r}, certificate verified for that name")
    for name in ("Host", "User-Agent", "X-OxoFlow-Event", "X-OxoFlow-Delivery", "X-Hub-Signature-256"):
        say(f"  {name}: {sample.header(name)}")
    say(f"  body: {clip(sample.body.decode(), 160)}")


def show_what_people_see(named: dict[str, Receiver]) -> None:
    card = json.loads(named["teams"].requests[0].body)["attachments"][0]["content"]["body"]
    embed = json.loads(named["discord"].requests[0].body)["embeds"][0]
    say("\nwhat people see")
    say(f"  slack:   {clip(json.loads(named['slack'].requests[0].body)['text'], 110)}")
    facts = ", ".join(f"{f['title']}: {f['value']}" for f in card[2]["facts"])
    say(f"  teams:   {card[0]['items'][0]['text']} | {clip(facts, 80)}")
    first_line = as_seen(embed["description"]).splitlines()[0]
    say(f"  discord: {embed['title']} (colour #{embed['color']:06x}) | {clip(first_line, 60)}")


def show_dead_letters(letters: list[dict[str, Any]]) -> None:
    say("\ndead-letter queue")
    for letter in letters:
        webhook = (letter.get("webhook") or {}).get("id") or "-"
        # The reason is the fix: wrapped whole, never cut.
        say(textwrap.fill(f"[{letter['reason_code']}] webhook {webhook}: {letter['reason']}", width=110,
                          initial_indent="  ", subsequent_indent="      ", break_long_words=False, break_on_hyphens=False))  # fmt: skip


@dataclass
class OxoflowRun:
    """oxo-flow's own webhook through the ingest function: what ingest answered, and the receiver."""

    ingest_answers: list[dict[str, Any]]  # the signed POST and oxo-flow's retry of it
    unsigned: dict[str, Any]
    receiver: Receiver


def oxoflow_itself(ctx: contextlib.ExitStack, stack: Stack) -> OxoflowRun:
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
        say(f"  body: {clip(got.body.decode(), 150)}")
    return OxoflowRun(ingest_answers, unsigned, oxo)


STORM_RULES = 200
STORM_RATE = 10  # POSTs per second the paced receiver allows (plus one), and its webhook's rate_limit


def enforcing_slack() -> Any:
    """Slack's shape and Slack's rate: about one message a second (plus a burst of one), else 429."""
    shape, rate = service("slack"), slack_like(1, burst=1)

    def behave(n: int, r: Received) -> Answer:
        answer = rate(n, r)
        return answer if answer.status == 429 else shape(n, r)

    return behave


@dataclass
class StormRun:
    """A 200-rule failure storm: what the digest webhooks and the paced webhook got."""

    slack: Receiver  # digest = "30s", format slack, Slack's own rate enforced
    ops: Receiver  # digest = "30s", json: the counts, machine-readable
    paced: Receiver  # every RuleFailed alone, rate_limit = STORM_RATE, enforced by the receiver


def failure_storm(ctx: contextlib.ExitStack, stack: Stack) -> StormRun:
    say(f"\na failure storm: a bad reference genome fails {STORM_RULES} rules of one run in a minute")
    slack = ctx.enter_context(Receiver(enforcing_slack(), "storm-slack"))
    ops = ctx.enter_context(Receiver(verify_hub(SECRET), "storm-ops"))
    paced = ctx.enter_context(Receiver(slack_like(STORM_RATE, burst=1), "storm-paced"))
    stack.put_config(
        "wgs-storm",
        f"""
[[webhooks]]
id = "team-slack"
url = "{slack.url}"
format = "slack"
digest = "30s"

[[webhooks]]
id = "ops-digest"
url = "{ops.url}"
secret = "{SECRET}"
digest = "30s"

[[webhooks]]
id = "paced-dashboard"
url = "{paced.url}"
events = ["RuleFailed"]
rate_limit = {STORM_RATE}
""",
    )
    say(f"  wgs-storm.oxoflow: team-slack (slack, digest = \"30s\"), ops-digest (json, digest), "
        f"paced-dashboard (rate_limit = {STORM_RATE}, its receiver answers 429 above that)")  # fmt: skip
    for n in range(STORM_RULES):
        stack.publish({"event": "RuleFailed", "workflow": "wgs-storm", "run_id": "run-7", "rule": f"call_variants_chr{n % 24 + 1}_{n:03d}",
                       "message": "reference genome index is missing", "details": {"exit_code": 2, "stderr":
                       f"[E::bwa_idx_load] fail to locate the index files (shard {n})"}})  # fmt: skip
    stack.publish({"event": "WorkflowFailed", "workflow": "wgs-storm", "run_id": "run-7", "message": f"{STORM_RULES} rules failed"})
    reports = stack.carry_published()
    digested, sent, held = (sum(r[k] for r in reports) for k in ("digested", "delivered", "held"))
    per_webhook = Counter(d["webhook_id"] for r in reports for d in r["deliveries"] if d["result"] == "delivered")
    say(f"  dispatch: {len(reports)} events published ({STORM_RULES} RuleFailed, 1 WorkflowFailed); each RuleFailed was "
        f"counted in the 2 digest windows (team-slack's, ops-digest's) rather than posted: {digested} counts")  # fmt: skip
    say(f"  delivered at once: {sent} POSTs (" + ", ".join(f"{name} {n}" for name, n in sorted(per_webhook.items()))
        + f"), {held} waiting for a rate-limit slot")  # fmt: skip
    stack.drain_retries(until_empty=180)
    say(f"  team-slack got {len(slack.requests)} messages: " + "; ".join(_slack_line(r) for r in slack.requests))
    times = [r.at for r in paced.requests]
    if times:
        refused = sum(r.answered == 429 for r in paced.requests)
        say(f"  paced-dashboard got {len(paced.successes())} POSTs over {max(times) - min(times):.0f} s, "
            f"at most {most_in_any_second(times)} in any second, {refused} answered 429")  # fmt: skip
    return StormRun(slack, ops, paced)


@dataclass
class LiveRun:
    """The live run: the Discord-like and Slack-like platforms, each message as it is now and every state it went through."""

    discord: DiscordMessages
    slack: SlackWebApi
    rules: int
    failed: tuple[str, ...]


LIVE_TOKEN = "xoxb-0000000000-0000000000-DemoBotTokenNotReal"
LIVE_CHANNEL = "C0DEMO0042"


def live_run(ctx: contextlib.ExitStack, stack: Stack) -> LiveRun:
    """A run watched live: one Discord message and one Slack message that edit themselves as the
    run goes (at most once per live_interval), its failures as replies in the Slack thread."""
    discord, slack = DiscordMessages(), SlackWebApi(LIVE_TOKEN, LIVE_CHANNEL)
    discord_hook = ctx.enter_context(Receiver(discord, "live-discord"))
    slack_api = ctx.enter_context(Receiver(slack, "api"))
    rules, failed = 24, ("qc_sample_07", "qc_sample_19")
    say(f"\na live run: 'qc-panel' run 7, {rules} rules, watched as one message per platform (live = true)")
    stack.put_config(
        "qc-panel",
        f"""[[webhooks]]
id = "lab-discord"
url = "{discord_hook.url}"
format = "discord"
live = true
live_interval = "2s"

[[webhooks]]
id = "lab-slack"
url = "{slack_api.url.rsplit("/", 1)[0]}/api"
format = "slack"
live = true
live_interval = "2s"
channel = "{LIVE_CHANNEL}"
token = "{LIVE_TOKEN}"
""",
    )
    run = {"workflow": "qc-panel", "run_id": "7"}
    stack.publish({**run, "event": "WorkflowStarted", "details": {"total_rules": rules}})
    names = [f"qc_sample_{n:02d}" for n in range(1, rules + 1)]
    for batch in range(4):
        for rule in names[batch * 6 : batch * 6 + 6]:
            stack.publish({**run, "event": "RuleStarted", "rule": rule})
            if rule in failed:
                stack.publish({**run, "event": "RuleFailed", "rule": rule, "details": {"exit_code": 1, "stderr": f"{rule}: @here adapter "
                               "content 41% > 20% <!channel>"}})  # fmt: skip
            else:
                stack.publish({**run, "event": "RuleCompleted", "rule": rule})
        if batch == 3:
            stack.publish({**run, "event": "WorkflowFailed", "message": "2 rules failed"})
        stack.carry_published()
        stack.drain_retries(until_empty=60)
        for message in discord.messages.values():
            say(f"  Discord now shows: {message['embeds'][0]['title']}")
        for message in slack.messages.values():
            say(f"  Slack now shows:   {message['text']}")
    for replies in slack.threads.values():
        for reply in replies:
            say(f"    in its thread: {reply['text'][:90]}")
    edits = sum(len(e) for e in discord.edits.values()) + sum(len(e) for e in slack.edits.values())
    say(f"  {rules * 2 + 2} events made {len(discord.messages)} Discord and {len(slack.messages)} Slack message, {edits} states in all")
    return LiveRun(discord, slack, rules, failed)


@dataclass
class KilledRun:
    """A run killed from outside: what the Slack-like and PagerDuty-like receivers got."""

    slack: Receiver
    pagerduty: Receiver
    incidents: PagerDutyLike


ROUTING_KEY = "DemoRoutingKey000000000000000001"  # 32 letters and digits, as PagerDuty's integration keys


def killed_run(ctx: contextlib.ExitStack, stack: Stack) -> KilledRun:
    """A run that starts, runs three rules and is never heard of again (an out-of-memory kill): the
    webhooks with overdue = "2h" report it at its deadline, on a moved clock (nothing waits two
    hours); the next run of the workflow completes and the incident resolves itself."""
    import time

    from oxolocal.clock import moved_clocks

    say("\na killed run: 'assembly' run 41 starts, runs three rules, then nothing (killed from outside)")
    slack = ctx.enter_context(Receiver(service("slack"), "overdue-slack"))
    incidents = PagerDutyLike()
    pagerduty = ctx.enter_context(Receiver(incidents, "pagerduty"))
    stack.put_config(
        "assembly",
        f"""[[webhooks]]
id = "team-slack"
url = "{slack.url}"
format = "slack"
events = ["WorkflowFailed"]
overdue = "2h"

[[webhooks]]
id = "on-call"
url = "{pagerduty.url}"
format = "pagerduty"
routing_key = "{ROUTING_KEY}"
overdue = "2h"
""",
    )
    offset = [0.0]
    moved_clocks(stack, lambda: time.time() + offset[0])
    stack.publish({"event": "WorkflowStarted", "workflow": "assembly", "run_id": "run-41"})
    for rule in ("spades", "quast", "busco"):
        stack.publish({"event": "RuleCompleted", "workflow": "assembly", "run_id": "run-41", "rule": rule})
    stack.carry_published()
    say("  the functions' clocks moved 2 hours on (the run's overdue deadline passes)")
    offset[0] = 2 * 3600 + 60
    stack.drain_retries()
    for r in slack.requests:
        say(f"  team-slack got: {_slack_line(r)}")
    say(f"  PagerDuty: {incidents.opened} incident opened ({', '.join(f'{k}: {v}' for k, v in incidents.incidents.items())})")
    say("  the next run, 42, starts and completes")
    stack.publish({"event": "WorkflowStarted", "workflow": "assembly", "run_id": "run-42"})
    stack.publish({"event": "WorkflowCompleted", "workflow": "assembly", "run_id": "run-42"})
    stack.carry_published()
    stack.drain_retries()
    say(f"  PagerDuty: {', '.join(f'{k}: {v}' for k, v in incidents.incidents.items())}")
    return KilledRun(slack, pagerduty, incidents)


@dataclass
class LogRun:
    """What the delivery log's commands showed: flaky's delivery, and its redelivery's answer."""

    flaky: dict[str, Any]
    redelivered: dict[str, Any]
    page: Path


def delivery_log(stack: Stack) -> LogRun:
    """The demo's last step, as an operator would take it: the delivery log's commands, run as the
    user runs them (`oxoflow-notify` in a subprocess, the stack's environment)."""
    import os
    import subprocess

    env = {**os.environ, **stack.function_env("RetryFunction"), "DELIVERY_LOG_TABLE": stack.physical["DeliveryLog"]["Ref"]}

    def cli(*args: str, show: bool = True) -> str:
        say(f"  $ oxoflow-notify {' '.join(args)}")
        done = subprocess.run([sys.executable, "-m", "oxoflow_notify.tools.cli", *args], env=env, capture_output=True, text=True,
                              timeout=120, check=False)  # fmt: skip
        for line in (done.stdout + done.stderr if show else done.stderr).splitlines():
            say(f"    {line if len(line) <= 150 else line[:149] + '…'}")
        return done.stdout

    say("\nthe delivery log: what became of each notification (oxoflow-notify deliveries), and one redelivery")
    cli("deliveries", "--workflow", "variant-calling", "--since", "1h", "--limit", "6")
    rows = [json.loads(line) for line in cli("deliveries", "--workflow", "variant-calling", "--webhook", "flaky-dashboard",
                                             "--json").splitlines()]  # fmt: skip
    flaky = rows[0] if rows else {}
    answer = cli("redeliver", str(flaky.get("delivery_id")), "--workflow", "variant-calling")
    page = repo_path(".demo", "deliveries.html")
    cli("deliveries", "--workflow", "variant-calling", "--html", str(page), show=False)
    say(f"  the page: {page.relative_to(repo_path())} (open it in a browser)")
    return LogRun(flaky, json.loads(answer) if answer.strip().startswith("{") else {}, page)


def _slack_line(received: Received) -> str:
    with contextlib.suppress(ValueError, KeyError, TypeError):
        return str(json.loads(received.body)["text"])[:90]
    return "?"


# -- the checks: what must have happened, each a name and a predicate over the run ---------------


@dataclass
class Run:
    """Everything the narrative produced, for the checks to read."""

    stack: Stack
    named: dict[str, Receiver]
    letters: list[dict[str, Any]]
    log: TextIO  # the Lambda log, flushed before a check reads it
    oxoflow: OxoflowRun
    storm: StormRun
    deliveries: LogRun
    killed: KilledRun
    live: LiveRun

    def codes(self) -> list[str]:
        return sorted(letter["reason_code"] for letter in self.letters)

    def log_text(self) -> str:
        self.log.flush()
        return LOG.read_text(encoding="utf-8")


def lims_got_every_sample_signed(run: Run) -> bool:
    lims = run.named["lims"]
    return verified(lims) == 8 and len(lims.requests) == 8


def lims_saw_every_event_type(run: Run) -> bool:
    events_at_lims = sorted(json.loads(r.body)["event"] for r in run.named["lims"].requests)
    return len(set(events_at_lims)) == 8


def slack_bodies_are_complete(run: Run) -> bool:
    return all({"text", "blocks", "attachments"} <= set(json.loads(r.body)) for r in run.named["slack"].requests)


def flaky_got_its_retry(run: Run) -> bool:
    flaky = [r for r in run.named["flaky"].requests if r.header("X-OxoFlow-Redelivery") is None]  # the delivery log's step redelivers
    return [r.answered for r in flaky] == [503, 200] and len({r.header("X-OxoFlow-Delivery") for r in flaky}) == 1


def platform_got_both_workflows(run: Run) -> bool:
    texts = (json.loads(r.body)["text"] for r in run.named["org"].successes())
    return sorted(text.split(":")[1].strip().split(" ")[0] for text in texts) == ["qc-panel", "rnaseq", "variant-calling", "wgs-storm"]


def did_you_mean_in_dead_letter(run: Run) -> bool:
    return any("did you mean 'RuleFailed'" in letter["reason"] for letter in run.letters if letter["reason_code"] == "invalid_webhook")


def broken_config_names_line_and_column(run: Run) -> bool:
    return any(
        "line" in letter["reason"] and "column" in letter["reason"] for letter in run.letters if letter["reason_code"] == "invalid_config"
    )


def every_delivery_over_https(run: Run) -> bool:
    receivers = run.named.values()
    return all(set(r.handshakes) == {"localhost"} for r in receivers) and all(
        got.header("Host") == f"localhost:{r.port}" for r in receivers for got in r.requests
    )


def no_secret_in_dead_letters(run: Run) -> bool:
    return not [
        letter for letter in run.letters if SECRET in json.dumps(letter) or any(r.url in json.dumps(letter) for r in run.named.values())
    ]


def no_secret_in_logs(run: Run) -> bool:
    log_text = run.log_text()
    return all(x not in log_text for x in (SECRET, INGEST_SECRET, OXO_SECRET, "/hook/"))


def ingest_accepted_signed_refused_unsigned(run: Run) -> bool:
    oxo = run.oxoflow
    return [a["statusCode"] for a in oxo.ingest_answers] == [202, 202] and oxo.unsigned["statusCode"] == 401


def oxoflow_receiver_got_it_once(run: Run) -> bool:
    requests = run.oxoflow.receiver.requests
    return [r.answered for r in requests] == [200] and json.loads(requests[0].body)["data"]["failed"] == 1


def storm_reads_as_a_few_slack_messages(run: Run) -> bool:
    got = run.storm.slack.requests
    return 2 <= len(got) <= 4 and all(r.answered == 200 for r in got) and got[-1].header("X-OxoFlow-Event") == "WorkflowFailed"


def storm_digests_count_every_event_once(run: Run) -> bool:
    bodies = [json.loads(r.body) for r in run.storm.ops.requests if r.header("X-OxoFlow-Event") == "Digest"]
    signed = all(r.header("X-Hub-Signature-256") and r.answered == 200 for r in run.storm.ops.requests)
    return signed and sum(b["total"] for b in bodies) == STORM_RULES and all(b["counts"] == {"RuleFailed": b["total"]} for b in bodies)


def paced_webhook_kept_to_its_limit(run: Run) -> bool:
    got = run.storm.paced.requests
    times = [r.at for r in got]
    return len(run.storm.paced.successes()) == STORM_RULES and all(r.answered == 200 for r in got) and \
        most_in_any_second(times) <= STORM_RATE + 1  # fmt: skip


def delivery_log_shows_the_retry_and_redelivers(run: Run) -> bool:
    flaky, last = run.deliveries.flaky, run.named["flaky"].requests[-1]
    return (flaky.get("status"), flaky.get("attempts"), flaky.get("last_status_code")) == ("delivered", 2, 200) and \
        run.deliveries.redelivered.get("result") == "delivered" and last.header("X-OxoFlow-Redelivery") == "true" and \
        last.header("X-OxoFlow-Delivery") == flaky["delivery_id"] and run.deliveries.page.is_file()  # fmt: skip


def killed_run_reported_once_and_resolved(run: Run) -> bool:
    got = [json.loads(r.body) for r in run.killed.slack.requests]
    overdue = [b for b in got if "overdue" in json.dumps(b).lower()]
    return len(got) == 1 and len(overdue) == 1 and run.killed.incidents.opened == 1 and \
        run.killed.incidents.incidents == {"oxoflow-notify/assembly": "resolved"}  # fmt: skip


def live_run_is_one_message_each_with_the_true_totals(run: Run) -> bool:
    live = run.live
    if len(live.discord.messages) != 1 or len(live.slack.messages) != 1:
        return False
    (discord,), (slack,) = live.discord.messages.values(), live.slack.messages.values()
    fields = {f["name"]: f["value"] for f in discord["embeds"][0]["fields"]}
    totals = fields == {
        "Completed": str(live.rules - 2),
        "Failed": "2",
        "Skipped": "0",
        "Started": str(live.rules),
        "Rules": str(live.rules),
    }
    threaded = sorted(r["attachments"][0]["blocks"][1]["fields"][1]["text"].split("\n")[1] for t in live.slack.threads.values() for r in t)
    return totals and "failed" in discord["embeds"][0]["title"] and ":x:" in slack["blocks"][0]["text"]["text"] and \
        threaded == sorted(live.failed) and live.discord.limited == 0 and live.slack.limited == 0  # fmt: skip


CHECKS: list[tuple[str, Callable[[Run], bool]]] = [
    ("lims got all 8 sample events, each with a valid X-Hub-Signature-256", lims_got_every_sample_signed),
    ("lims saw every event type once", lims_saw_every_event_type),
    ("team-slack got the 3 Slack messages it subscribed to", lambda run: len(run.named["slack"].successes()) == 3),
    ("slack bodies carry text, blocks and a coloured attachment", slack_bodies_are_complete),
    (
        "team-teams got 2 Adaptive Cards, answered 202 by a receiver checking Teams' shape",
        lambda run: [r.answered for r in run.named["teams"].requests] == [202] * 2,
    ),
    (
        "team-discord got 2 embeds, answered 204 by a receiver checking Discord's limits",
        lambda run: [r.answered for r in run.named["discord"].requests] == [204] * 2,
    ),
    ("flaky answered 503 once, then got the retry (same delivery id)", flaky_got_its_retry),
    ("platform got the org-wide WorkflowFailed of all four failed workflows from _default.oxoflow", platform_got_both_workflows),
    (
        "404 from the retired endpoint is dead-lettered, not retried",
        lambda run: run.codes().count("permanent_failure") == 1 and len(run.named["gone"].requests) == 1,
    ),
    ("the webhook with an unknown event name is dead-lettered with a did-you-mean", did_you_mean_in_dead_letter),
    ("the broken rnaseq.oxoflow dead-letters its event with line and column", broken_config_names_line_and_column),
    ("both malformed messages are dead-lettered with their reason", lambda run: run.codes().count("invalid_event") == 2),
    ("every delivery went over HTTPS: each handshake's SNI and each request's Host named localhost", every_delivery_over_https),
    ("no secret or webhook URL in any dead letter", no_secret_in_dead_letters),
    ("no secret or webhook URL in the Lambda logs", no_secret_in_logs),
    ("oxo-flow's signed POST was accepted and its unsigned twin refused (401)", ingest_accepted_signed_refused_unsigned),
    (
        "the oxo-flow-style receiver got oxo-flow's payload once, with a valid X-OxoFlow-Signature (retry not re-posted)",
        oxoflow_receiver_got_it_once,
    ),
    (
        f"the {STORM_RULES}-rule storm reached team-slack as its digest(s) and the WorkflowFailed, no 429",
        storm_reads_as_a_few_slack_messages,
    ),
    (f"ops-digest's signed json digests count all {STORM_RULES} failed rules, each once", storm_digests_count_every_event_once),
    (f"paced-dashboard got all {STORM_RULES}, never more than {STORM_RATE} (+1) in a second, no 429", paced_webhook_kept_to_its_limit),
    ("retry queue is empty at the end", lambda run: run.stack.depth(run.stack.retry_queue_url)["visible"] == 0),
    (
        "the live run: one Discord and one Slack message, each ending with its true totals, both failures in the Slack thread",
        live_run_is_one_message_each_with_the_true_totals,
    ),
    (
        "the killed run: one WorkflowOverdue to Slack at its deadline, one PagerDuty incident, resolved by the next run",
        killed_run_reported_once_and_resolved,
    ),
    (
        "the delivery log shows flaky's 503 then 200, and its redelivery arrived marked with the same id",
        delivery_log_shows_the_retry_and_redelivers,
    ),
]


def run_checks(run: Run) -> list[str]:
    """Say each check's result, in order; the names of those that did not hold."""
    say("\nchecks")
    failures: list[str] = []
    for what, holds in CHECKS:
        condition = holds(run)
        say(f"  {'ok  ' if condition else 'FAIL'} {what}")
        if not condition:
            failures.append(what)
    return failures


def main() -> int:
    LOG.parent.mkdir(exist_ok=True)
    with contextlib.ExitStack() as ctx:
        log = ctx.enter_context(open(LOG, "w", encoding="utf-8"))
        ctx.enter_context(contextlib.redirect_stdout(log))  # Lambda's JSON logs and EMF metrics
        stack = start_stack(ctx)
        named = start_receivers(ctx)
        upload_configs(stack, named)
        publish_events(stack)
        letters = dispatch_and_retry(stack)
        show_receivers(named)
        show_signed_delivery(named["lims"])
        show_what_people_see(named)
        show_dead_letters(letters)
        oxoflow = oxoflow_itself(ctx, stack)
        storm = failure_storm(ctx, stack)
        live = live_run(ctx, stack)  # before killed_run: that one moves the functions' clocks
        killed = killed_run(ctx, stack)
        deliveries = delivery_log(stack)
        failures = run_checks(Run(stack, named, letters, log, oxoflow, storm, deliveries, killed, live))  # while the stack still runs

    say(f"\nLambda logs and EMF metrics (JSON lines): {LOG.relative_to(repo_path())}")
    if failures:
        say(f"\ndemo FAILED: {len(failures)} check(s) did not hold")
        return 1
    say("\ndemo passed: every (event, webhook) pair was delivered or dead-lettered with its reason")
    return 0


if __name__ == "__main__":
    sys.exit(main())

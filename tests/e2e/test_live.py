"""One live message per run, end to end: moto in server mode, receivers that emulate Discord's
webhook-message API and Slack's chat.postMessage / chat.update over HTTPS, four dispatcher
instances at once, redelivered events and injected faults. The test asserts what a person in
the channel would see: one message per run, its final state the run's true totals, never an
older state after a newer one, failures in the thread (Slack).

Timing: live_interval = 2 s (the shortest) and the retry queue's real delays; nothing asserts a
time. The receivers enforce their platform's rates on their own arrival times."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from oxoflow_notify.pipeline.dispatch import Published
from oxoflow_notify.wiring import build_notifier
from oxolocal.receivers import DiscordMessages, Receiver, SlackWebApi
from oxolocal.stack import Stack, repo_path

ROOT = repo_path()
TOKEN = "xoxb-1111111111-2222222222-LiveCanaryTokenValue42"
CHANNEL = "C0LIVE00042"
RULES = 250  # 502 events


def config(discord_url: str, slack_url: str) -> str:
    return (
        '[workflow]\nname = "variant-calling"\n\n'
        f'[[webhooks]]\nid = "discord-live"\nurl = "{discord_url}"\nformat = "discord"\nlive = true\nlive_interval = "2s"\n\n'
        f'[[webhooks]]\nid = "slack-live"\nurl = "{slack_url}"\nformat = "slack"\nlive = true\nlive_interval = "2s"\n'
        f'channel = "{CHANNEL}"\ntoken = "{TOKEN}"\n'
    )


def event(kind: str, n: int, run_id: str = "42", **details: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"event": kind, "workflow": "variant-calling", "run_id": run_id, "id": f"evt-{run_id}-{n}",
                            "timestamp": f"2026-12-05T10:{n // 60 % 60:02d}:{n % 60:02d}Z", "message": f"{kind} {n}"}  # fmt: skip
    if kind.startswith("Rule"):
        body["rule"] = f"rule_{n}"
    if kind == "RuleFailed":
        body["details"] = {"exit_code": 3, "stderr": f"error in rule_{n}\n@here <!channel> see logs"}
    if details:
        body["details"] = {**body.get("details", {}), **details}
    return body


def run_events(rules: int, failing: set[int]) -> list[dict[str, Any]]:
    """A run: started (with its total), each rule started and then completed or failed, completed."""
    events = [event("WorkflowStarted", 0, total_rules=rules)]
    for r in range(1, rules + 1):
        events.append(event("RuleStarted", 2 * r))
        events.append(event("RuleFailed" if r in failing else "RuleCompleted", 2 * r + 1))
    events.append(event("WorkflowFailed" if failing else "WorkflowCompleted", 2 * rules + 2))
    return events


class FaultyStore:
    """A live store whose every ``every``-th write fails with DynamoDB's throttling error, after
    the write for ``record`` (the event is counted, its timer not set) and before it for the rest."""

    def __init__(self, store: Any, every: int) -> None:
        self.store, self.every, self.calls, self.faults = store, every, 0, 0
        self._lock = threading.Lock()

    def _fault(self) -> bool:
        with self._lock:
            self.calls += 1
            hit = self.calls % self.every == 0
            self.faults += hit
            return hit

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.store, name)

        def call(*args: Any) -> Any:
            if name == "get":
                return method(*args)
            early = name != "record" and self._fault()
            if early:
                raise throttled()
            result = method(*args)
            if name == "record" and self._fault():
                raise throttled()
            return result

        return call


def throttled() -> Exception:
    from botocore.exceptions import ClientError

    error: Exception = ClientError({"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "injected"}}, "UpdateItem")
    return error


def dispatch_concurrently(
    stack: Stack, events: list[dict[str, Any]], instances: int = 4, redeliver: float = 0.2, fault_every: int | None = None
) -> int:
    """``instances`` dispatcher instances (each its own clients and caches) share the events in
    arrival order; a fifth of them is delivered twice, to another instance (SNS's redelivery). With
    ``fault_every``, every so many live-store writes fail with an AWS fault, and the event is run
    again, as Lambda's retry of an SNS invocation does. Returns how many faults were injected."""
    env = stack.function_env("DispatchFunction")
    notifiers = [build_notifier(env) for _ in range(instances)]
    stores = []
    if fault_every is not None:
        for notifier in notifiers:
            stores.append(FaultyStore(notifier.live.get().store, fault_every))
            notifier.live_store = stores[-1]
    rng = random.Random(7)
    work = [(i % instances, e) for i, e in enumerate(events)]
    work += [((i + 1) % instances, e) for i, e in enumerate(events) if rng.random() < redeliver]
    failures: list[BaseException] = []

    def run(index: int) -> None:
        for owner, body in work:
            if owner != index:
                continue
            published = Published(json.dumps(body), f"sns-{body['id']}", datetime(2026, 12, 5, 10, tzinfo=UTC))
            for _ in range(4):  # Lambda runs an invocation that raised again (an SNS event: twice more; a margin here)
                try:
                    notifiers[index].dispatch([published])
                    break
                except Exception as exc:  # noqa: BLE001 - reported below if every run of it failed
                    error = exc
            else:
                failures.append(error)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(instances)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    return sum(store.faults for store in stores)


def counts_of(fields: list[dict[str, Any]]) -> dict[str, str]:
    return {f["name"]: f["value"] for f in fields}


def slack_counts(message: dict[str, Any]) -> dict[str, str]:
    fields = next(b["fields"] for b in message["attachments"][0]["blocks"] if b["type"] == "section" and "fields" in b)
    return {f["text"].split("\n")[0].strip("*"): f["text"].split("\n")[1] for f in fields}


def done_of(counts: dict[str, str]) -> int:
    return sum(int(counts[k].replace(",", "")) for k in ("Completed", "Failed", "Skipped"))


@pytest.fixture
def platforms(receivers: Callable[..., Receiver]) -> tuple[DiscordMessages, Receiver, SlackWebApi, Receiver]:
    discord, slack = DiscordMessages(), SlackWebApi(TOKEN, CHANNEL)
    return discord, receivers(discord, name="discord"), slack, receivers(slack, name="api")


def test_a_run_carried_by_four_dispatchers_ends_as_one_message_per_platform_with_its_true_totals(
    stack: Stack, platforms: tuple[DiscordMessages, Receiver, SlackWebApi, Receiver]
) -> None:
    # given a live Discord webhook and a live Slack one (2 s interval) on the platforms' emulators
    discord, discord_hook, slack, slack_hook = platforms
    stack.put_config("variant-calling", config(discord_hook.url, slack_hook.url.rsplit("/", 1)[0] + "/api"))
    failing = {7, 30, 99}
    events = run_events(RULES, failing)
    # when four dispatchers carry the run's 502 events at once, some twice, every 9th live-store write
    # fails (the event runs again), and the platforms fail calls (Discord 503 and 429, Slack internal_error and
    # ratelimited; a rate limit waits without spending an attempt)
    discord.fail = {2: 503, 4: 429}
    slack.fail = {3: "internal_error", 5: "ratelimited"}
    faults = dispatch_concurrently(stack, events, fault_every=9)
    stack.drain_retries(until_empty=180)
    assert faults > 50
    # then each platform holds exactly one message for the run
    assert len(discord.messages) == 1 and len(slack.messages) == 1
    (d_id, d_final), (s_ts, s_final) = next(iter(discord.messages.items())), next(iter(slack.messages.items()))
    # and its final state is the run's true totals, failed
    d_counts = counts_of(d_final["embeds"][0]["fields"])
    assert d_counts == {"Completed": str(RULES - 3), "Failed": "3", "Skipped": "0", "Started": str(RULES), "Rules": str(RULES)}
    assert d_final["embeds"][0]["title"].startswith("❌") and "failed" in d_final["embeds"][0]["title"]
    assert slack_counts(s_final) == d_counts and ":x:" in s_final["blocks"][0]["text"]["text"]
    # and no edit ever showed fewer rules done than one before it
    for history in (discord.edits[d_id], slack.edits[s_ts]):
        done = [done_of(counts_of(m["embeds"][0]["fields"]) if "embeds" in m else slack_counts(m)) for m in history]
        assert done == sorted(done) and done[-1] == RULES
    # and the three failures are replies in the Slack message's thread, neutralised
    replies = slack.threads[s_ts]
    assert sorted(r["attachments"][0]["blocks"][0]["text"]["text"] for r in replies) == sorted(f"RuleFailed {n}" for n in (15, 61, 199))
    assert all("<!channel>" not in json.dumps(r) for r in replies)
    # and nothing was refused for its rate, nothing dead-lettered, and the token never left its header
    assert discord.limited == 0 and slack.limited == 0
    assert stack.drain(stack.dead_letter_queue_url) == []
    assert all(TOKEN not in json.dumps(m) for m in slack.messages.values())


def dispatch_in_order(stack: Stack, events: list[dict[str, Any]]) -> None:
    for body in events:
        sns = {"MessageId": f"sns-{body['id']}", "Message": json.dumps(body), "Timestamp": "2026-12-05T10:00:00.000Z",
               "MessageAttributes": {}}  # fmt: skip
        stack.invoke("DispatchFunction", {"Records": [{"EventSource": "aws:sns", "Sns": sns}]})


def test_a_message_deleted_mid_run_is_posted_anew_once_and_ends_with_the_true_totals(
    stack: Stack, platforms: tuple[DiscordMessages, Receiver, SlackWebApi, Receiver]
) -> None:
    # given a run's live messages posted on both platforms
    discord, discord_hook, slack, slack_hook = platforms
    stack.put_config("variant-calling", config(discord_hook.url, slack_hook.url.rsplit("/", 1)[0] + "/api"))
    events = run_events(12, {5})
    dispatch_in_order(stack, events[:10])
    stack.drain_retries(until_empty=60)
    (first_d,), (first_s,) = list(discord.messages), list(slack.messages)
    # when someone deletes both mid-run, and the run goes on
    discord.delete(first_d)
    slack.delete(first_s)
    dispatch_in_order(stack, events[10:])
    stack.drain_retries(until_empty=60)
    # then each platform holds one new message (posted once more), showing the run's true totals
    (second_d, final_d), (second_s, final_s) = next(iter(discord.messages.items())), next(iter(slack.messages.items()))
    assert second_d != first_d and second_s != first_s
    assert len(discord.edits) == 2 and len(slack.edits) == 2  # the deleted message and its one replacement
    expected = {"Completed": "11", "Failed": "1", "Skipped": "0", "Started": "12", "Rules": "12"}
    assert counts_of(final_d["embeds"][0]["fields"]) == expected and slack_counts(final_s) == expected
    assert stack.drain(stack.dead_letter_queue_url) == []


def test_a_permanent_refusal_is_one_dead_letter_and_replay_resumes_the_message(
    stack: Stack, platforms: tuple[DiscordMessages, Receiver, SlackWebApi, Receiver]
) -> None:
    # given a live Slack webhook whose bot is not in its channel (Slack: HTTP 200, ok false, not_in_channel)
    _, discord_hook, slack, slack_hook = platforms
    stack.put_config("variant-calling", config(discord_hook.url, slack_hook.url.rsplit("/", 1)[0] + "/api"))
    slack.fail = {n: "not_in_channel" for n in range(6)}
    events = run_events(4, set())
    # when the run goes by
    dispatch_in_order(stack, events)
    stack.drain_retries(until_empty=60)
    # then its updates stopped at the first refusal: one dead letter, named and replayable, nothing retried
    letters = stack.drain(stack.dead_letter_queue_url)
    assert [(letter["reason_code"], letter["webhook"]["id"]) for letter in letters] == [("live_failed", "slack-live")]
    assert letters[0]["reason"].startswith("Slack: not_in_channel") and "replay" in letters[0]["reason"]
    assert len(slack.messages) == 0 and len(slack_hook.requests) == 1
    assert TOKEN not in json.dumps(letters)
    # when the bot is invited and the letter replayed (sent back to the queue as replay finds it)
    slack.fail = {}
    stack.sqs.send_message(QueueUrl=stack.dead_letter_queue_url, MessageBody=json.dumps(letters[0]))
    env = {**os.environ, **stack.function_env("RetryFunction")}
    replay = subprocess.run([sys.executable, "scripts/replay.py", "--reason", "live_failed"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=120, check=False)  # fmt: skip
    assert replay.returncode == 0, replay.stderr
    stack.drain_retries(until_empty=60)
    # then the message is posted with the run's state as it is: completed, every rule done
    (final,) = slack.messages.values()
    assert slack_counts(final)["Completed"] == "4" and ":white_check_mark:" in final["blocks"][0]["text"]["text"]
    assert TOKEN not in replay.stdout + replay.stderr
    # and the delivery log shows the live message as one delivery: refused, then delivered; never the token
    env["DELIVERY_LOG_TABLE"] = stack.physical["DeliveryLog"]["Ref"]
    shown = subprocess.run([sys.executable, "-m", "oxoflow_notify.tools.cli", "deliveries", "--workflow", "variant-calling",
                            "--webhook", "slack-live", "--json"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
                           check=False)  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    (row,) = [json.loads(line) for line in shown.stdout.splitlines()]
    assert (row["event"], row["status"], row["run_id"]) == ("LiveMessage", "delivered", "42")
    detail = subprocess.run([sys.executable, "-m", "oxoflow_notify.tools.cli", "deliveries", "show", row["delivery_id"], "--workflow",
                             "variant-calling"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert "dead_lettered" in detail.stdout and "Slack: not_in_channel" in detail.stdout and "delivered" in detail.stdout
    assert TOKEN not in shown.stdout + detail.stdout + detail.stderr

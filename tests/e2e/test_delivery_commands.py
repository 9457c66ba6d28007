"""`oxoflow-notify deliveries`, `deliveries show`, `redeliver`, `endpoints` and `--html`, run as a
user runs them (subprocesses, the functions' environment) against the moto server and HTTPS
receivers: what they print is what the log holds, a redelivery arrives marked and verifiable, and
no secret, secret URL or configured header value appears in anything they print, in any encoding."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from oxolocal.receivers import Answer, Receiver, always, fail_first, ok
from oxolocal.stack import Stack
from tests.conftest import ROOT, require_tool

SECRET = "canary-secret-5b1e7d"
HEADER = "Bearer canary-header-0c9f"
TOKEN = "canary-url-token-a41f"  # the secret part of a webhook URL (as Slack's and Discord's are)
REQUIRED = {"delivery_id", "event_id", "event", "workflow", "run_id", "webhook_id", "status", "attempts", "last_status_code",
            "reason", "first_attempt_at", "last_attempt_at", "next_attempt_at"}  # fmt: skip


def forms(secret: str) -> list[str]:
    """A value as it could leak: plain, percent-encoded, JSON-escaped, base64."""
    return [secret, urllib.parse.quote(secret, safe=""), json.dumps(secret)[1:-1], base64.b64encode(secret.encode()).decode()]


def cli(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **stack.function_env("RetryFunction"), "DELIVERY_LOG_TABLE": stack.physical["DeliveryLog"]["Ref"]}
    return subprocess.run([sys.executable, "-m", "oxoflow_notify.tools.cli", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120, check=False)  # fmt: skip


def publish(stack: Stack, event: dict[str, Any]) -> None:
    stack.publish(json.dumps(event))
    stack.carry_published()
    stack.drain_retries()


def test_the_delivery_commands_show_what_happened_and_redeliver_without_leaking(
    stack: Stack, receivers: Callable[..., Receiver], tmp_path: Path
) -> None:
    # given a webhook with a secret, a credential header and a secret URL that fails once then
    # answers 200, and one that answers 404
    flaky, gone = receivers(fail_first(1, 503)), receivers(always(404))
    lab_entry = f'[[webhooks]]\nid = "lab"\nurl = "{flaky.url}/{TOKEN}"\nsecret = "{SECRET}"\nheaders = {{ Authorization = "{HEADER}" }}\n'
    stack.put_config("variant-calling", f'{lab_entry}\n[[webhooks]]\nid = "old"\nurl = "{gone.url}"\n')
    publish(stack, {"event": "WorkflowFailed", "workflow": "variant-calling", "run_id": "run-42", "message": "failed"})
    outputs: list[str] = []

    def run(*args: str, code: int = 0) -> str:
        done = cli(stack, *args)
        outputs.append(done.stdout + done.stderr)
        assert done.returncode == code, done.stdout + done.stderr
        return done.stdout

    # when the user lists the workflow's deliveries as JSON lines
    rows = {r["webhook_id"]: r for r in map(json.loads, run("deliveries", "--workflow", "variant-calling", "--json").splitlines())}
    # then each delivery is one row with every documented field, as the receivers saw it
    lab, old = rows["lab"], rows["old"]
    assert set(lab) >= REQUIRED and set(old) >= REQUIRED
    assert (lab["status"], lab["attempts"], lab["last_status_code"], lab["run_id"]) == ("delivered", 2, 200, "run-42")
    assert (old["status"], old["last_status_code"]) == ("dead", 404) and "HTTP 404" in old["reason"]
    assert lab["delivery_id"] == flaky.requests[0].header("X-OxoFlow-Delivery")
    # and the filters narrow it
    dead = [json.loads(x) for x in run("deliveries", "--workflow", "variant-calling", "--status", "dead", "--json").splitlines()]
    assert [r["webhook_id"] for r in dead] == ["old"]
    assert "lab" in run("deliveries", "--workflow", "variant-calling") and "old" in run("deliveries")  # the table; a scan
    # and show lists each attempt and the request as sent, the body byte for byte
    shown = run("deliveries", "show", lab["delivery_id"], "--workflow", "variant-calling")
    assert "#1" in shown and "503" in shown and "#2" in shown and "200" in shown
    assert flaky.requests[1].body.decode() in shown and "Authorization: (set by the webhook's config: not shown)" in shown
    # when it is redelivered
    answer = json.loads(run("redeliver", lab["delivery_id"], "--workflow", "variant-calling"))
    # then it arrives again with its delivery id, marked, signed with the webhook's secret
    again = flaky.requests[-1]
    assert answer["result"] == "delivered" and len(flaky.requests) == 3
    assert again.header("X-OxoFlow-Delivery") == lab["delivery_id"] and again.header("X-OxoFlow-Redelivery") == "true"
    assert again.header("X-Hub-Signature-256") == "sha256=" + hmac.new(SECRET.encode(), again.body, hashlib.sha256).hexdigest()
    assert "(redelivery)" in run("deliveries", "show", lab["delivery_id"])
    # and endpoints reads the webhooks' health; the html page is written
    health = {r["webhook_id"]: r for r in map(json.loads, run("endpoints", "--workflow", "variant-calling", "--json").splitlines())}
    assert health["lab"]["state"] == "healthy" and health["old"]["state"] == "failing" and health["old"]["failing_since"]
    page = tmp_path / "deliveries.html"
    run("deliveries", "--workflow", "variant-calling", "--html", str(page))
    outputs.append(page.read_text(encoding="utf-8"))
    # and nothing any command printed (or the page) holds the secret, the URL's token or the header's value
    printed = "\n".join(outputs)
    for secret in (SECRET, HEADER, TOKEN):
        assert not [f for f in forms(secret) if f in printed], secret
    assert flaky.url not in printed and gone.url not in printed


def test_the_page_renders_in_headless_chromium_with_no_console_error(stack: Stack, receivers: Callable[..., Receiver],
                                                                    tmp_path: Path) -> None:  # fmt: skip
    chromium = require_tool("chromium")
    # given deliveries of every outcome, one with a hostile reason
    hostile = receivers(lambda n, r: Answer(400, b"<script>console.error('xss')</script>"))
    stack.put_config("variant-calling", f'[[webhooks]]\nid = "bad"\nurl = "{hostile.url}"\n\n'
                                        f'[[webhooks]]\nid = "good"\nurl = "{receivers(ok()).url}"\n')  # fmt: skip
    publish(stack, {"event": "RuleFailed", "workflow": "variant-calling", "rule": "align", "message": "<b>m</b>"})
    page = tmp_path / "deliveries.html"
    assert cli(stack, "deliveries", "--html", str(page)).returncode == 0
    # when headless Chromium opens it
    done = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0",
                           "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    # then it rendered both webhooks, the failing first, and logged no console message at all (the
    # receiver's script is text, not code)
    assert done.returncode == 0, done.stderr[-2000:]
    dom = done.stdout
    assert dom.index("variant-calling / bad") < dom.index("variant-calling / good")
    assert "&lt;script&gt;" in dom and "<script>" not in dom
    assert "CONSOLE" not in done.stderr, done.stderr[-2000:]

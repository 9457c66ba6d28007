"""What a cold start pays for: a fresh process that imports the dispatch handler as Lambda does and
delivers one plain event imports nothing a plain delivery does not use (issue #21, point 9).

Digests, rate limits, SSM / Secrets Manager references and the CLI's tools are each built and
imported on the first event that needs them (``oxoflow_notify.lazy.Lazy``); these tests run the
handler in a new interpreter, as Lambda's first invocation does, and read what it loaded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from oxolocal.cold import COUNTING_CLIENTS, LOAD_HANDLER
from oxolocal.receivers import Receiver, ok
from oxolocal.stack import Stack, sns_event

ROOT = Path(__file__).resolve().parents[2]

# Loads functions/dispatch/app.py as Lambda would (layer and code dirs on the path), counting the
# boto3 clients made, delivers the event in argv[1] and prints what was delivered and loaded.
COLD = (
    COUNTING_CLIENTS
    + LOAD_HANDLER
    + """
result = app.lambda_handler(json.loads(sys.argv[1]), Context())
print(json.dumps({"result": result, "clients": made, "modules": sorted(sys.modules)}))
"""
)

# What a plain delivery never needs: digest windows, rate-limit slots, live messages, reference resolution, the CLI.
NEVER = (
    "oxoflow_notify.pipeline.live",
    "oxoflow_notify.pipeline.live_answers",
    "oxoflow_notify.pipeline.live_state",
    "oxoflow_notify.aws.live_table",
    "oxoflow_notify.formats.live",
    "oxoflow_notify.outbound.live_calls",
    "oxoflow_notify.pipeline.digest",
    "oxoflow_notify.pipeline.windows",
    "oxoflow_notify.pipeline.pacing",
    "oxoflow_notify.aws.windows_table",
    "oxoflow_notify.aws.pacing_table",
    "oxoflow_notify.formats.digest_common",
    "aws_lambda_powertools.utilities.parameters",
)


def hooks(url: str, extra: str = "") -> str:
    return f'[workflow]\nname = "variant-calling"\n\n[[webhooks]]\nid = "h0"\nurl = "{url}"\n{extra}\n'


def published(stack: Stack, message: dict[str, Any]) -> dict[str, Any]:
    """The SNS record Lambda would get for ``message``, published through the stack's topic."""
    stack.publish(message)
    (body,) = [m["Body"] for m in stack.receive(stack.tap_url)]
    return sns_event(json.loads(body))


def cold_delivery(stack: Stack, message: dict[str, Any], overrides: dict[str, str] | None = None) -> dict[str, Any]:
    """``message`` delivered by a fresh interpreter running the dispatch handler: what it returned and loaded."""
    event = published(stack, message)
    env = {**os.environ, **stack.function_env("DispatchFunction", overrides), "POWERTOOLS_METRICS_DISABLED": "true"}
    layer, code = str(ROOT / "layers" / "notify"), str(ROOT / "functions" / "dispatch")
    done = subprocess.run(
        [sys.executable, "-c", COLD, json.dumps(event), layer, code], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    answer: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return answer


@pytest.mark.parametrize("ledger", ["with the ledger", "without DynamoDB tables"])
def test_a_cold_start_that_delivers_one_plain_event_loads_only_what_it_used(
    stack: Stack, receivers: Callable[..., Receiver], ledger: str
) -> None:
    # given a workflow with one plain webhook (no digest, no rate limit, no secret references)
    hook = receivers(ok())
    stack.put_config("variant-calling", hooks(hook.url))
    # when a fresh process imports the dispatch handler and delivers one event
    overrides = {} if ledger == "with the ledger" else {"LEDGER_TABLE": "", "DELIVERY_LOG_TABLE": ""}
    cold = cold_delivery(stack, {"event": "WorkflowStarted", "workflow": "variant-calling"}, overrides)
    # then the event arrived
    assert cold["result"]["delivered"] == 1 and len(hook.requests) == 1
    # and nothing for digests, rate limits, references or the CLI was imported
    loaded = set(cold["modules"])
    assert [m for m in NEVER if m in loaded] == []
    assert sorted(m for m in loaded if m.startswith("oxoflow_notify.tools")) == []
    assert "difflib" not in loaded  # only a mistake's did-you-mean asks for it
    if ledger != "with the ledger":  # nor the tables' stores (ledger, hand-off log, endpoints, delivery log) when there are none
        tables = ("ledger_table", "handoff_table", "endpoints_table", "delivery_log_table")
        assert {f"oxoflow_notify.aws.{m}" for m in tables}.isdisjoint(loaded)
    # and no SSM or Secrets Manager client was made, nor SQS (no retry was needed)
    # (the delivery log writes through a DynamoDB client of its own, with tighter timeouts: wiring._LOG_BOTO)
    assert sorted(cold["clients"]) == (["dynamodb", "dynamodb", "s3"] if ledger == "with the ledger" else ["s3"])


def test_a_digest_webhook_loads_the_digest_code_on_its_first_event(stack: Stack, receivers: Callable[..., Receiver]) -> None:
    # given a workflow whose webhook takes digests (the counter-check: the cold test would see it)
    hook = receivers(ok())
    stack.put_config("variant-calling", hooks(hook.url, 'digest = "15m"'))
    # when a fresh process delivers a rule event to it
    cold = cold_delivery(stack, {"event": "RuleFailed", "workflow": "variant-calling", "rule": "bwa_mem"})
    # then the event joined a window, and the windows' store and its module were loaded for it
    assert cold["result"]["delivered"] == 0 and hook.requests == []
    assert {"oxoflow_notify.pipeline.windows", "oxoflow_notify.aws.windows_table"} <= set(cold["modules"])


def test_a_live_webhook_loads_the_live_code_on_its_first_event(stack: Stack, receivers: Callable[..., Receiver]) -> None:
    # given a workflow whose webhook is a live Discord message (the counter-check for NEVER's live modules)
    hook = receivers(ok())
    stack.put_config("variant-calling", hooks(hook.url, 'format = "discord"\nlive = true'))
    # when a fresh process handles a rule event of a run
    cold = cold_delivery(stack, {"event": "RuleFailed", "workflow": "variant-calling", "rule": "bwa_mem", "run_id": "7"})
    # then the event was counted in the run's message (its edit comes on the timer), and the live code loaded for it
    assert cold["result"]["delivered"] == 0 and hook.requests == []
    assert {"oxoflow_notify.pipeline.live", "oxoflow_notify.aws.live_table"} <= set(cold["modules"])

"""The delivery log: what each attempt came to, written by the functions and read back as the
command line reads it (moto server's DynamoDB, HTTPS receivers on loopback)."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Any

from oxoflow_notify.aws.delivery_log_table import DeliveryLogReader
from oxoflow_notify.tools.deliveries import fold, kept_event, rendered_body
from oxoflow_notify.tools.replay import Filters, replay
from oxolocal.receivers import Receiver, always, fail_first, ok
from oxolocal.stack import Stack
from tests.conftest import sns_event

SECRET = "log-canary-secret-9f3a"
HEADER_VALUE = "Bearer header-canary-77c1"


def config(*hooks: str) -> str:
    return '[workflow]\nname = "variant-calling"\n\n' + "\n".join(f"[[webhooks]]\n{h}\n" for h in hooks)


def reader(stack: Stack) -> DeliveryLogReader:
    return DeliveryLogReader(stack.dynamodb, stack.physical["DeliveryLog"]["Ref"])


def test_a_failing_then_succeeding_delivery_shows_its_attempts_in_order(stack: Stack, receivers: Callable[..., Receiver]) -> None:
    # given a webhook that answers 503 once, then 200, with a secret and a configured header
    flaky = receivers(fail_first(1, 503))
    stack.put_config("variant-calling", config(f'id = "lims"\nurl = "{flaky.url}"\nsecret = "{SECRET}"\n'
                                               f'headers = {{ Authorization = "{HEADER_VALUE}" }}'))  # fmt: skip
    # when the event is dispatched and its retry handled
    stack.invoke("DispatchFunction", sns_event("rule-failed"))
    stack.drain_retries()
    # then the log holds one delivery: attempt 1 retrying (503, its next attempt's time), attempt 2 delivered
    entries = list(reader(stack).recent("variant-calling", 0, {}))
    (delivery,) = fold(entries)
    first, second = delivery.entries
    assert (first["attempt"], first["outcome"], first["status"]) == (1, "retrying", 503) and first["next_attempt_at"] >= first["at"]
    assert (second["attempt"], second["outcome"], second["status"]) == (2, "delivered", 200)
    row = delivery.row()
    assert row["status"] == "delivered" and row["attempts"] == 2 and row["last_status_code"] == 200
    assert row["delivery_id"] == flaky.requests[0].header("X-OxoFlow-Delivery") and row["webhook_id"] == "lims"
    # and the request as the log shows it is what arrived: our headers with their values, the configured one by name only
    assert second["headers"]["X-OxoFlow-Attempt"] == "2" and "not shown" in second["headers"]["Authorization"]
    assert rendered_body(delivery) == flaky.requests[0].body.decode()
    # and no secret, secret URL or configured header value is in any entry
    text = json.dumps(entries)
    assert SECRET not in text and HEADER_VALUE not in text and flaky.url not in text and f":{flaky.port}" not in text
    # and the delivery's attempts are one query on its key, in order
    assert [e["attempt"] for e in reader(stack).attempts(row["delivery_id"], "variant-calling")] == [1, 2]


def test_a_dead_lettered_delivery_keeps_its_reason(stack: Stack, receivers: Callable[..., Receiver]) -> None:
    gone = receivers(always(404))
    stack.put_config("variant-calling", config(f'id = "old"\nurl = "{gone.url}"'))
    stack.invoke("DispatchFunction", sns_event("rule-failed"))
    (delivery,) = fold(reader(stack).recent("variant-calling", 0, {}))
    row = delivery.row()
    assert row["status"] == "dead" and row["last_status_code"] == 404 and "HTTP 404" in row["reason"]
    assert delivery.matches("failed") and delivery.matches("dead") and not delivery.matches("pending")


def test_redeliver_posts_a_delivered_delivery_again_with_its_id_and_the_mark(stack: Stack, receivers: Callable[..., Receiver]) -> None:
    # given a delivery that got its 2xx
    hook = receivers(ok())
    stack.put_config("variant-calling", config(f'id = "lims"\nurl = "{hook.url}"\nsecret = "{SECRET}"'))
    stack.invoke("DispatchFunction", sns_event("rule-failed"))
    (delivery,) = fold(reader(stack).recent("variant-calling", 0, {}))
    event: Any = kept_event(delivery.entries)
    # when an operator redelivers it
    notifier = stack.modules["DispatchFunction"].notifier
    kind, reason = notifier.redeliver(event, "workflows/variant-calling.oxoflow", "lims", delivery.last["delivery_id"], 2)
    # then it arrives again, same delivery id and body, marked, signed (checked independently)
    assert kind.value == "delivered", reason
    first, again = hook.requests
    assert again.header("X-OxoFlow-Delivery") == first.header("X-OxoFlow-Delivery") and again.header("X-OxoFlow-Redelivery") == "true"
    assert again.body == first.body and again.header("X-OxoFlow-Attempt") == "2"
    expected = "sha256=" + hmac.new(SECRET.encode(), again.body, hashlib.sha256).hexdigest()
    assert again.header("X-Hub-Signature-256") == expected
    # and the log shows the redelivery as its own attempt
    (after,) = fold(reader(stack).recent("variant-calling", 0, {}))
    assert [(e["attempt"], e["outcome"], e.get("redelivery")) for e in after.entries] == [(1, "delivered", None), (2, "delivered", True)]


def test_a_replayed_dead_letter_is_an_attempt_in_the_log(stack: Stack, receivers: Callable[..., Receiver]) -> None:
    # given a delivery dead-lettered after a 404 (a wrong URL), then the URL fixed
    gone, fixed = receivers(always(404)), receivers(ok())
    stack.put_config("variant-calling", config(f'id = "lims"\nurl = "{gone.url}"'))
    stack.invoke("DispatchFunction", sns_event("rule-failed"))
    stack.put_config("variant-calling", config(f'id = "lims"\nurl = "{fixed.url}"'))
    # when the operator replays the dead-letter queue
    notifier = stack.modules["DispatchFunction"].notifier
    notifier.store.clock = lambda: 10**10  # the fixed file read at once (as replay's own process would)
    summary = replay(notifier, stack.sqs, stack.dead_letter_queue_url, Filters(workflow="variant-calling"))
    assert [row[2] for row in summary.rows] == ["delivered"] and len(fixed.requests) == 1
    # then the log shows the delivery delivered, its replay the second attempt, as `deliveries` and `endpoints` read it
    (delivery,) = fold(reader(stack).recent("variant-calling", 0, {}))
    assert [(e["attempt"], e["outcome"], e["status"]) for e in delivery.entries] == [(1, "dead_lettered", 404), (2, "delivered", 200)]
    assert delivery.row()["status"] == "delivered" and delivery.row()["attempts"] == 2


def test_a_teams_query_reads_its_workflow_only_and_is_keyed_for_leading_keys(stack: Stack, receivers: Callable[..., Receiver]) -> None:
    import re

    from tests.conftest import ROOT, message

    # given deliveries of two teams' workflows
    hook = receivers(ok())
    for workflow in ("variant-calling", "rna-seq"):
        stack.put_config(workflow, f'[workflow]\nname = "{workflow}"\n\n[[webhooks]]\nid = "hook"\nurl = "{hook.url}"\n')
        body = {**message("rule-failed"), "workflow": workflow}
        sns = {"MessageId": f"m-{workflow}", "Message": json.dumps(body), "Timestamp": "2026-05-18T12:00:00.000Z", "MessageAttributes": {}}
        stack.invoke("DispatchFunction", {"Records": [{"EventSource": "aws:sns", "Sns": sns}]})
    # when one team reads its workflow, through a client that records what it asks DynamoDB
    asked: list[dict[str, Any]] = []
    stack.dynamodb.meta.events.register("provide-client-params.dynamodb.*", lambda params, **kw: asked.append(dict(params)))
    log = reader(stack)
    mine = list(log.recent("rna-seq", 0, {}))
    one = log.attempts(mine[0]["delivery_id"], "rna-seq")
    # then it got its own entries only, by queries whose partition key is its workflow: what an IAM
    # policy's dynamodb:LeadingKeys condition is checked against (no scan, nothing else read)
    assert {e["workflow"] for e in mine} == {"rna-seq"} and [e["workflow"] for e in one] == ["rna-seq"]
    assert asked and all(
        p["KeyConditionExpression"].startswith("workflow = :w") and p["ExpressionAttributeValues"][":w"] == {"S": "rna-seq"} for p in asked
    )
    # and the policy docs/security.md gives a team is that condition, on the table and its index
    doc = (ROOT / "docs" / "security.md").read_text(encoding="utf-8")
    policy = json.loads(re.search(r"### Reading the delivery log.*?```json\n(.*?)```", doc, re.S).group(1))  # type: ignore[union-attr]
    (statement,) = policy["Statement"]
    assert set(statement["Action"]) == {"dynamodb:Query", "dynamodb:GetItem"}
    assert statement["Condition"]["ForAllValues:StringEquals"]["dynamodb:LeadingKeys"]
    assert any(r.endswith("/index/by_time") for r in statement["Resource"]) and len(statement["Resource"]) == 2

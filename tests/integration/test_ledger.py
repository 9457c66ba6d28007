"""The delivery ledger's edge cases against DynamoDB (mock_aws): claims in progress, crashed claims, no table."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from moto import mock_aws

from oxoflow_notify.aws.ledger_table import IdempotencyLedger, _Budget
from oxoflow_notify.config import Webhook
from oxoflow_notify.inbound.events import parse_event
from oxoflow_notify.outbound.delivery import Outcome, Prepared, prepare
from oxoflow_notify.outbound.failures import Failure

EVENT = parse_event('{"event": "WorkflowFailed", "workflow": "variant-calling"}', message_id="m-1", received_at=datetime.now(UTC))


@pytest.fixture
def dynamodb(restore_environ: None) -> Iterator[Any]:
    import os

    os.environ.update({"AWS_ACCESS_KEY_ID": "t", "AWS_SECRET_ACCESS_KEY": "t", "AWS_DEFAULT_REGION": "us-east-1"})
    os.environ.pop("AWS_ENDPOINT_URL", None)
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName="ledger",
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        )
        yield client


def two_xx(outcome: Outcome) -> bool:
    """What the ledger records: a 2xx (the notifier passes answers.delivered)."""
    return outcome.status is not None and 200 <= outcome.status < 300


def delivery(delivery_id: str = "d-1") -> Prepared:
    return prepare(EVENT, Webhook("h0", "https://hooks.example.org/x", "json", None, (), "workflows/x.oxoflow", 1), delivery_id, 1)


def answered(status: int) -> Any:
    calls: list[Prepared] = []

    def send(p: Prepared) -> Outcome:
        calls.append(p)
        return Outcome(status, None, 1.0)

    send.calls = calls  # type: ignore[attr-defined]
    return send


def test_a_second_run_during_the_first_is_told_to_come_back_later(dynamodb: Any) -> None:
    # given a ledger, and a POST during which a second run tries the same delivery
    ledger = IdempotencyLedger("ledger", 86400, lambda: dynamodb)
    inner: list[Outcome] = []

    def send(p: Prepared) -> Outcome:
        inner.append(ledger.once(p, lambda _: pytest.fail("posted twice at once"), two_xx))
        return Outcome(200, None, 1.0)

    # when the first run posts
    outer = ledger.once(delivery(), send, two_xx)
    # then the first run delivered, the second was refused as in progress (a retryable outcome)
    assert outer.status == 200 and outer.error is None
    (second,) = inner
    assert second.error == Failure.IN_PROGRESS
    # and afterwards the delivery is recorded as done
    again = answered(200)
    assert ledger.once(delivery(), again, two_xx).error == Failure.ALREADY_DELIVERED and again.calls == []


def test_a_claim_left_by_a_crashed_run_frees_itself_when_that_runs_time_is_up(dynamodb: Any) -> None:
    # given a run with almost no time left that dies mid-POST (not an exception it could clean up after)
    ledger = IdempotencyLedger("ledger", 86400, lambda: dynamodb)
    ledger.register(_Budget(50))

    def killed(p: Prepared) -> Outcome:
        raise SystemExit("the sandbox was torn down")

    with pytest.raises(SystemExit):
        ledger.once(delivery(), killed, two_xx)
    assert dynamodb.scan(TableName="ledger")["Items"][0]["status"]["S"] == "INPROGRESS"
    # when the next run comes after that time
    time.sleep(0.1)
    send = answered(200)
    outcome = ledger.once(delivery(), send, two_xx)
    # then it posts (the crash window: receivers dedupe on X-OxoFlow-Delivery) and records it
    assert outcome.status == 200 and len(send.calls) == 1
    assert dynamodb.scan(TableName="ledger")["Items"][0]["status"]["S"] == "COMPLETED"


def test_a_failed_answer_is_not_recorded(dynamodb: Any) -> None:
    ledger = IdempotencyLedger("ledger", 86400, lambda: dynamodb)
    outcome = ledger.once(delivery(), answered(503), two_xx)
    assert outcome.status == 503
    assert dynamodb.scan(TableName="ledger")["Items"] == []


def test_without_its_table_the_ledger_posts_anyway_and_says_so(dynamodb: Any, caplog: pytest.LogCaptureFixture) -> None:
    # given a ledger whose table does not exist (a deployment without the template's table)
    ledger = IdempotencyLedger("no-such-table", 86400, lambda: dynamodb)
    send = answered(200)
    # when a delivery goes through it
    outcome = ledger.once(delivery(), send, two_xx)
    # then the notification is not held back (there is no ledger to wait for), and the log names the trouble, not the URL
    assert outcome.status == 200 and len(send.calls) == 1
    assert "delivery ledger table missing" in caplog.text
    assert "hooks.example.org" not in caplog.text


class _Throttled:
    """A DynamoDB client whose every call is throttled (what a ledger under a DynamoDB fault sees)."""

    def __getattr__(self, name: str) -> Any:
        from botocore.exceptions import ClientError

        def call(*args: Any, **kwargs: Any) -> Any:
            raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, name)

        return call


def test_a_ledger_that_does_not_answer_holds_the_delivery_rather_than_post_it_unrecorded(caplog: pytest.LogCaptureFixture) -> None:
    # given a ledger whose table is throttled: a POST now could not be recorded, and a re-run would post it again
    ledger = IdempotencyLedger("ledger", 86400, _Throttled)
    send = answered(200)
    # when a delivery goes through it
    outcome = ledger.once(delivery(), send, two_xx)
    # then nothing is posted: the delivery is held (no attempt spent) until the ledger answers
    assert send.calls == [] and outcome.error == Failure.LEDGER_UNAVAILABLE
    assert "delivery ledger unavailable, delivery held" in caplog.text

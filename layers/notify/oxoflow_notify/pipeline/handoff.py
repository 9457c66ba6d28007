"""The hand-off log: each attempt of a delivery is posted, and its successor queued, at most once.

SQS standard queues and SNS deliver at least once, and a retry function that dies mid-batch gets
its whole batch back. Without a record, every re-run of attempt N posts it again and queues
attempt N+1 again, and the delivery splits into two retry chains. The ledger (``ledger``) only
stops a delivery that already got a 2xx; this log covers the failed attempts, on the same table:

- before posting attempt N, the run reads the attempt's mark (one consistent BatchGetItem for the
  whole fan-out or retry batch);
- after a failed POST it writes the outcome (``posted``), conditionally, before acting on it;
- after queueing the successor or writing the dead letter it marks the attempt ``handed``.

A re-run that finds ``handed`` does nothing; one that finds ``posted`` (the first run died between
the answer and the hand-off) hands the recorded outcome on without posting again. Two copies of a
successor collapse at the next attempt the same way. What stays open is the moment between a
receiver's answer and the ``posted`` write, as for every sender.

If the table cannot be reached, the attempt goes ahead (logged): a possible repeat beats a
delivery held back.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from oxoflow_notify.aws.dynamo import OnTable, error_code
from oxoflow_notify.aws.observability import logger
from oxoflow_notify.outbound.delivery import Outcome

POSTED = "posted"
HANDED = "handed"
_PREFIX = "oxoflow-attempt"


@dataclass(frozen=True)
class Mark:
    state: str  # POSTED or HANDED
    outcome: Outcome | None  # the recorded outcome of a POSTED attempt


Key = tuple[str, int]  # (delivery id, attempt number)


class HandoffLog(Protocol):
    def lookup_many(self, keys: list[Key]) -> dict[Key, Mark]: ...

    def posted(self, delivery_id: str, attempt: int, outcome: Outcome) -> bool: ...

    def handed(self, delivery_id: str, attempt: int) -> None: ...


class NoHandoffLog:
    """No table (unit tests, a ledger-less deployment): every attempt is taken as new."""

    def lookup_many(self, keys: list[Key]) -> dict[Key, Mark]:
        return {}

    def posted(self, delivery_id: str, attempt: int, outcome: Outcome) -> bool:
        return True

    def handed(self, delivery_id: str, attempt: int) -> None:
        return None


class DynamoHandoffLog(OnTable):
    """Marks on the delivery ledger's table (key ``id``, TTL on ``expiration``); client built on first use."""

    def __init__(self, table: str, ttl_seconds: int, client: Callable[[], Any], clock: Callable[[], float] = time.time) -> None:
        super().__init__(table, client)
        self.ttl_seconds = ttl_seconds
        self.clock = clock

    @staticmethod
    def _key(delivery_id: str, attempt: int) -> dict[str, Any]:
        return {"id": {"S": f"{_PREFIX}#{delivery_id}#{attempt}"}}

    def lookup_many(self, keys: list[Key]) -> dict[Key, Mark]:
        """The marks of a whole fan-out in one consistent BatchGetItem per 100 (not a read per POST)."""
        marks: dict[Key, Mark] = {}
        by_id = {self._key(*key)["id"]["S"]: key for key in keys}
        ids = list(by_id)
        try:
            for start in range(0, len(ids), 100):
                request = {self.table: {"Keys": [{"id": {"S": i}} for i in ids[start : start + 100]], "ConsistentRead": True}}
                for _ in range(5):  # unprocessed keys (throttling) are asked for again
                    answer = self._ddb().batch_get_item(RequestItems=request)
                    for item in answer.get("Responses", {}).get(self.table, []):
                        marks[by_id[item["id"]["S"]]] = _mark(item)
                    request = answer.get("UnprocessedKeys") or {}
                    if not request:
                        break
        except Exception as exc:  # noqa: BLE001 - unreachable: the attempts go ahead
            logger.warning("hand-off log unavailable, attempts taken as new", extra={"deliveries": len(keys), "error": type(exc).__name__})
        return marks

    def posted(self, delivery_id: str, attempt: int, outcome: Outcome) -> bool:
        """Record a failed attempt's outcome; False when another run recorded this attempt first."""
        item = {
            **self._key(delivery_id, attempt),
            "state": {"S": POSTED},
            "outcome": {"S": json.dumps(asdict(outcome))},
            "expiration": {"N": str(int(self.clock()) + self.ttl_seconds)},
        }
        try:
            self._ddb().put_item(TableName=self.table, Item=item, ConditionExpression="attribute_not_exists(id)")
        except Exception as exc:  # noqa: BLE001
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            logger.warning(
                "hand-off log unavailable, outcome not recorded", extra={"delivery_id": delivery_id, "error": type(exc).__name__}
            )
        return True

    def handed(self, delivery_id: str, attempt: int) -> None:
        """The attempt's successor is queued (or its dead letter written): re-runs do nothing."""
        try:
            self._ddb().update_item(
                TableName=self.table,
                Key=self._key(delivery_id, attempt),
                UpdateExpression="SET #s = :handed, expiration = :expiration REMOVE outcome",
                ExpressionAttributeNames={"#s": "state"},
                ExpressionAttributeValues={":handed": {"S": HANDED}, ":expiration": {"N": str(int(self.clock()) + self.ttl_seconds)}},
            )
        except Exception as exc:  # noqa: BLE001 - a re-run may then hand the attempt on again; the next attempt's mark dedupes
            logger.warning(
                "hand-off log unavailable, hand-off not recorded", extra={"delivery_id": delivery_id, "error": type(exc).__name__}
            )


def _mark(item: dict[str, Any]) -> Mark:
    recorded = item.get("outcome", {}).get("S")
    return Mark(item["state"]["S"], Outcome(**json.loads(recorded)) if recorded else None)

"""The hand-off log (``pipeline.handoff``) on the delivery ledger's DynamoDB table.

One item per attempt, ``oxoflow-attempt#<delivery id>#<attempt>`` (key ``id``, TTL on
``expiration``): read for a whole fan-out in one consistent BatchGetItem, the outcome written
conditionally, then ``handed``. The client is built on first use.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from oxoflow_notify.observability import logger
from oxoflow_notify.outbound.delivery import Outcome
from oxoflow_notify.pipeline.handoff import HANDED, POSTED, Key, Mark

from .dynamo import OnTable, error_code

_PREFIX = "oxoflow-attempt"


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
    return Mark(item["state"]["S"], Outcome.from_record(json.loads(recorded)) if recorded else None)

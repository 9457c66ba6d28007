"""The delivery log (``pipeline.delivery_log``) on its own DynamoDB table.

Keyed for a team's questions: the partition key is the event's ``workflow`` (so an IAM policy with
``dynamodb:LeadingKeys`` can let a team read only its own workflows), the sort key ``key`` is
``<delivery id>#<time>#<n>`` (a delivery's attempts in order: ``deliveries show`` is one Query),
and the local index ``by_time`` sorts a workflow's entries by ``at`` (newest first, since a time:
``deliveries`` is one Query). TTL on ``expires``: entries are kept ``DELIVERY_LOG_DAYS``.

The functions only write (BatchWriteItem, 25 entries a call, one call per invocation for most);
reading is the command line's (``DeliveryLogReader``), with the operator's or a team's credentials.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal
from typing import Any

from oxoflow_notify.lazy import Lazy
from oxoflow_notify.pipeline.delivery_log import Entry

# Every DynamoDB action the functions take on the delivery log table, and all the template grants
# them on it (template.yaml's WriteTheDeliveryLog); tests/unit/test_template.py checks both.
LOG_ACTIONS = frozenset({"dynamodb:BatchWriteItem"})
BY_TIME = "by_time"  # the local secondary index: partition key workflow, sort key at
_BATCH = 25  # BatchWriteItem's most items per call


def item_of(entry: Entry, ttl_days: int) -> dict[str, Any]:
    """An entry as its DynamoDB item (attribute values typed as the low-level client writes them)."""
    data = entry.as_dict()
    key = f"{entry.delivery_id}#{int(entry.at * 1000):013d}#{secrets.token_hex(3)}"
    item: dict[str, Any] = {
        "workflow": {"S": entry.workflow},
        "key": {"S": key},
        "at": {"N": f"{entry.at:.6f}"},
        "expires": {"N": str(int(entry.at) + ttl_days * 86_400)},
        "entry": {"S": json.dumps({k: v for k, v in data.items() if k != "workflow"}, separators=(",", ":"))},
    }
    for name in ("delivery_id", "event_id", "run_id", "webhook_id", "outcome"):  # what a query filters on
        if isinstance(data.get(name), str):
            item[name] = {"S": data[name]}
    return item


class DynamoDeliveryLog:
    """Writes entries in batches of 25; what DynamoDB leaves unprocessed is sent again (five tries)."""

    def __init__(self, table: str, ttl_days: int, client: Callable[[], Any]) -> None:
        self.table = table
        self.ttl_days = ttl_days
        self._client: Lazy[Any] = client if isinstance(client, Lazy) else Lazy(client)

    def _log_client(self) -> Any:
        return self._client.get()

    def write(self, entries: Sequence[Entry]) -> None:
        for start in range(0, len(entries), _BATCH):
            requests = [{"PutRequest": {"Item": item_of(e, self.ttl_days)}} for e in entries[start : start + _BATCH]]
            pending: dict[str, Any] = {self.table: requests}
            for _ in range(5):
                answer = self._log_client().batch_write_item(RequestItems=pending)
                pending = answer.get("UnprocessedItems") or {}
                if not pending:
                    break
            if pending:
                raise RuntimeError(f"{sum(len(v) for v in pending.values())} delivery log entries left unprocessed by DynamoDB")


class DeliveryLogReader:
    """The command line's reads: a workflow's entries newest first (one Query on ``by_time``), a
    delivery's attempts (one Query on its key prefix), or, without a workflow, a Scan."""

    def __init__(self, client: Any, table: str, clock: Callable[[], float] = time.time) -> None:
        self.client = client
        self.table = table
        self.clock = clock

    def recent(self, workflow: str | None, since: float, filters: dict[str, str]) -> Iterator[dict[str, Any]]:
        """Entries at or after ``since`` (unix seconds), newest first for one workflow; ``filters``:
        attribute -> value (webhook_id, event_id, run_id), applied by DynamoDB."""
        names = {f"#f{i}": name for i, name in enumerate(filters)}
        values = {f":f{i}": {"S": value} for i, value in enumerate(filters.values())}
        expression = " AND ".join(f"#f{i} = :f{i}" for i in range(len(filters)))
        extra: dict[str, Any] = {"FilterExpression": expression} if filters else {}
        if workflow is not None:
            request = {
                "TableName": self.table, "IndexName": BY_TIME, "ScanIndexForward": False,
                "KeyConditionExpression": "workflow = :w AND #at >= :since",
                "ExpressionAttributeNames": {"#at": "at", **names},
                "ExpressionAttributeValues": {":w": {"S": workflow}, ":since": {"N": f"{since:.3f}"}, **values},
                **extra,
            }  # fmt: skip
            yield from self._pages("query", request)
            return
        request = {
            "TableName": self.table, "FilterExpression": " AND ".join(["#at >= :since", *([expression] if filters else [])]),
            "ExpressionAttributeNames": {"#at": "at", **names},
            "ExpressionAttributeValues": {":since": {"N": f"{since:.3f}"}, **values},
        }  # fmt: skip
        found = list(self._pages("scan", request))
        yield from sorted(found, key=lambda e: -float(e["at"]))

    def attempts(self, delivery_id: str, workflow: str | None) -> list[dict[str, Any]]:
        """A delivery's entries, oldest first."""
        if workflow is not None:
            request = {
                "TableName": self.table, "KeyConditionExpression": "workflow = :w AND begins_with(#k, :d)",
                "ExpressionAttributeNames": {"#k": "key"},
                "ExpressionAttributeValues": {":w": {"S": workflow}, ":d": {"S": f"{delivery_id}#"}},
            }  # fmt: skip
            found = list(self._pages("query", request))
        else:
            request = {
                "TableName": self.table, "FilterExpression": "delivery_id = :d",
                "ExpressionAttributeValues": {":d": {"S": delivery_id}},
            }  # fmt: skip
            found = list(self._pages("scan", request))
        return sorted(found, key=lambda e: float(e["at"]))

    def _pages(self, call: str, request: dict[str, Any]) -> Iterator[dict[str, Any]]:
        while True:
            answer = getattr(self.client, call)(**request)
            for item in answer.get("Items", []):
                yield entry_from(item)
            if "LastEvaluatedKey" not in answer:
                return
            request = {**request, "ExclusiveStartKey": answer["LastEvaluatedKey"]}


def entry_from(item: dict[str, Any]) -> dict[str, Any]:
    """An item back as the entry's fields (``as_dict``), its workflow included."""
    data: dict[str, Any] = json.loads(item["entry"]["S"])
    data["workflow"] = item["workflow"]["S"]
    data.setdefault("at", float(Decimal(item["at"]["N"])))
    return data

"""Run watches (``pipeline.watching``) on the delivery ledger's table.

One item per watched run and webhook, ``oxoflow-watch#<group>`` (key ``id``): ``started``,
``last``, ``last_event``, ``ended``, ``alerted``; TTL on ``expiration`` (the longest watch, 7 days,
plus a day). Every write is one conditional update; the calls are the ledger's own (LEDGER_ACTIONS).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from oxoflow_notify.pipeline.watching import Watch

from .dynamo import OnTable, conditional, number

PREFIX = "oxoflow-watch"
KEEP_SECONDS = 8 * 86_400  # the longest overdue or silent (7 days) and a day


class DynamoRunWatches(OnTable):
    def __init__(self, table: str, client: Callable[[], Any]) -> None:
        super().__init__(table, client)

    @staticmethod
    def _key(group: str) -> dict[str, Any]:
        return {"id": {"S": f"{PREFIX}#{group}"}}

    def _update(
        self, group: str, expression: str, values: dict[str, Any], condition: str | None = None, **extra: Any
    ) -> dict[str, Any] | None:
        """One conditional update; None when its condition did not hold."""
        request: dict[str, Any] = {"TableName": self.table, "Key": self._key(group), "UpdateExpression": expression,
                                   "ExpressionAttributeValues": values, **extra}  # fmt: skip
        if condition:
            request["ConditionExpression"] = condition
        return conditional(self._ddb().update_item, **request)

    def started(self, group: str, now: float, seen: dict[str, Any]) -> None:
        self._update(group, "SET started = :now, #l = :now, last_event = :seen, expiration = :exp",
                     {":now": {"N": number(now)}, ":seen": {"S": json.dumps(seen)}, ":exp": {"N": str(int(now) + KEEP_SECONDS)}},
                     "attribute_not_exists(started)", ExpressionAttributeNames={"#l": "last"})  # fmt: skip

    def seen(self, group: str, now: float, seen: dict[str, Any]) -> None:
        self._update(group, "SET #l = :now, last_event = :seen", {":now": {"N": number(now)}, ":seen": {"S": json.dumps(seen)}},
                     "attribute_exists(started) AND #l < :now", ExpressionAttributeNames={"#l": "last"})  # fmt: skip

    def ended(self, group: str) -> str | None:
        answer = self._update(group, "SET ended = :yes", {":yes": {"BOOL": True}}, "attribute_exists(started)", ReturnValues="ALL_NEW")
        alerted = ((answer or {}).get("Attributes") or {}).get("alerted", {}).get("S")
        return str(alerted) if alerted else None

    def get(self, group: str) -> Watch | None:
        item = self._ddb().get_item(TableName=self.table, Key=self._key(group), ConsistentRead=True).get("Item")
        if not item or "started" not in item:
            return None
        return Watch(float(item["started"]["N"]), float(item["last"]["N"]), json.loads(item["last_event"]["S"]),
                     bool(item.get("ended", {}).get("BOOL")), item.get("alerted", {}).get("S"),
                     json.loads(item["alert"]["S"]) if "alert" in item else None)  # fmt: skip

    def alert(self, group: str, reason: str, payload: dict[str, Any]) -> bool:
        answer = self._update(group, "SET alerted = :r, alert = :p", {":r": {"S": reason}, ":p": {"S": json.dumps(payload)}},
                              "attribute_exists(started) AND attribute_not_exists(alerted) AND attribute_not_exists(ended)")  # fmt: skip
        return answer is not None

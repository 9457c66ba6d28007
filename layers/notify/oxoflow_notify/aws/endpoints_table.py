"""Endpoint states (``pipeline.endpoints``) on the delivery ledger's table.

One item per failing or disabled webhook, ``oxoflow-endpoint#<config key>#<webhook id>`` (key
``id``): ``failing_since``, and once disabled ``disabled_at`` and the entry's ``fingerprint``; then
``notice_claimed`` while an instance sends its WebhookDisabled notice, ``notified`` once it is sent.
No TTL: a disabled webhook stays disabled until it is enabled (the item is then deleted, as it is
at a failing webhook's first 2xx). The calls are the ledger's own (LEDGER_ACTIONS).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from oxoflow_notify.pipeline.endpoints import EndpointState

from .dynamo import OnTable, conditional, number

PREFIX = "oxoflow-endpoint"


class DynamoEndpointStore(OnTable):
    def __init__(self, table: str, client: Callable[[], Any]) -> None:
        super().__init__(table, client)

    @staticmethod
    def _key(key: str) -> dict[str, Any]:
        return {"id": {"S": f"{PREFIX}#{key}"}}

    def states(self, keys: Sequence[str]) -> dict[str, EndpointState]:
        found: dict[str, EndpointState] = {}
        for start in range(0, len(keys), 100):
            request: dict[str, Any] = {self.table: {"Keys": [self._key(k) for k in keys[start : start + 100]], "ConsistentRead": True}}
            for _ in range(5):  # unprocessed keys (throttling) are asked for again
                answer = self._ddb().batch_get_item(RequestItems=request)
                for item in answer.get("Responses", {}).get(self.table, []):
                    found[item["id"]["S"].removeprefix(f"{PREFIX}#")] = state_of(item)
                request = answer.get("UnprocessedKeys") or {}
                if not request:
                    break
        return found

    def failing(self, key: str, now: float) -> float:
        answer = self._ddb().update_item(
            TableName=self.table, Key=self._key(key), UpdateExpression="SET failing_since = if_not_exists(failing_since, :now)",
            ExpressionAttributeValues={":now": {"N": number(now)}}, ReturnValues="ALL_NEW",
        )  # fmt: skip
        return float(answer["Attributes"]["failing_since"]["N"])

    def recovered(self, key: str) -> bool:
        # False: disabled meanwhile, and stays so
        return conditional(self._ddb().delete_item, TableName=self.table, Key=self._key(key),
                           ConditionExpression="attribute_not_exists(disabled_at)") is not None  # fmt: skip

    def disable(self, key: str, now: float, failing_before: float, fingerprint: str) -> bool:
        return conditional(
            self._ddb().update_item, TableName=self.table, Key=self._key(key), UpdateExpression="SET disabled_at = :now, fingerprint = :f",
            ConditionExpression="attribute_not_exists(disabled_at) AND failing_since <= :before",
            ExpressionAttributeValues={":now": {"N": number(now)}, ":f": {"S": fingerprint}, ":before": {"N": number(failing_before)}},
        ) is not None  # fmt: skip

    def enable(self, key: str) -> None:
        self._ddb().delete_item(TableName=self.table, Key=self._key(key))

    def claim_notice(self, key: str, now: float, stale_before: float) -> bool:
        return conditional(
            self._ddb().update_item, TableName=self.table, Key=self._key(key), UpdateExpression="SET notice_claimed = :now",
            ConditionExpression="attribute_exists(disabled_at) AND attribute_not_exists(notified) "
                                "AND (attribute_not_exists(notice_claimed) OR notice_claimed < :stale)",
            ExpressionAttributeValues={":now": {"N": number(now)}, ":stale": {"N": number(stale_before)}},
        ) is not None  # fmt: skip

    def notice_done(self, key: str, claimed: float, sent: bool) -> None:
        values: dict[str, Any] = {":mine": {"N": number(claimed)}}
        update = "REMOVE notice_claimed"
        if sent:
            values[":yes"], update = {"BOOL": True}, "SET notified = :yes REMOVE notice_claimed"
        # only this caller's claim: not one taken over after its lease, nor a later disable's (enabled and disabled again meanwhile)
        conditional(self._ddb().update_item, TableName=self.table, Key=self._key(key), UpdateExpression=update,
                    ConditionExpression="notice_claimed = :mine", ExpressionAttributeValues=values)  # fmt: skip


def state_of(item: dict[str, Any]) -> EndpointState:
    def at(name: str) -> float | None:
        return float(item[name]["N"]) if name in item else None

    return EndpointState(
        at("failing_since"),
        at("disabled_at"),
        item.get("fingerprint", {}).get("S"),
        bool(item.get("notified", {}).get("BOOL")),
        at("notice_claimed"),
    )

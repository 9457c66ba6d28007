"""Per-webhook rate limits (``pipeline.pacing``) on the delivery ledger's DynamoDB table.

One item per limited target, ``oxoflow-pace#<target>``, written only by conditional updates, so
every function instance reserves its slots in one order; the client is built on first use.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from oxoflow_notify.pipeline.pacing import CLOCK_SLACK, HORIZON, PaceItem, SharedClock, Slot, first_slot, interval, tenant_of

from .dynamo import OnTable, error_code, number


class DynamoPacer(OnTable):
    """Slots on the ledger's table; client built on first use."""

    def __init__(self, table: str, client: Callable[[], Any], ttl_seconds: int = 3600) -> None:
        super().__init__(table, client)
        self.ttl_seconds = ttl_seconds
        self.clock = SharedClock()

    @staticmethod
    def _key(target: str) -> dict[str, Any]:
        return {"id": {"S": f"oxoflow-pace#{target}"}}

    def now(self, local: float) -> float:
        return self.clock.now(local)

    def reserve(self, target: str, rate: float, now: float, tenant: str = "") -> Slot:
        """One slot for one POST of ``tenant``'s, at once or at its next free time. Raises on AWS faults."""
        name = f"n_{tenant_of(tenant)}"
        first = target not in self.clock.contacted
        state = self._read(target, name, now) if first else None  # an ahead clock must see the backlog first
        for _ in range(8):  # lost races and a behind clock each cost one more try
            shared = self.clock.now(now)
            at = shared if state is None else first_slot(state, name, shared, first)
            if at > shared + HORIZON:
                return Slot(None, at - HORIZON)
            busy = state is not None and at == state.next.get(name) and at > shared
            try:
                if busy:  # the tenant's next free time, moved on by one interval (no race between its reservers)
                    answer = self._update(target, name, shared, "SET #n = #n + :i, #c = :now", "#n > :now AND #n <= :horizon "
                                          "AND (attribute_not_exists(paused) OR paused <= #n)", {":i": interval(rate),
                                          ":horizon": shared + HORIZON})  # fmt: skip
                    at = float(answer["Attributes"][name]["N"]) - interval(rate)
                else:  # now (idle), the end of a pause, or after a backlog an ahead clock may have missed
                    condition = "(attribute_not_exists(#n) OR #n <= :at) AND (attribute_not_exists(paused) OR paused <= :at)"
                    self._update(target, name, shared, "SET #n = :next, #c = :now", condition, {":at": at, ":next": at + interval(rate)})
                self.clock.contacted.add(target)
                return Slot(at, at)
            except Exception as exc:
                if error_code(exc) != "ConditionalCheckFailedException":
                    raise
                state = self._item(getattr(exc, "response", {}).get("Item") or {}, name, now)
        return Slot(None, self.clock.now(now) + interval(rate))  # lost every race: ask again shortly

    def _update(self, target: str, name: str, now: float, update: str, condition: str, values: dict[str, float]) -> Any:
        """One conditional write of the tenant's next slot; refused when the item's clock is ahead of ours."""
        numbers = {k: {"N": number(v)} for k, v in {**values, ":now": now, ":slack": now + CLOCK_SLACK}.items()}
        return self._ddb().update_item(
            TableName=self.table,
            Key=self._key(target),
            UpdateExpression=f"{update}, expiration = :exp",
            ConditionExpression=f"({condition}) AND (attribute_not_exists(#c) OR #c <= :slack)",
            ExpressionAttributeNames={"#n": name, "#c": "clock"},
            ExpressionAttributeValues={**numbers, ":exp": {"N": str(int(now + HORIZON) + self.ttl_seconds)}},
            ReturnValues="UPDATED_NEW",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )

    def _read(self, target: str, name: str, local: float) -> PaceItem:
        item = self._ddb().get_item(TableName=self.table, Key=self._key(target), ConsistentRead=True).get("Item") or {}
        return self._item(item, name, local)

    def _item(self, raw: dict[str, Any], name: str, local: float) -> PaceItem:
        """The item as this tenant sees it; learns the item's clock."""

        def get(attr: str) -> float | None:
            return float(raw[attr]["N"]) if attr in raw else None

        item = PaceItem(paused=get("paused") or 0.0, clock=get("clock") or 0.0)
        if (n := get(name)) is not None:
            item.next[name] = n
        self.clock.learn(item.clock, local)
        return item

    def pause(self, target: str, until: float) -> None:
        """No POST before ``until`` (item clock) for anyone, every tenant (a receiver's Retry-After):
        new slots start after it, and slots reserved before it are given up by the deliveries
        holding them (``paused_until``)."""
        expires = {"N": str(int(max(until, time.time() + HORIZON)) + self.ttl_seconds)}  # outlives any slot on the item
        try:
            self._ddb().update_item(
                TableName=self.table,
                Key=self._key(target),
                UpdateExpression="SET paused = :until, expiration = :exp",
                ConditionExpression="attribute_not_exists(paused) OR paused < :until",
                ExpressionAttributeValues={":until": {"N": number(until)}, ":exp": expires},
            )
        except Exception as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise

    def paused_until(self, target: str) -> float:
        """Until when a 429 paused the target (0: never; item clock), read consistently: by a held
        delivery that comes back with its slot, and by a POST that waited in its thread for one."""
        item = self._ddb().get_item(TableName=self.table, Key=self._key(target), ConsistentRead=True).get("Item") or {}
        return float(item.get("paused", {}).get("N", "0"))

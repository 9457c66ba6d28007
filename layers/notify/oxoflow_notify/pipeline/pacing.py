"""Per-webhook rate limits that hold across every function instance: slots reserved in DynamoDB.

Each limited target (``breaker.target_of``: the whole URL, as a digest) has one item on the
ledger's table, ``oxoflow-pace#<target>``, holding ``next``: the earliest time the next POST may
start (a GCRA, "generic cell rate algorithm", without burst). A delivery reserves a slot with one
conditional update: at once when the target is idle (``next`` in the past), else at ``next``,
which moves on by 1/rate. POSTs therefore start at least 1/rate apart, whichever instance sends
them, so no second holds more than the limit (plus one for clocks that disagree).

A slot a few seconds away is waited for in the sending thread; a later one is carried by the
delivery's retry message, which comes back just before it (``notifier``), so a storm queues in
order instead of polling. A slot missed by more than half an interval is given up and a new one
reserved (and the delivery is brought back earlier from then on, so a slow retry function cannot
starve it). A 429 with a wait moves ``next`` past it and records ``paused`` until then, pausing
the target for every instance: new slots come after it, and a held delivery whose slot falls
inside the pause takes a new one when it comes back.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from oxoflow_notify.aws.dynamo import OnTable, error_code, number

HORIZON = 86_400.0  # seconds: no slot is reserved further ahead (a held delivery hops through the retry queue 15 minutes at a time)


@dataclass(frozen=True)
class Slot:
    at: float | None  # when this delivery may start its POST; None: nothing reserved (beyond the horizon)
    free_at: float  # when to ask again, when nothing was reserved


class Pacer(Protocol):
    def reserve(self, target: str, rate: float, now: float) -> Slot: ...

    def pause(self, target: str, until: float) -> None: ...

    def paused_until(self, target: str) -> float: ...


class MemoryPacer:
    """The same rule in memory: one process (unit tests)."""

    def __init__(self) -> None:
        self.next: dict[str, float] = {}
        self.paused: dict[str, float] = {}
        self._lock = threading.Lock()

    def reserve(self, target: str, rate: float, now: float) -> Slot:
        with self._lock:
            at = max(self.next.get(target, now), now)
            if at > now + HORIZON:
                return Slot(None, at - HORIZON)
            self.next[target] = at + 1 / rate
            return Slot(at, at)

    def pause(self, target: str, until: float) -> None:
        with self._lock:
            self.next[target] = max(self.next.get(target, until), until)
            self.paused[target] = max(self.paused.get(target, until), until)

    def paused_until(self, target: str) -> float:
        with self._lock:
            return self.paused.get(target, 0.0)


class DynamoPacer(OnTable):
    """Slots on the ledger's table; client built on first use."""

    def __init__(self, table: str, client: Callable[[], Any], ttl_seconds: int = 3600) -> None:
        super().__init__(table, client)
        self.ttl_seconds = ttl_seconds

    @staticmethod
    def _key(target: str) -> dict[str, Any]:
        return {"id": {"S": f"oxoflow-pace#{target}"}}

    def reserve(self, target: str, rate: float, now: float) -> Slot:
        """One slot for one POST, at once or at the target's next free time. Raises on AWS faults."""
        interval = 1 / rate
        exp = {"N": str(int(now) + self.ttl_seconds)}
        for _ in range(6):  # the two updates below race only when the target goes idle between them
            try:  # idle: the slot is now
                self._ddb().update_item(
                    TableName=self.table,
                    Key=self._key(target),
                    UpdateExpression="SET #n = :after, expiration = :exp",
                    ConditionExpression="attribute_not_exists(#n) OR #n <= :now",
                    ExpressionAttributeNames={"#n": "next"},
                    ExpressionAttributeValues={":after": {"N": number(now + interval)}, ":now": {"N": number(now)}, ":exp": exp},
                )
                return Slot(now, now)
            except Exception as exc:
                if error_code(exc) != "ConditionalCheckFailedException":
                    raise
            try:  # busy: the slot is the target's next free time, which moves on by one interval
                answer = self._ddb().update_item(
                    TableName=self.table,
                    Key=self._key(target),
                    UpdateExpression="SET #n = #n + :interval, expiration = :exp",
                    ConditionExpression="#n > :now AND #n <= :horizon",
                    ExpressionAttributeNames={"#n": "next"},
                    ExpressionAttributeValues={
                        ":interval": {"N": number(interval)},
                        ":now": {"N": number(now)},
                        ":horizon": {"N": number(now + HORIZON)},
                        ":exp": {"N": str(int(now + HORIZON) + self.ttl_seconds)},
                    },
                    ReturnValues="UPDATED_NEW",
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
                return Slot(float(answer["Attributes"]["next"]["N"]) - interval, now)
            except Exception as exc:
                if error_code(exc) != "ConditionalCheckFailedException":
                    raise
                item = getattr(exc, "response", {}).get("Item") or {}
                ahead = float(item.get("next", {}).get("N", "0"))
                if ahead > now + HORIZON:
                    return Slot(None, ahead - HORIZON)
        return Slot(None, now + interval)  # lost every race: ask again shortly

    def pause(self, target: str, until: float) -> None:
        """No POST before ``until`` for anyone (a receiver's Retry-After): new slots start after it,
        and slots reserved before it are given up by the deliveries holding them (``paused_until``)."""
        expires = {"N": str(int(max(until, time.time() + HORIZON)) + self.ttl_seconds)}  # outlives any slot on the item
        for name in ("paused", "next"):
            try:
                self._ddb().update_item(
                    TableName=self.table,
                    Key=self._key(target),
                    UpdateExpression="SET #a = :until, expiration = :exp",
                    ConditionExpression="attribute_not_exists(#a) OR #a < :until",
                    ExpressionAttributeNames={"#a": name},
                    ExpressionAttributeValues={":until": {"N": number(until)}, ":exp": expires},
                )
            except Exception as exc:
                if error_code(exc) != "ConditionalCheckFailedException":
                    raise

    def paused_until(self, target: str) -> float:
        """Until when a 429 paused the target (0: never), read consistently: by a held delivery that
        comes back with its slot, and by a POST that waited in its thread for one."""
        item = self._ddb().get_item(TableName=self.table, Key=self._key(target), ConsistentRead=True).get("Item") or {}
        return float(item.get("paused", {}).get("N", "0"))

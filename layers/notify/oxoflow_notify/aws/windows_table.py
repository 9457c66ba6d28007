"""Digest windows (``pipeline.windows``) on the delivery ledger's DynamoDB table.

Items (key ``id``, TTL on ``expiration``), per group:

- ``oxoflow-digest#<group>``: the head, the number of the group's current window;
- ``oxoflow-digest#<group>#<n>``: window n, with its state, counts, kept events and token;
- ``oxoflow-digested#<delivery id>``: one marker per (event, webhook) counted.

Each event is counted by one transaction: the marker (only if absent) and the window's update
(only while it is open and the kept events fit); a window is opened by a transaction too (the head,
the new window, the marker). Closing is one conditional update that returns what the window held.
Lost races and DynamoDB's transaction conflicts are tried again after a short jittered pause.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from oxoflow_notify.pipeline import digest as limits
from oxoflow_notify.pipeline.digest import KEEP_FAILED, KEEP_OTHER, kept_form, size_of
from oxoflow_notify.pipeline.windows import (
    ADDED,
    CLOSED,
    CONFLICT,
    DUPLICATE,
    OPEN,
    OPENED,
    Closing,
    Group,
    Schedule,
    WindowContention,
    digest_of,
    fresh_since,
    is_failed,
    overdue,
)

from .dynamo import OnTable, cancellation_reasons, error_code, number


class DynamoWindowStore(OnTable):
    """Windows on the ledger's table; client built on first use."""

    ATTEMPTS = 12  # rounds of losing a race (another opener, a close, a transaction conflict) before giving up on one event

    def __init__(self, table: str, ttl_seconds: int, client: Callable[[], Any], clock: Callable[[], float] = time.time) -> None:
        super().__init__(table, client)
        self.ttl_seconds = ttl_seconds
        self.clock = clock
        self._full: set[tuple[str, int, str]] = set()  # (group, window, list) learned full: skip the keeping write

    def _expiration(self) -> dict[str, str]:
        return {"N": str(int(self.clock()) + self.ttl_seconds)}

    @staticmethod
    def _head(group: Group) -> dict[str, Any]:
        return {"id": {"S": f"oxoflow-digest#{group.key}"}}

    @staticmethod
    def _window(group: Group, n: int) -> dict[str, Any]:
        return {"id": {"S": f"oxoflow-digest#{group.key}#{n}"}}

    def current(self, group: Group) -> int | None:
        item = self._ddb().get_item(TableName=self.table, Key=self._head(group), ConsistentRead=True).get("Item")
        return int(item["window"]["N"]) if item else None

    def add(self, group: Group, event: dict[str, Any], event_key: str, now: float, schedule: Schedule) -> str:  # noqa: C901 - one optimistic loop over the window's states; split, its retries read worse
        """Count one event in its group's open window (opening one if there is none): ADDED, OPENED,
        or DUPLICATE when this (event, webhook) was counted before. Raises on AWS faults (the
        invocation is retried; the marker keeps the retry from counting twice)."""
        kept_event = kept_form(event)
        kept = json.dumps(kept_event, ensure_ascii=False, separators=(",", ":"))
        size = size_of(kept_event)
        lst = "failed" if is_failed(event) else "others"
        cap = KEEP_FAILED if lst == "failed" else KEEP_OTHER
        marker = {
            "Put": {
                "TableName": self.table,
                "Item": {"id": {"S": f"oxoflow-digested#{event_key}"}, "expiration": self._expiration()},
                "ConditionExpression": "attribute_not_exists(id)",
            }
        }
        for round_ in range(self.ATTEMPTS):
            if round_:
                time.sleep(random.uniform(0, 0.02 * round_))  # noqa: S311 - lost a race or met a conflict: spread the next try
            n = self.current(group)
            if n is None:
                opened = self._open(group, None, event, kept, size, lst, marker, now, schedule)
                if opened is not None:
                    return opened
                continue
            keep = (group.key, n, lst) not in self._full
            outcome, item = self._count(group, n, event["event"], kept if keep else None, size, lst, cap, marker, now)
            if outcome == CONFLICT:
                continue
            if outcome is not None:
                return outcome
            if item is None or item.get("state", {}).get("S") != OPEN or _expired(item, now):
                opened = self._open(group, n, event, kept, size, lst, marker, now, schedule)  # closed or gone: the next one
                if opened is not None:
                    return opened
                continue
            token = item.get("token", {}).get("S")
            if overdue(float(item.get("opened", {}).get("N", now)), group, now):
                schedule(group, n, 0, token, "timer")  # its close was lost (or came too soon): close it now
            elif keep and len(item.get(lst, {}).get("L", [])) >= cap:
                if len(self._full) > 10_000:
                    self._full.clear()
                self._full.add((group.key, n, lst))  # its kept list is full: count only, from now on
                continue
            else:
                schedule(group, n, 0, token, "full")  # the kept events would outgrow it: close it now
            opened = self._open(group, n, event, kept, size, lst, marker, now, schedule)
            if opened is not None:
                return opened
        raise WindowContention(f"could not count an event in its digest window after {self.ATTEMPTS} rounds")

    def _count(
        self, group: Group, n: int, name: str, kept: str | None, size: int, lst: str, cap: int, marker: dict[str, Any], now: float
    ) -> tuple[str | None, dict[str, Any] | None]:
        """One transaction: the marker and the window's counts (and the kept event, when ``kept``).
        (ADDED or DUPLICATE, None), (CONFLICT, None), or (None, the window as it was) when the
        window refused it (closed, overdue, full, or not there)."""
        names = {"#s": "state", "#c": "counts", "#ev": name, "#t": "total", "#o": "opened"}
        values: dict[str, Any] = {
            ":open": {"S": OPEN},
            ":one": {"N": "1"},
            ":zero": {"N": "0"},
            ":fresh": {"N": number(fresh_since(group, now))},
        }
        update = "SET #c.#ev = if_not_exists(#c.#ev, :zero) + :one ADD #t :one"
        condition = "#s = :open AND #o >= :fresh"
        if kept is not None:
            names |= {"#l": lst, "#by": "bytes"}
            values |= {
                ":kept": {"L": [{"S": kept}]},
                ":cap": {"N": str(cap)},
                ":size": {"N": str(size)},
                ":room": {"N": str(limits.WINDOW_BYTES - size)},
            }
            update = "SET #l = list_append(#l, :kept), #c.#ev = if_not_exists(#c.#ev, :zero) + :one ADD #t :one, #by :size"
            condition += " AND size(#l) < :cap AND #by <= :room"
        window = {
            "Update": {
                "TableName": self.table,
                "Key": self._window(group, n),
                "UpdateExpression": update,
                "ConditionExpression": condition,
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        }
        try:
            self._ddb().transact_write_items(TransactItems=[marker, window])
        except Exception as exc:
            reasons = cancellation_reasons(exc)
            if reasons is None:
                raise
            if reasons[0].get("Code") == "ConditionalCheckFailed":
                return DUPLICATE, None
            if reasons[1].get("Code") == "ConditionalCheckFailed":
                return None, reasons[1].get("Item")
            if any(r.get("Code") == "TransactionConflict" for r in reasons):
                return CONFLICT, None
            raise
        return ADDED, None

    def _open(
        self,
        group: Group,
        n: int | None,
        event: dict[str, Any],
        kept: str,
        size: int,
        lst: str,
        marker: dict[str, Any],
        now: float,
        schedule: Schedule,
    ) -> str | None:
        """Open window n + 1 with this event. OPENED, DUPLICATE, or None when another run moved the
        head first (or the transaction met a conflict): the caller looks again."""
        nxt = (n or 0) + 1
        token = uuid.uuid4().hex
        schedule(group, nxt, group.seconds, token, "timer")  # first: every window that exists has its close on the way
        head_values: dict[str, Any] = {":next": {"N": str(nxt)}, ":exp": self._expiration()}
        if n is not None:
            head_values[":n"] = {"N": str(n)}
        state: dict[str, Any] = {
            **self._window(group, nxt),
            "state": {"S": OPEN},
            "opened": {"N": number(now)},
            "counts": {"M": {event["event"]: {"N": "1"}}},
            "total": {"N": "1"},
            "bytes": {"N": str(size)},
            "failed": {"L": [{"S": kept}] if lst == "failed" else []},
            "others": {"L": [{"S": kept}] if lst == "others" else []},
            "token": {"S": token},
            "expiration": self._expiration(),
        }
        items = [
            {
                "Update": {
                    "TableName": self.table,
                    "Key": self._head(group),
                    "UpdateExpression": "SET #w = :next, expiration = :exp",
                    "ConditionExpression": "attribute_not_exists(id)" if n is None else "#w = :n",
                    "ExpressionAttributeNames": {"#w": "window"},
                    "ExpressionAttributeValues": head_values,
                }
            },
            {
                # A window item left over from before its head expired (TTL deletes in any order) is replaced.
                "Put": {
                    "TableName": self.table,
                    "Item": state,
                    "ConditionExpression": "attribute_not_exists(id) OR expiration < :now",
                    "ExpressionAttributeValues": {":now": {"N": str(int(now))}},
                }
            },
            marker,
        ]
        try:
            self._ddb().transact_write_items(TransactItems=items)
        except Exception as exc:
            reasons = cancellation_reasons(exc)
            if reasons is None:
                raise
            if reasons[2].get("Code") == "ConditionalCheckFailed":
                return DUPLICATE
            if any(r.get("Code") in ("ConditionalCheckFailed", "TransactionConflict") for r in reasons):
                return None  # another run opened it first (count in theirs), or a conflict: look again
            raise
        return OPENED

    def close(self, group: Group, window: int, now: float, closed_by: str) -> Closing:
        """Close window n (once) and read what it holds. A window closed before is read again: a
        close that died before handing its digest on runs again (the token says whether it may)."""
        for round_ in range(self.ATTEMPTS):
            try:
                answer = self._ddb().update_item(
                    TableName=self.table,
                    Key=self._window(group, window),
                    UpdateExpression="SET #s = :closed, closed_at = :now, closed_by = :by",
                    ConditionExpression="#s = :open",
                    ExpressionAttributeNames={"#s": "state"},
                    ExpressionAttributeValues={
                        ":closed": {"S": CLOSED},
                        ":open": {"S": OPEN},
                        ":now": {"N": number(now)},
                        ":by": {"S": closed_by},
                    },
                    ReturnValues="ALL_NEW",
                )
                item = _plain(answer["Attributes"])
                return Closing(digest_of(group, window, item), True, _text(item.get("token")))
            except Exception as exc:
                if error_code(exc) == "TransactionConflictException":  # an add's transaction holds the item: again
                    time.sleep(random.uniform(0, 0.02 * (round_ + 1)))  # noqa: S311 - a pause, not a secret
                    continue
                if error_code(exc) != "ConditionalCheckFailedException":
                    raise
            found = self._ddb().get_item(TableName=self.table, Key=self._window(group, window), ConsistentRead=True).get("Item")
            if found is None:  # not opened yet (its opener has not committed), never opened, or long expired
                head = self.current(group)
                return Closing(None, False, not_yet=head is None or head < window)
            item = _plain(found)
            return Closing(digest_of(group, window, item), False, _text(item.get("token")))
        raise WindowContention(f"could not close a digest window after {self.ATTEMPTS} rounds")


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _expired(item: dict[str, Any], now: float) -> bool:
    """A window item TTL should have deleted already (DynamoDB deletes within days, not at once)."""
    return float(item.get("expiration", {}).get("N", now + 1)) < now


def _plain(item: dict[str, Any]) -> dict[str, Any]:
    """A DynamoDB item as plain Python (the few types windows use)."""
    from boto3.dynamodb.types import TypeDeserializer

    deserializer = TypeDeserializer()
    out = {k: deserializer.deserialize(v) for k, v in item.items()}
    return {k: (float(v) if isinstance(v, Decimal) else v) for k, v in out.items()}

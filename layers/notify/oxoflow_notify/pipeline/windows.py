"""Digest windows in DynamoDB: opened by a conditional write, added to atomically, closed once.

On the delivery ledger's table (key ``id``, TTL on ``expiration``), per group (webhook, workflow,
run; ``digest.group_of``):

- ``oxoflow-digest#<group>``: the head, the number of the group's current window;
- ``oxoflow-digest#<group>#<n>``: window n: state (open, closed), counts per event, total, the
  kept events (failed and others, each list capped), their bytes;
- ``oxoflow-digested#<delivery id>``: one marker per (event, webhook) counted.

Each event is counted by one transaction: the marker (only if absent) and the window's update
(only while it is open and the kept events fit). So an SNS redelivery, a second dispatcher or a
run that died half way through never counts an event twice, and a crash never counts it half:
both writes happen, or neither. A window is opened by a transaction too: the head moves from n to
n + 1 only if it still says n, the new window is created with its first event, and the marker is
written. Before that transaction the opener queues the window's close (a delayed message on the
retry queue): every window that exists has a close on its way, and a close for a window that was
never created finds nothing to do.

Closing flips the state to closed (conditionally) and reads what it held in the same write:
events added before the flip are in the digest, events after it open the next window. A window
whose kept events would outgrow WINDOW_BYTES closes early (its close is queued at once) and the
event opens the next one.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

from oxoflow_notify.inbound.events import format_timestamp

from .digest import KEEP_FAILED, KEEP_OTHER, WINDOW_BYTES, Digest, digest_delivery_id, kept_form, size_of

OPEN = "open"
CLOSED = "closed"
ADDED = "added"
OPENED = "opened"
DUPLICATE = "duplicate"
CLOSE_SCHEMA = "oxoflow-notify/digest-close/v1"


@dataclass(frozen=True)
class Group:
    """One digest group and what its close message must carry to find its webhook again."""

    key: str
    config_key: str
    webhook_id: str
    workflow: str
    run_id: str | None
    seconds: float

    def close_message(self, window: int) -> dict[str, Any]:
        return {
            "schema": CLOSE_SCHEMA,
            "group": self.key,
            "window": window,
            "config_key": self.config_key,
            "webhook_id": self.webhook_id,
            "workflow": self.workflow,
            "run_id": self.run_id,
            "seconds": self.seconds,
        }

    @classmethod
    def from_close_message(cls, data: dict[str, Any]) -> tuple[Group, int]:
        """The group and window number a close message names; ValueError when it is malformed."""
        try:
            group = cls(
                str(data["group"]),
                str(data["config_key"]),
                str(data["webhook_id"]),
                str(data["workflow"]),
                None if data.get("run_id") is None else str(data["run_id"]),
                float(data["seconds"]),
            )
            window = data["window"]
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed digest close message ({type(exc).__name__})") from None
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ValueError("malformed digest close message (window)")
        return group, window


Schedule = Callable[[Group, int, float], None]  # (group, window, delay seconds): queue that window's close


class WindowStore(Protocol):
    def add(self, group: Group, event: dict[str, Any], event_key: str, now: float, schedule: Schedule) -> str: ...

    def close(self, group: Group, window: int, now: float, closed_by: str) -> tuple[Digest | None, bool]: ...

    def current(self, group: Group) -> int | None: ...


def _is_failed(event: dict[str, Any]) -> bool:
    return event.get("event") == "RuleFailed"


def _digest(group: Group, window: int, state: dict[str, Any]) -> Digest | None:
    """A window's state (as the store holds it, plain Python) as the digest it sends."""
    if not state.get("total"):
        return None
    failed = [json.loads(e) for e in state.get("failed", [])]
    others = [json.loads(e) for e in state.get("others", [])]
    return Digest(
        id=digest_delivery_id(group.key, window),
        workflow=group.workflow,
        run_id=group.run_id,
        opened=format_timestamp_at(float(state["opened"])),
        closed=format_timestamp_at(float(state.get("closed_at") or state["opened"])),
        seconds=group.seconds,
        closed_by=str(state.get("closed_by") or "timer"),
        counts={k: int(v) for k, v in state.get("counts", {}).items() if int(v) > 0},
        events=tuple(failed + others),
        total=int(state["total"]),
        window=window,
    )


def format_timestamp_at(seconds: float) -> str:
    from datetime import UTC, datetime

    return format_timestamp(datetime.fromtimestamp(round(seconds, 3), tz=UTC))


class MemoryWindowStore:
    """The same rules in memory, for unit tests and ledger-less local runs (one process only)."""

    def __init__(self) -> None:
        self.heads: dict[str, int] = {}
        self.windows: dict[tuple[str, int], dict[str, Any]] = {}
        self.markers: set[str] = set()
        self._lock = threading.Lock()

    def add(self, group: Group, event: dict[str, Any], event_key: str, now: float, schedule: Schedule) -> str:
        kept = json.dumps(kept_form(event), ensure_ascii=False, separators=(",", ":"))
        size = size_of(json.loads(kept))
        with self._lock:
            if event_key in self.markers:
                return DUPLICATE
            n = self.heads.get(group.key)
            state = self.windows.get((group.key, n)) if n is not None else None
            if state is not None and state["state"] == OPEN:
                lst, cap = ("failed", KEEP_FAILED) if _is_failed(event) else ("others", KEEP_OTHER)
                if len(state[lst]) < cap and state["bytes"] + size > WINDOW_BYTES:
                    assert n is not None
                    schedule(group, n, 0)  # would outgrow: close now, open the next
                else:
                    if len(state[lst]) < cap:
                        state[lst].append(kept)
                        state["bytes"] += size
                    state["counts"][event["event"]] = state["counts"].get(event["event"], 0) + 1
                    state["total"] += 1
                    self.markers.add(event_key)
                    return ADDED
            n = (n or 0) + 1
            schedule(group, n, group.seconds)
            lst = "failed" if _is_failed(event) else "others"
            state = {"state": OPEN, "opened": now, "counts": {event["event"]: 1}, "total": 1, "failed": [], "others": [], "bytes": size}
            state[lst].append(kept)
            self.heads[group.key] = n
            self.windows[(group.key, n)] = state
            self.markers.add(event_key)
            return OPENED

    def close(self, group: Group, window: int, now: float, closed_by: str) -> tuple[Digest | None, bool]:
        with self._lock:
            state = self.windows.get((group.key, window))
            if state is None:
                return None, False
            newly = state["state"] == OPEN
            if newly:
                state.update(state=CLOSED, closed_at=now, closed_by=closed_by)
            return _digest(group, window, state), newly

    def current(self, group: Group) -> int | None:
        with self._lock:
            return self.heads.get(group.key)


class DynamoWindowStore:
    """Windows on the ledger's table; client built on first use."""

    ATTEMPTS = 12  # rounds of losing a race (another opener, a close) before giving up on one event

    def __init__(self, table: str, ttl_seconds: int, client: Callable[[], Any], clock: Callable[[], float] = time.time) -> None:
        self.table = table
        self.ttl_seconds = ttl_seconds
        self._client = client
        self._built: Any = None
        self.clock = clock
        self._full: set[tuple[str, int, str]] = set()  # (group, window, list) learned full: skip the keeping write

    def _ddb(self) -> Any:
        if self._built is None:
            self._built = self._client()
        return self._built

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

    def add(self, group: Group, event: dict[str, Any], event_key: str, now: float, schedule: Schedule) -> str:
        """Count one event in its group's open window (opening one if there is none): ADDED, OPENED,
        or DUPLICATE when this (event, webhook) was counted before. Raises on AWS faults (the
        invocation is retried; the marker keeps the retry from counting twice)."""
        kept_event = kept_form(event)
        kept = json.dumps(kept_event, ensure_ascii=False, separators=(",", ":"))
        size = size_of(kept_event)
        lst = "failed" if _is_failed(event) else "others"
        cap = KEEP_FAILED if lst == "failed" else KEEP_OTHER
        marker = {
            "Put": {
                "TableName": self.table,
                "Item": {"id": {"S": f"oxoflow-digested#{event_key}"}, "expiration": self._expiration()},
                "ConditionExpression": "attribute_not_exists(id)",
            }
        }
        for _ in range(self.ATTEMPTS):
            n = self.current(group)
            if n is None:
                result = self._open(group, None, event, kept, size, lst, marker, now, schedule)
                if result is not None:
                    return result
                continue
            keep = (group.key, n, lst) not in self._full
            outcome, item = self._count(group, n, event["event"], kept if keep else None, size, lst, cap, marker)
            if outcome is not None:
                return outcome
            if item is None or item.get("state", {}).get("S") != OPEN:
                result = self._open(group, n, event, kept, size, lst, marker, now, schedule)  # closed (or expired): the next one
                if result is not None:
                    return result
                continue
            if keep and len(item.get(lst, {}).get("L", [])) >= cap:
                if len(self._full) > 10_000:
                    self._full.clear()
                self._full.add((group.key, n, lst))  # kept lists are full: count only, from now on
                continue
            # The kept events would outgrow the window: close it now and open the next.
            schedule(group, n, 0)
            result = self._open(group, n, event, kept, size, lst, marker, now, schedule)
            if result is not None:
                return result
        raise WindowContention(f"could not count an event in its digest window after {self.ATTEMPTS} rounds")

    def _count(
        self, group: Group, n: int, name: str, kept: str | None, size: int, lst: str, cap: int, marker: dict[str, Any]
    ) -> tuple[str | None, dict[str, Any] | None]:
        """One transaction: the marker and the window's counts (and the kept event, when ``kept``).
        (ADDED or DUPLICATE, None), or (None, the window as it was) when the window refused it."""
        names = {"#s": "state", "#c": "counts", "#ev": name, "#t": "total"}
        values: dict[str, Any] = {":open": {"S": OPEN}, ":one": {"N": "1"}, ":zero": {"N": "0"}}
        update = "SET #c.#ev = if_not_exists(#c.#ev, :zero) + :one ADD #t :one"
        condition = "#s = :open"
        if kept is not None:
            names |= {"#l": lst, "#by": "bytes"}
            values |= {":kept": {"L": [{"S": kept}]}, ":cap": {"N": str(cap)}, ":size": {"N": str(size)},
                       ":room": {"N": str(WINDOW_BYTES - size)}}  # fmt: skip
            update = "SET #l = list_append(#l, :kept), #c.#ev = if_not_exists(#c.#ev, :zero) + :one ADD #t :one, #by :size"
            condition = "#s = :open AND size(#l) < :cap AND #by <= :room"
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
            reasons = _cancellation(exc)
            if reasons is None:
                raise
            if reasons[0].get("Code") == "ConditionalCheckFailed":
                return DUPLICATE, None
            if reasons[1].get("Code") == "ConditionalCheckFailed":
                return None, reasons[1].get("Item")
            raise  # TransactionConflict and the like: an AWS fault, retried by Lambda
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
        """Open window n + 1 with this event. OPENED, DUPLICATE, or None when another run moved the head first."""
        nxt = (n or 0) + 1
        schedule(group, nxt, group.seconds)  # first: every window that exists has its close on the way
        head_condition = "attribute_not_exists(id)" if n is None else "#w = :n"
        head_values: dict[str, Any] = {":next": {"N": str(nxt)}, ":exp": self._expiration()}
        if n is not None:
            head_values[":n"] = {"N": str(n)}
        state: dict[str, Any] = {
            **self._window(group, nxt),
            "state": {"S": OPEN},
            "opened": {"N": _num(now)},
            "counts": {"M": {event["event"]: {"N": "1"}}},
            "total": {"N": "1"},
            "bytes": {"N": str(size)},
            "failed": {"L": [{"S": kept}] if lst == "failed" else []},
            "others": {"L": [{"S": kept}] if lst == "others" else []},
            "expiration": self._expiration(),
        }
        items = [
            {
                "Update": {
                    "TableName": self.table,
                    "Key": self._head(group),
                    "UpdateExpression": "SET #w = :next, expiration = :exp",
                    "ConditionExpression": head_condition,
                    "ExpressionAttributeNames": {"#w": "window"},
                    "ExpressionAttributeValues": head_values,
                }
            },
            {"Put": {"TableName": self.table, "Item": state, "ConditionExpression": "attribute_not_exists(id)"}},
            marker,
        ]
        try:
            self._ddb().transact_write_items(TransactItems=items)
        except Exception as exc:
            reasons = _cancellation(exc)
            if reasons is None:
                raise
            if reasons[2].get("Code") == "ConditionalCheckFailed":
                return DUPLICATE
            if any(r.get("Code") == "ConditionalCheckFailed" for r in reasons[:2]):
                return None  # another run opened it first: count in theirs
            raise
        return OPENED

    def close(self, group: Group, window: int, now: float, closed_by: str) -> tuple[Digest | None, bool]:
        """Close window n (once) and read what it holds: (the digest, whether this call closed it).
        A window closed before is read again (a close that died before sending it is re-run)."""
        newly = True
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
                    ":now": {"N": _num(now)},
                    ":by": {"S": closed_by},
                },
                ReturnValues="ALL_NEW",
            )
            item = answer["Attributes"]
        except Exception as exc:
            if _code(exc) != "ConditionalCheckFailedException":
                raise
            newly = False
            found = self._ddb().get_item(TableName=self.table, Key=self._window(group, window), ConsistentRead=True).get("Item")
            if found is None:
                return None, False  # never opened (its opener lost the race or died), or long expired
            item = found
        return _digest(group, window, _plain(item)), newly


class WindowContention(Exception):
    """An event lost every race for its window (a storm of openers and closers): retried by Lambda."""


def _plain(item: dict[str, Any]) -> dict[str, Any]:
    """A DynamoDB item as plain Python (the few types windows use)."""
    from boto3.dynamodb.types import TypeDeserializer

    deserializer = TypeDeserializer()
    out = {k: deserializer.deserialize(v) for k, v in item.items()}
    return {k: (float(v) if isinstance(v, Decimal) else v) for k, v in out.items()}


def _num(value: float) -> str:
    return f"{value:.6f}"


def _code(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    return str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""


def _cancellation(exc: Exception) -> list[dict[str, Any]] | None:
    """A cancelled transaction's reasons, one per item; None for any other error."""
    if _code(exc) != "TransactionCanceledException":
        return None
    reasons = getattr(exc, "response", {}).get("CancellationReasons")
    return list(reasons) if isinstance(reasons, list) else None

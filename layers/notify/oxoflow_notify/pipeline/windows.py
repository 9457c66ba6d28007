"""Digest windows in DynamoDB: opened by a conditional write, added to atomically, closed once.

On the delivery ledger's table (key ``id``, TTL on ``expiration``), per group (webhook, workflow,
run; ``digest.group_of``):

- ``oxoflow-digest#<group>``: the head, the number of the group's current window;
- ``oxoflow-digest#<group>#<n>``: window n: state (open, closed), counts per event, total, the
  kept events (failed and others, each list capped), their bytes, its close's token;
- ``oxoflow-digested#<delivery id>``: one marker per (event, webhook) counted.

Each event is counted by one transaction: the marker (only if absent) and the window's update
(only while it is open and the kept events fit). So an SNS redelivery, a second dispatcher or a
run that died half way through never counts an event twice, and a crash never counts it half:
both writes happen, or neither. A window is opened by a transaction too: the head moves from n to
n + 1 only if it still says n, the new window is created with its first event, and the marker is
written. Before that transaction the opener queues the window's close (a delayed message on the
retry queue, with the window's token): every window that exists has a close on its way.

Closing flips the state to closed (conditionally) and reads what it held in the same write:
events added before the flip are in the digest, events after it open the next window. Only the
close that flipped it, or the window's own close (its token) come again after a crash, hands the
digest on: the other closes that raced to open or close it send nothing.

Self-healing: an open window past its duration plus STALE_AFTER (its close was lost, or came before
the window existed) is closed by the next event, which opens the next window; so is a window whose
kept events would outgrow WINDOW_BYTES. A close that finds no window while the group's head has not
reached it comes back once more. Lost races and DynamoDB's transaction conflicts are tried again
after a short jittered pause; an event that loses every round fails its invocation (an AWS fault:
Lambda retries it, and the marker keeps it from counting twice).
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

from oxoflow_notify.aws.dynamo import OnTable, cancellation_reasons, error_code, number
from oxoflow_notify.errors import InfrastructureError
from oxoflow_notify.inbound.events import format_timestamp

from . import digest as limits
from .digest import KEEP_FAILED, KEEP_OTHER, STALE_AFTER, Digest, digest_delivery_id, kept_form, size_of
from .retry import CLOSE_SCHEMA

OPEN = "open"
CLOSED = "closed"
ADDED = "added"
OPENED = "opened"
DUPLICATE = "duplicate"
CONFLICT = "conflict"  # a transaction conflict (another write to the same item at once): look again


@dataclass(frozen=True)
class Group:
    """One digest group and what its close message must carry to find its webhook again."""

    key: str
    config_key: str
    webhook_id: str
    workflow: str
    run_id: str | None
    seconds: float

    def close_message(self, window: int, token: str | None = None, closed_by: str = "timer", again: int = 0) -> dict[str, Any]:
        """``token``: set on the window's own close (its opener's); ``again``: how often this close
        came back because the window was not there yet."""
        return {
            "schema": CLOSE_SCHEMA,
            "group": self.key,
            "window": window,
            "token": token,
            "closed_by": closed_by,
            "again": again,
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


@dataclass(frozen=True)
class Closing:
    """What a close found: the digest (None when the window holds nothing or is not there), whether
    this close flipped it, the window's token, and whether the window is not there *yet* (the
    group's head is behind it: its opener has not committed)."""

    digest: Digest | None
    newly: bool
    token: str | None = None
    not_yet: bool = False


# (group, window, delay seconds, token, closed_by): queue a window's close
Schedule = Callable[[Group, int, float, "str | None", str], None]


class WindowStore(Protocol):
    def add(self, group: Group, event: dict[str, Any], event_key: str, now: float, schedule: Schedule) -> str: ...

    def close(self, group: Group, window: int, now: float, closed_by: str) -> Closing: ...

    def current(self, group: Group) -> int | None: ...


class WindowContention(InfrastructureError):
    """An event lost every race for its window (a storm of openers, closers and transaction
    conflicts): its invocation fails and Lambda retries it; its marker keeps it from counting twice."""


def _is_failed(event: dict[str, Any]) -> bool:
    return event.get("event") == "RuleFailed"


def _overdue(opened: float, group: Group, now: float) -> bool:
    """Open past its duration and STALE_AFTER more: its close was lost, or came before it existed."""
    return opened + group.seconds + STALE_AFTER < now


def _digest(group: Group, window: int, state: dict[str, Any]) -> Digest | None:
    """A window's state (as the store holds it, plain Python) as the digest it sends."""
    if not state.get("total"):
        return None
    failed = [json.loads(e) for e in state.get("failed", [])]
    others = [json.loads(e) for e in state.get("others", [])]
    return Digest(
        id=digest_delivery_id(group.key, window, float(state["opened"])),
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
    """The same rules in memory, for unit tests (one process only)."""

    def __init__(self) -> None:
        self.heads: dict[str, int] = {}
        self.windows: dict[tuple[str, int], dict[str, Any]] = {}
        self.markers: set[str] = set()
        self._lock = threading.Lock()

    def add(self, group: Group, event: dict[str, Any], event_key: str, now: float, schedule: Schedule) -> str:
        kept = json.dumps(kept_form(event), ensure_ascii=False, separators=(",", ":"))
        size = size_of(json.loads(kept))
        lst, cap = ("failed", KEEP_FAILED) if _is_failed(event) else ("others", KEEP_OTHER)
        with self._lock:
            if event_key in self.markers:
                return DUPLICATE
            n = self.heads.get(group.key, 0)
            state = self.windows.get((group.key, n))
            if state is not None and state["state"] == OPEN:
                if _overdue(state["opened"], group, now):
                    schedule(group, n, 0, state["token"], "timer")  # its close was lost: close it now, open the next
                elif len(state[lst]) < cap and state["bytes"] + size > limits.WINDOW_BYTES:
                    schedule(group, n, 0, state["token"], "full")  # would outgrow: close it now, open the next
                else:
                    if len(state[lst]) < cap:
                        state[lst].append(kept)
                        state["bytes"] += size
                    state["counts"][event["event"]] = state["counts"].get(event["event"], 0) + 1
                    state["total"] += 1
                    self.markers.add(event_key)
                    return ADDED
            token = uuid.uuid4().hex
            schedule(group, n + 1, group.seconds, token, "timer")
            self.heads[group.key] = n + 1
            self.windows[(group.key, n + 1)] = {
                "state": OPEN,
                "opened": now,
                "counts": {event["event"]: 1},
                "total": 1,
                "failed": [kept] if lst == "failed" else [],
                "others": [kept] if lst == "others" else [],
                "bytes": size,
                "token": token,
            }
            self.markers.add(event_key)
            return OPENED

    def close(self, group: Group, window: int, now: float, closed_by: str) -> Closing:
        with self._lock:
            state = self.windows.get((group.key, window))
            if state is None:
                return Closing(None, False, not_yet=self.heads.get(group.key, 0) < window)
            newly = state["state"] == OPEN
            if newly:
                state.update(state=CLOSED, closed_at=now, closed_by=closed_by)
            return Closing(_digest(group, window, state), newly, state["token"])

    def current(self, group: Group) -> int | None:
        with self._lock:
            return self.heads.get(group.key)


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
            if _overdue(float(item.get("opened", {}).get("N", now)), group, now):
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
            ":fresh": {"N": number(now - group.seconds - STALE_AFTER)},
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
                return Closing(_digest(group, window, item), True, _text(item.get("token")))
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
            return Closing(_digest(group, window, item), False, _text(item.get("token")))
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

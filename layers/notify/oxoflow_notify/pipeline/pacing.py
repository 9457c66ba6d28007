"""Per-webhook rate limits that hold across every function instance: slots reserved in DynamoDB.

Each limited target (``breaker.target_of``: the whole URL, as a digest) has one item on the
ledger's table, ``oxoflow-pace#<target>``. It holds, per tenant (the config file the webhook comes
from, as a digest), ``n_<tenant>``: the earliest time that tenant's next POST to the target may
start (a GCRA, "generic cell rate algorithm", without burst); ``paused``: until when the receiver's
429 asked everyone to wait; and ``clock``: the latest time any sender saw when it last wrote.

Slots are ``INTERVAL_MARGIN`` wider than 1/rate, so a receiver that counts arrival times in any
sliding second sees at most ``rate_limit`` of them while arrivals jitter by up to 0.1 s.

Times are on the item's clock, not on each caller's: a caller whose clock is behind the item's
``clock`` (an update refused because ``clock`` is ahead of it, or any read) moves its own clock
forward by the difference, for every later slot, pause and wait. A caller whose clock is ahead
cannot know it is ahead, so its first reservation on a target reads the item first and, when a
backlog was reserved there, puts its slot after that backlog plus the time since the item was
last written (at most ``MAX_SKEW``): a clock 2 s ahead costs that target up to 2 s once, and
never lets two slots of one tenant start less than an interval apart.

A slot a few seconds away is waited for in the sending thread; a later one is carried by the
delivery's retry message, which comes back just before it (``notifier``), so a storm queues in
order instead of polling. A slot missed by more than half an interval is given up and a new one
reserved. A 429 with a wait records ``paused`` for the target, shared by every tenant (the
receiver asked): new slots come after it, and a held delivery whose slot falls inside it takes a
new one when it comes back.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from oxoflow_notify.aws.dynamo import OnTable, error_code, number

HORIZON = 86_400.0  # seconds: no slot is reserved further ahead (a held delivery hops through the retry queue 15 minutes at a time)
INTERVAL_MARGIN = 0.1  # slots are 1/rate x 1.1 apart: arrivals may jitter by 0.1 s and still fit `rate` in any second
MAX_SKEW = 4.0  # seconds: the most two senders' clocks are assumed to differ by (each within 2 s of the truth)
CLOCK_SLACK = 0.02  # seconds: a caller this little behind the item's clock is racing, not skewed


def interval(rate: float) -> float:
    """Seconds between two slots at ``rate`` per second, with the jitter margin."""
    return (1 + INTERVAL_MARGIN) / rate


def tenant_of(source: str) -> str:
    """The short name of a config file in attribute names (a digest: keys may hold anything)."""
    return hashlib.sha256(source.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Slot:
    at: float | None  # when this delivery may start its POST (item clock); None: nothing reserved (beyond the horizon)
    free_at: float  # when to ask again, when nothing was reserved


class Pacer(Protocol):
    def now(self, local: float) -> float: ...

    def reserve(self, target: str, rate: float, now: float, tenant: str = "") -> Slot: ...

    def pause(self, target: str, until: float) -> None: ...

    def paused_until(self, target: str) -> float: ...


class SharedClock:
    """This instance's view of the items' clock: its own clock, moved forward by what it learned."""

    def __init__(self) -> None:
        self.ahead = 0.0  # seconds the items' clock is ahead of ours (never negative: see the module doc)
        self.contacted: set[str] = set()  # targets this instance has read or written

    def now(self, local: float) -> float:
        return local + self.ahead

    def learn(self, item_clock: float, local: float) -> None:
        """Someone wrote ``item_clock`` before we read it: our clock is at least that far behind."""
        behind = item_clock - self.now(local)
        if behind > CLOCK_SLACK:
            self.ahead += behind


@dataclass
class _Item:
    next: dict[str, float] = field(default_factory=dict)
    paused: float = 0.0
    clock: float = 0.0


def _first_slot(item: _Item, tenant: str, now: float, first: bool) -> float:
    """Where a reservation goes, given the item as it stands (the rule both pacers follow)."""
    at = max(item.next.get(tenant, now), now, item.paused)
    last = item.next.get(tenant)
    if first and last is not None and last > item.clock and now - item.clock > CLOCK_SLACK:
        at = max(at, last + min(now - item.clock, MAX_SKEW))  # we may be ahead by that much: after the backlog
    return at


class MemoryStore:
    """The items of MemoryPacers that share them (one table, several instances)."""

    def __init__(self) -> None:
        self.items: dict[str, _Item] = {}
        self.lock = threading.Lock()


class MemoryPacer:
    """The same rule in memory (unit tests); pacers given one ``store`` are instances sharing a table."""

    def __init__(self, store: MemoryStore | None = None) -> None:
        self.store = store or MemoryStore()
        self.clock = SharedClock()

    @property
    def next(self) -> dict[str, float]:
        """Every target's next free slot for the default tenant (tests)."""
        return {target: item.next[""] for target, item in self.store.items.items() if "" in item.next}

    def now(self, local: float) -> float:
        return self.clock.now(local)

    def reserve(self, target: str, rate: float, now: float, tenant: str = "") -> Slot:
        with self.store.lock:
            item = self.store.items.setdefault(target, _Item())
            self.clock.learn(item.clock, now)
            shared = self.clock.now(now)
            at = _first_slot(item, tenant, shared, target not in self.clock.contacted)
            self.clock.contacted.add(target)
            item.clock = max(item.clock, shared)
            if at > shared + HORIZON:
                return Slot(None, at - HORIZON)
            item.next[tenant] = at + interval(rate)
            return Slot(at, at)

    def pause(self, target: str, until: float) -> None:
        with self.store.lock:
            item = self.store.items.setdefault(target, _Item())
            item.paused = max(item.paused, until)

    def paused_until(self, target: str) -> float:
        with self.store.lock:
            return self.store.items.get(target, _Item()).paused


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
            at = shared if state is None else _first_slot(state, name, shared, first)
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

    def _read(self, target: str, name: str, local: float) -> _Item:
        item = self._ddb().get_item(TableName=self.table, Key=self._key(target), ConsistentRead=True).get("Item") or {}
        return self._item(item, name, local)

    def _item(self, raw: dict[str, Any], name: str, local: float) -> _Item:
        """The item as this tenant sees it; learns the item's clock."""

        def get(attr: str) -> float | None:
            return float(raw[attr]["N"]) if attr in raw else None

        item = _Item(paused=get("paused") or 0.0, clock=get("clock") or 0.0)
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

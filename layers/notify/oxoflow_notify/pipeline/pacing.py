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
new one when it comes back. The items live on the ledger's table (``aws.pacing_table``).
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from typing import Protocol

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
class PaceItem:
    """A target's item as a pacer sees it: each tenant's next free slot, the pause, the item's clock."""

    next: dict[str, float] = field(default_factory=dict)
    paused: float = 0.0
    clock: float = 0.0


def first_slot(item: PaceItem, tenant: str, now: float, first: bool) -> float:
    """Where a reservation goes, given the item as it stands (the rule every pacer follows)."""
    at = max(item.next.get(tenant, now), now, item.paused)
    last = item.next.get(tenant)
    if first and last is not None and last > item.clock and now - item.clock > CLOCK_SLACK:
        at = max(at, last + min(now - item.clock, MAX_SKEW))  # we may be ahead by that much: after the backlog
    return at


class MemoryStore:
    """The items of MemoryPacers that share them (one table, several instances)."""

    def __init__(self) -> None:
        self.items: dict[str, PaceItem] = {}
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
            item = self.store.items.setdefault(target, PaceItem())
            self.clock.learn(item.clock, now)
            shared = self.clock.now(now)
            at = first_slot(item, tenant, shared, target not in self.clock.contacted)
            self.clock.contacted.add(target)
            item.clock = max(item.clock, shared)
            if at > shared + HORIZON:
                return Slot(None, at - HORIZON)
            item.next[tenant] = at + interval(rate)
            return Slot(at, at)

    def pause(self, target: str, until: float) -> None:
        with self.store.lock:
            item = self.store.items.setdefault(target, PaceItem())
            item.paused = max(item.paused, until)

    def paused_until(self, target: str) -> float:
        with self.store.lock:
            return self.store.items.get(target, PaceItem()).paused

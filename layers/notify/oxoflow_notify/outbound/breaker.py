"""A circuit breaker per config file and webhook target, for the life of a warm container.

Keyed by the webhook's whole target (scheme, host, port and path), not the host: every Slack
webhook lives on hooks.slack.com, and one dead channel must not hold the healthy ones. And keyed
by the config file the webhook comes from (``circuit_of``): teams share one deployment, and a
failure one team's settings cause (a timeout shorter than the receiver's answer, a wrong secret)
must never hold another team's deliveries to the same URL, nor win each half-open trial for it. It opens
only on a sustained failure — ``threshold`` retryable failures in a row *and* at least
``min_failure_rate`` of the last answers failed, over at least half a ``window`` of them — so a
mostly healthy receiver that fails now and then is never held, and one blip in a fresh container
(a whole fan-out failing at once) does not open it either. While open (``cooldown`` seconds) the
target's deliveries wait in the retry queue without spending an attempt, one queue send each;
then one delivery is let through as the trial (the others keep waiting), and its result closes
or reopens the circuit.

The state lives in one warm container: other instances of the function learn on their own. It
holds at most ``max_circuits`` circuits (MAX_CIRCUITS), the least recently used forgotten first,
so a container that meets ever new URLs or config files does not grow without end.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from functools import lru_cache

from oxoflow_notify.defaults import DEFAULTS

MAX_CIRCUITS = DEFAULTS.max_circuits  # circuits one warm container remembers (a few hundred bytes each)


def target_of(url: str) -> str:
    """A short digest of the whole URL: the unit that fails together, never the URL itself (it may hold a token)."""
    return hashlib.sha256(url.encode()).hexdigest()[:16]


@lru_cache(maxsize=1024)  # read at least twice per attempt (before the POST and when it is settled)
def circuit_of(source: str, url: str) -> str:
    """The breaker's unit: one config file's webhooks to one target, as a short digest (never the
    URL). Each file learns on its own, so no team's failures open, or keep open, another's circuit."""
    return hashlib.sha256(f"{source}\n{url}".encode()).hexdigest()[:16]


class CircuitBreaker:
    def __init__(
        self,
        threshold: int = DEFAULTS.circuit_threshold,
        cooldown: float = DEFAULTS.circuit_cooldown,
        clock: Callable[[], float] = time.monotonic,
        window: int | None = None,
        min_failure_rate: float = DEFAULTS.circuit_min_failure_rate,
        max_circuits: int = MAX_CIRCUITS,
    ) -> None:
        self.threshold = threshold
        self.cooldown = cooldown
        self.clock = clock
        self.window = window or 4 * threshold  # 20 answers for the default threshold of 5
        self.min_failure_rate = min_failure_rate
        self._streak: dict[str, int] = {}
        self._recent: dict[str, deque[bool]] = {}
        self._open_until: dict[str, float] = {}
        self._trial: dict[str, float] = {}  # target -> when its half-open trial was let through
        self.max_circuits = max_circuits
        self._used: OrderedDict[str, None] = OrderedDict()  # circuits with state, least recently used first

    def __len__(self) -> int:
        """How many circuits are remembered."""
        return len(self._used)

    def _touch(self, target: str) -> None:
        """Mark the circuit used; forget the least recently used ones beyond ``max_circuits``."""
        self._used[target] = None
        self._used.move_to_end(target)
        while len(self._used) > self.max_circuits:
            old, _ = self._used.popitem(last=False)
            for state in (self._streak, self._recent, self._open_until, self._trial):
                state.pop(old, None)

    def blocked_for(self, target: str) -> float:
        """Seconds the target stays closed to us; 0 when it may be called."""
        now = self.clock()
        if target in self._used:
            self._used.move_to_end(target)
        trial = self._trial.get(target)
        if trial is not None:
            if now - trial < self.cooldown:
                return self.cooldown  # a trial is under way: the others wait for its result
            del self._trial[target]  # the trial never reported back: let another through
        until = self._open_until.get(target)
        if until is None:
            return 0.0
        remaining = until - now
        if remaining <= 0:
            del self._open_until[target]  # half-open: this delivery is the trial
            self._trial[target] = now
            return 0.0
        return remaining

    def record(self, target: str, failed: bool) -> None:
        self._touch(target)
        self._trial.pop(target, None)
        recent = self._recent.setdefault(target, deque(maxlen=self.window))
        recent.append(failed)
        if not failed:
            self._streak.pop(target, None)
            return
        streak = self._streak.get(target, 0) + 1
        self._streak[target] = streak
        rate = sum(recent) / len(recent)
        sustained = streak >= self.threshold and len(recent) >= self.window // 2 and rate >= self.min_failure_rate
        if sustained and self.cooldown > 0:
            self._open_until[target] = self.clock() + self.cooldown
            self._streak[target] = self.threshold - 1  # a failed trial reopens at once

"""A circuit breaker per endpoint, for the life of a warm container.

After ``threshold`` retryable failures in a row (timeouts, resets, 5xx, 429) an endpoint is left
alone for ``cooldown`` seconds: its deliveries go straight to the retry queue, so one dead
endpoint cannot burn Lambda time or hold up the fan-out to the others. After the cool-down one
delivery is let through; a success closes the circuit, a failure opens it again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from urllib.parse import urlsplit


def endpoint_of(url: str) -> str:
    """scheme://host:port: the unit that fails together. Never the path (it may hold a token)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"


class CircuitBreaker:
    def __init__(self, threshold: int = 5, cooldown: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold = threshold
        self.cooldown = cooldown
        self.clock = clock
        self._failures: dict[str, int] = {}
        self._open_until: dict[str, float] = {}

    def blocked_for(self, endpoint: str) -> float:
        """Seconds the endpoint stays closed to us; 0 when it may be called."""
        until = self._open_until.get(endpoint)
        if until is None:
            return 0.0
        remaining = until - self.clock()
        if remaining <= 0:
            del self._open_until[endpoint]  # half-open: the next delivery is the trial
            return 0.0
        return remaining

    def record(self, endpoint: str, failed: bool) -> None:
        if not failed:
            self._failures.pop(endpoint, None)
            return
        count = self._failures.get(endpoint, 0) + 1
        self._failures[endpoint] = count
        if count >= self.threshold and self.cooldown > 0:
            self._open_until[endpoint] = self.clock() + self.cooldown
            self._failures[endpoint] = self.threshold - 1  # a failed trial reopens at once

"""The functions' time, moved by the caller (tests and the demo): nothing waits for a deadline.

``Undelayed`` leaves SQS's delays to that clock: a retry-queue message is visible at once, and the
functions, reading the moved clock, act on it only once its time has come (a run's timer hops
again until then). Only for a clock that is moved past a deadline before the queue is drained:
drained earlier, a timer would hop at once for ever."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class Undelayed:
    """A message queue whose sends ignore their delay."""

    def __init__(self, queue: Any) -> None:
        self.queue = queue

    def send(self, message: dict[str, Any], delay_seconds: int = 0) -> None:
        self.queue.send(message, delay_seconds=0)


def moved_clocks(stack: Any, now: Callable[[], float], functions: tuple[str, ...] = ("DispatchFunction", "RetryFunction")) -> None:
    """The functions' clocks (the notifier's and its config cache's) read ``now``; their retry queue undelayed."""
    for function in functions:
        stack.handler(function)
        notifier = stack.modules[function].notifier
        notifier.clock = notifier.store.clock = now
        notifier.retry_queue = Undelayed(notifier.retry_queue)

"""The invocation's time, as POSTs may spend it: no POST starts that could not finish before the
function times out, and no webhook's deadline is longer than a whole invocation can give."""

from __future__ import annotations

from collections.abc import Callable

from oxoflow_notify.outbound.delivery import Outcome
from oxoflow_notify.outbound.failures import Failure


class TimeBudget:
    """What Lambda gives one invocation, less ``reserve`` (seconds kept for queueing retries and
    flushing metrics afterwards). Outside Lambda (tests, the CLI) time is not counted."""

    def __init__(self, reserve: float) -> None:
        self.reserve = reserve
        self._remaining_ms: Callable[[], int] | None = None
        self._capacity: float | None = None  # seconds for POSTs in a whole invocation of this function

    def bind(self, remaining_ms: Callable[[], int]) -> None:
        """This invocation's clock (the Lambda context's ``get_remaining_time_in_millis``)."""
        self._remaining_ms = remaining_ms
        self._capacity = remaining_ms() / 1000 - self.reserve

    def left(self) -> float | None:
        """Seconds this invocation may still spend on POSTs (None outside Lambda)."""
        if self._remaining_ms is None:
            return None
        return self._remaining_ms() / 1000 - self.reserve

    def remaining(self) -> float | None:
        """Seconds left in the whole invocation, reserve included (None outside Lambda)."""
        return None if self._remaining_ms is None else self._remaining_ms() / 1000

    def cap(self, budget: float) -> float:
        """A delivery's deadline, cut to what a whole invocation can give (a function timeout set
        below a webhook's timeout would otherwise hold that delivery for ever)."""
        return budget if self._capacity is None else max(min(budget, self._capacity), 0.1)

    def too_late(self, budget: float) -> Outcome | None:
        """Failure.OUT_OF_TIME when ``budget`` seconds no longer fit in what is left of the invocation."""
        left = self.left()
        if left is None or left >= budget:
            return None
        return Outcome(None, Failure.OUT_OF_TIME, 0.0, detail=f"{max(left, 0):.1f} s left in this invocation, {budget:.1f} s needed")

"""One invocation's account: what it did (``Report``, returned to the handler) and its metrics
(``MetricsTally``, flushed once at its end), carried together by every step that settles something."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from oxoflow_notify.observability import MetricsTally

from .delivery_log import Entry


@dataclass
class Report:
    """What one invocation did; returned by the handlers so callers and tests can read it."""

    delivered: int = 0
    retrying: int = 0
    dead_lettered: int = 0
    already_delivered: int = 0
    held: int = 0  # of `retrying`: queued again without spending an attempt
    events: int = 0
    digested: int = 0  # (event, webhook) pairs counted in a digest window instead of sent alone
    deliveries: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "delivered": self.delivered,
            "retrying": self.retrying,
            "dead_lettered": self.dead_lettered,
            "already_delivered": self.already_delivered,
            "held": self.held,
            "digested": self.digested,
            "deliveries": self.deliveries,
        }


@dataclass
class Invocation:
    """The report and the metrics of one handler call: one object, not a pair passed along."""

    report: Report = field(default_factory=Report)
    tally: MetricsTally = field(default_factory=MetricsTally)
    entries: list[Entry] = field(default_factory=list)  # the delivery log's, written once at the end (Settlement.finish)

    def count(self, metric: str, fmt: str) -> None:
        self.tally.count(metric, fmt)

    def flush(self) -> None:
        self.tally.flush()

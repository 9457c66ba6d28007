"""Moved to ``oxoflow_notify.observability`` (every room may log and count; issue #21).

A temporary re-export for ``pipeline/notifier.py`` while it is split; the lead removes it after.
"""

from oxoflow_notify.observability import (
    ALREADY,
    DEAD_LETTERED,
    DELIVERED,
    DUPLICATE,
    FAILED,
    HELD_METRIC,
    LATENCY,
    RETRIED,
    SERVICE,
    MetricsTally,
    logger,
)

__all__ = [
    "ALREADY",
    "DEAD_LETTERED",
    "DELIVERED",
    "DUPLICATE",
    "FAILED",
    "HELD_METRIC",
    "LATENCY",
    "RETRIED",
    "SERVICE",
    "MetricsTally",
    "logger",
]

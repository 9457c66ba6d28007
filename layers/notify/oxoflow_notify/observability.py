"""Powertools Logger and per-invocation EMF metrics, split by payload format."""

from __future__ import annotations

import os
from collections import defaultdict

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

SERVICE = "oxoflow-notify"
logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME", SERVICE))

DELIVERED = "Delivered"
FAILED = "Failed"  # any attempt that did not succeed, whatever happens next
RETRIED = "Retried"
DEAD_LETTERED = "DeadLettered"
ALREADY = "AlreadyDelivered"  # a redelivery the ledger stopped from posting twice
DUPLICATE = "DuplicateAttempt"  # a re-run of an attempt already handed on (SQS or SNS redelivery): nothing sent
HELD_METRIC = "Held"  # queued again without spending an attempt (no time left, another run's claim, circuit open)
LATENCY = "DeliveryLatency"
LOG_FAILED = "DeliveryLogFailed"  # a delivery log write that failed: the deliveries stand, their entries are lost


_EMITTERS: dict[tuple[str, str], EphemeralMetrics] = {}


def _emitter(namespace: str, fmt: str) -> EphemeralMetrics:
    """One emitter per format for the container's life: building one costs more than using it."""
    key = (namespace, fmt)
    if key not in _EMITTERS:
        emitter = EphemeralMetrics(namespace=namespace, service=SERVICE)
        emitter.set_default_dimensions(format=fmt)  # survives every flush
        _EMITTERS[key] = emitter
    return _EMITTERS[key]


class MetricsTally:
    """Counts during one invocation, flushed as one EMF document per format.

    One document per format (not per delivery) keeps a 50-webhook fan-out to a handful of lines.
    """

    def __init__(self, namespace: str | None = None) -> None:
        self.namespace = namespace or os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "OxoflowNotify")
        self.counts: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self.latencies: dict[str, list[float]] = defaultdict(list)

    def count(self, name: str, fmt: str, value: float = 1) -> None:
        self.counts[str(fmt)][name] += value

    def latency(self, fmt: str, milliseconds: float) -> None:
        self.latencies[fmt].append(milliseconds)

    def flush(self) -> None:
        for fmt in sorted(set(self.counts) | set(self.latencies)):
            metrics = _emitter(self.namespace, fmt)
            for name, value in sorted(self.counts[fmt].items()):
                metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
            for ms in self.latencies[fmt]:
                metrics.add_metric(name=LATENCY, unit=MetricUnit.Milliseconds, value=round(ms, 1))
            metrics.flush_metrics()
        self.counts.clear()
        self.latencies.clear()

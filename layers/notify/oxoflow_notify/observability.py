"""Powertools Logger and per-invocation EMF metrics, split by payload format."""

from __future__ import annotations

import json
import os
import time
from collections import defaultdict
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit
from aws_lambda_powertools.metrics.functions import is_metrics_disabled
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.constants import MAX_METRICS

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


# Each flush writes the EMF document Powertools would: its shape (namespace, dimensions, metric
# definitions) comes from Powertools' own serializer, once per format and set of names, and the
# flush fills in the values. Adding each value through ``add_metric`` validated it and formatted a
# debug line every time: about 60 us, 8% of a warm event's CPU (docs/performance.md); the test
# compares the two documents byte for byte.
_SHAPES: dict[tuple[str, str, tuple[str, ...]], dict[str, Any]] = {}
_UNITS = {LATENCY: MetricUnit.Milliseconds}  # every other metric is a Count


def _shape(namespace: str, fmt: str, names: tuple[str, ...]) -> dict[str, Any]:
    """Powertools' document for these metrics of this format, its values to be filled in."""
    key = (namespace, fmt, names)
    shape = _SHAPES.get(key)
    if shape is None:
        emitter = EphemeralMetrics(namespace=namespace, service=SERVICE)
        emitter.set_default_dimensions(format=fmt)
        for name in names:
            emitter.add_metric(name=name, unit=_UNITS.get(name, MetricUnit.Count), value=0)
        shape = dict(emitter.serialize_metric_set())
        _SHAPES[key] = shape
    return shape


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
        if not is_metrics_disabled():  # POWERTOOLS_METRICS_DISABLED, POWERTOOLS_DEV: as Powertools reads them
            for fmt in sorted(set(self.counts) | set(self.latencies)):
                values = {name: [float(value)] for name, value in sorted(self.counts[fmt].items())}
                if self.latencies[fmt]:
                    values[LATENCY] = [round(ms, 1) for ms in self.latencies[fmt]]
                _emit(self.namespace, fmt, values)
        self.counts.clear()
        self.latencies.clear()


def _emit(namespace: str, fmt: str, values: dict[str, list[float]]) -> None:
    """One document per MAX_METRICS values of a metric, as EMF allows (Powertools splits there too)."""
    while values:
        part = {name: found[:MAX_METRICS] for name, found in values.items()}
        values = {name: found[MAX_METRICS:] for name, found in values.items() if len(found) > MAX_METRICS}
        document = dict(_shape(namespace, fmt, tuple(part)))
        document["_aws"] = {**document["_aws"], "Timestamp": int(time.time() * 1000)}
        document.update(part)
        print(json.dumps(document, separators=(",", ":")))

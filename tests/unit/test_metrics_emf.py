"""The EMF documents a flush writes are the ones Powertools writes for the same metrics (its own
``add_metric`` + ``flush_metrics`` as the oracle), byte for byte once the timestamp is set aside."""

from __future__ import annotations

import contextlib
import io
import json
from typing import Any

import pytest
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

from oxoflow_notify import observability
from oxoflow_notify.observability import DELIVERED, FAILED, LATENCY, RETRIED, SERVICE, MetricsTally


def _documents(write: Any) -> list[dict[str, Any]]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        write()
    documents = [json.loads(line) for line in out.getvalue().splitlines()]
    for document in documents:
        assert isinstance(document["_aws"].pop("Timestamp"), int)
    return documents


def _powertools(fmt: str, counts: dict[str, float], latencies: list[float]) -> list[dict[str, Any]]:
    emitter = EphemeralMetrics(namespace="OxoflowNotify", service=SERVICE)
    emitter.set_default_dimensions(format=fmt)

    def write() -> None:
        for name, value in sorted(counts.items()):
            emitter.add_metric(name=name, unit=MetricUnit.Count, value=value)
        for ms in latencies:
            emitter.add_metric(name=LATENCY, unit=MetricUnit.Milliseconds, value=round(ms, 1))
        emitter.flush_metrics()

    return _documents(write)


def _ours(fmt: str, counts: dict[str, float], latencies: list[float]) -> list[dict[str, Any]]:
    tally = MetricsTally("OxoflowNotify")
    for name, value in counts.items():
        tally.count(name, fmt, value)
    for ms in latencies:
        tally.latency(fmt, ms)
    return _documents(tally.flush)


@pytest.mark.parametrize(
    ("fmt", "counts", "latencies"),
    [
        ("json", {DELIVERED: 1}, [0.61]),
        ("slack", {DELIVERED: 3, FAILED: 2, RETRIED: 2}, [12.04, 250.0, 3.33, 0.05, 9999.96]),
        ("teams", {FAILED: 1}, []),
        ("discord", {DELIVERED: 99}, [float(i) / 3 for i in range(99)]),
    ],
)
def test_given_a_tally_when_flushed_then_the_document_is_the_one_powertools_writes(
    fmt: str, counts: dict[str, float], latencies: list[float]
) -> None:
    # given: the same metrics counted for one format
    # when: our flush and Powertools' own add_metric + flush_metrics write them
    ours, theirs = _ours(fmt, counts, latencies), _powertools(fmt, counts, latencies)
    # then: the same documents, key order and values included
    assert [json.dumps(d) for d in ours] == [json.dumps(d) for d in theirs]


def test_given_more_values_than_emf_allows_when_flushed_then_split_at_100_and_none_lost() -> None:
    # given: a 250-webhook fan-out's latencies (EMF allows 100 values per metric in a document)
    latencies = [float(i) for i in range(250)]
    # when
    documents = _ours("json", {DELIVERED: 250}, latencies)
    # then: three documents, none over 100 values, every latency once, the count once
    assert [len(d[LATENCY]) for d in documents] == [100, 100, 50]
    assert [v for d in documents for v in d[LATENCY]] == latencies
    assert [d.get(DELIVERED) for d in documents] == [[250.0], None, None]
    for document in documents:
        names = [m["Name"] for m in document["_aws"]["CloudWatchMetrics"][0]["Metrics"]]
        assert sorted(names) == sorted(k for k in document if k in (DELIVERED, LATENCY))


def test_given_metrics_disabled_when_flushed_then_nothing_is_written_and_the_tally_is_empty(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given: POWERTOOLS_METRICS_DISABLED, which Powertools honours
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    tally = MetricsTally("OxoflowNotify")
    tally.count(DELIVERED, "json")
    # when / then
    assert _documents(tally.flush) == []
    assert not tally.counts and not tally.latencies


def test_given_two_flushes_when_the_shape_is_reused_then_values_never_leak_between_them() -> None:
    # given: one flush with a failure, then one without
    first = _ours("json", {DELIVERED: 1, FAILED: 1}, [1.0])
    second = _ours("json", {DELIVERED: 1}, [2.0])
    # then: the second carries only its own metrics and values
    assert first[0][FAILED] == [1.0]
    assert FAILED not in second[0] and second[0][LATENCY] == [2.0]
    assert all(observability._SHAPES[k][DELIVERED] == [0.0] for k in observability._SHAPES if DELIVERED in k[2])

"""The metrics pieces without a broker: the batch histogram reads like
prometheus-client's own, the read process's merge keeps one valid family,
and a fs.metrics snapshot round-trips."""
from __future__ import annotations

import shutil
import subprocess

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from agents.batch_histogram import BatchHistogram
from agents.metrics import LATENCY_BUCKETS, Metrics
from agents.metrics_publisher import decode, encode, take
from app.http_metrics import merged_exposition, reader_histogram

VALUES = [0.0005, 0.001, 0.003, 0.01, 0.2, 0.2, 7.0, 45.0]


def samples(registry: CollectorRegistry, name: str) -> dict[tuple, float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in registry.collect() for s in f.samples if s.name.startswith(name) and not s.name.endswith("_created")}


def test_batch_histogram_equals_prometheus_histogram() -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    batch = BatchHistogram("h_seconds", "doc", LATENCY_BUCKETS, ("source",))
    ours.register(batch)
    reference = Histogram("h_seconds", "doc", ["source"], buckets=LATENCY_BUCKETS, registry=theirs)
    batch.observe_many(VALUES[:4], ("a",))
    batch.observe(0.2, 2, ("a",))
    batch.observe_many(VALUES[6:], ("a",))
    for value in VALUES:
        reference.labels("a").observe(value)
    got, want = samples(ours, "h_seconds"), samples(theirs, "h_seconds")
    assert got.keys() == want.keys()
    assert all(got[k] == pytest.approx(want[k]) for k in want)  # the sum's order of additions differs
    assert batch.count(("a",)) == len(VALUES)


def promtool(text: bytes) -> subprocess.CompletedProcess:
    tool = shutil.which("promtool")
    if tool is None:
        pytest.skip("promtool not installed (.ci/run installs Debian's prometheus)")
    return subprocess.run([tool, "check", "metrics"], input=text, capture_output=True)


def test_reader_samples_merge_into_the_workers_family() -> None:
    worker = Metrics()
    worker.http_latency.labels("/stats", "GET", "worker").observe(0.002)
    worker.events.labels("departures", "applied").inc(3)
    worker.event_to_prediction.observe_many([0.01, 0.02], ("departures",))
    own = CollectorRegistry()
    reader_histogram(own).labels("/features/{view}/{entity}", "GET", "reader").observe(0.004)
    merged = merged_exposition(generate_latest(worker.registry).decode(), own).decode()
    assert merged.count("# TYPE featurestream_http_request_seconds histogram") == 1
    assert 'featurestream_http_request_seconds_count{method="GET",route="/stats",server="worker"} 1.0' in merged
    assert ('featurestream_http_request_seconds_count{method="GET",route="/features/{view}/{entity}",'
            'server="reader"} 1.0') in merged
    assert 'featurestream_events_total{outcome="applied",source="departures"} 3.0' in merged
    checked = promtool(merged.encode())
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_snapshot_round_trips_the_registry() -> None:
    metrics = Metrics()
    metrics.events.labels("departures", "applied").inc(5)
    metrics.dlq.labels("departures", "late").inc()
    snapshot = decode(encode(take(metrics.registry, "http://127.0.0.1:1", 3, 1.0)))
    assert snapshot.worker == "http://127.0.0.1:1" and snapshot.seq == 3
    assert snapshot.value("featurestream_events_total", source="departures", outcome="applied") == 5
    assert snapshot.value("featurestream_dlq_total", reason="late") == 1
    assert not any(s.name.endswith("_created") for s in snapshot.samples)

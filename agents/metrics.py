"""Prometheus metrics of one worker, in a registry owned by its app.

Never the default ``REGISTRY``: it is global to the process, and tests (and
a process that builds two apps) would see one worker's series in another's.
Everything documented in docs/monitoring.md is defined here; figures that
are cheaper to read than to keep (lag, ages, models, table sizes) are read
at scrape time by ``agents.metrics_scrape``.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram

from agents.batch_histogram import BatchHistogram
from agents.control_records import ModelDeployment
from agents.metrics_scrape import HasConsumer, TableKeys, WorkerCollector
from agents.source_runtime import SourceRuntime

OUTCOMES = ("applied", "late", "duplicate", "invalid", "error")
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
SCORE_BUCKETS = (1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 5e-3, 1e-2, 0.1)
FLUSH_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
HOLD_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)  # up to past the default max wait
FLUSH_SIZE_BUCKETS = (1, 10, 50, 100, 250, 500, 1000, 2000, 4000, 8000)


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    # (source, partition) -> wall time (s) of the last flush that applied an event there
    last_applied_at: dict[tuple[str, int], float] = field(default_factory=dict)
    applied_seen: dict[tuple[str, int], int] = field(default_factory=dict)  # flushed applied count at that flush
    runtimes: Mapping[str, SourceRuntime] = field(default_factory=dict)

    def __post_init__(self) -> None:
        registry = self.registry
        self.events = Counter(
            "featurestream_events", "Records read from event topics, by outcome "
            "(applied, late, duplicate, invalid, error; output_error: an output of a flush failed)",
            ["source", "outcome"], registry=registry,
        )
        self.dlq = Counter(
            "featurestream_dlq", "Records sent to the dead-letter topic, by reason",
            ["source", "reason"], registry=registry,
        )
        self.predictions = Counter(
            "featurestream_predictions", "Predictions published, by model version, role and predicted class",
            ["model", "version", "role", "predicted"], registry=registry,
        )
        self.scoring_errors = Counter(
            "featurestream_scoring_errors", "Events a model failed to score", ["model", "version"],
            registry=registry,
        )
        self.score_latency = BatchHistogram(
            "featurestream_score_seconds", "In-process MOJO scoring latency per event "
            "(a batch's call into genmodel, shared by its rows)", SCORE_BUCKETS,
        )
        self.event_to_prediction = BatchHistogram(
            "featurestream_event_to_prediction_seconds", "From an event's Kafka timestamp (its publication) "
            "to the acknowledgement of its primary and shadow predictions", LATENCY_BUCKETS, ("source",),
        )
        self.flush_seconds = Histogram(
            "featurestream_flush_seconds", "A batch's flush: outputs acknowledged, state written, offsets committed",
            ["source"], buckets=FLUSH_BUCKETS, registry=registry,
        )
        self.commit_seconds = Histogram(
            "featurestream_commit_seconds", "The offset commit at the end of a flush",
            ["source"], buckets=FLUSH_BUCKETS, registry=registry,
        )
        self.flush_events = Histogram(
            "featurestream_flush_events", "Records per flushed batch", ["source"],
            buckets=FLUSH_SIZE_BUCKETS, registry=registry,
        )
        self.http_latency = Histogram(
            "featurestream_http_request_seconds", "HTTP request latency, by route template, method and the "
            "process that answered (worker, or reader: the read process's GET /features)",
            ["route", "method", "server"], buckets=LATENCY_BUCKETS, registry=registry,
        )
        self.control_rejected = Counter(
            "featurestream_control_rejected",
            "Control-plane records refused for their signature (forged, unsigned or stale), by topic role",
            ["topic"], registry=registry,
        )
        self.http_errors = Counter(
            "featurestream_http_errors", "HTTP requests answered with an error, by status", ["status"],
            registry=registry,
        )
        self.cross_source_released = Counter(
            "featurestream_cross_source_released", "Events held for a model's cross-source inputs, released: "
            "complete (every input final) or waited_out (FS_XSOURCE_MAX_WAIT_S passed, or a stop or rebalance)",
            ["source", "outcome"], registry=registry,
        )
        self.cross_source_held = Histogram(
            "featurestream_cross_source_held_seconds", "How long an event waited for its cross-source inputs",
            ["source"], buckets=HOLD_BUCKETS, registry=registry,
        )
        registry.register(self.score_latency)
        registry.register(self.event_to_prediction)

    def watch(self, runtimes: Mapping[str, SourceRuntime], loop: HasConsumer,
              models: Callable[[], Mapping[str, ModelDeployment]], keys_every_s: float = 10.0) -> None:
        """The worker's sources, ingest loop and deployments, read at scrape time."""
        self.runtimes = runtimes
        # Every outcome of every source at 0 from the start: a rate over a
        # series that appears only at its first event misses that event.
        for name in runtimes:
            for outcome in OUTCOMES:
                self.events.labels(name, outcome)
        self.registry.register(WorkerCollector(runtimes, loop, models, self.last_applied_at, TableKeys(keys_every_s)))

    def applied(self, source: str, partitions: Iterable[int]) -> None:
        """Stamp the partitions whose flushed applied count grew (one clock read per partition and flush)."""
        runtime = self.runtimes.get(source)
        if runtime is None:
            return
        wall = time.time()
        for partition in partitions:
            clock = runtime.flushed_clock(partition)
            if clock is None:
                continue
            slot = (source, partition)
            if clock.counts.applied > self.applied_seen.get(slot, 0):
                self.applied_seen[slot] = clock.counts.applied
                self.last_applied_at[slot] = wall

    def flush_timer(self, source: str) -> "FlushTimer":
        return FlushTimer(self, source)


class FlushTimer:
    """One flush's observations, made once per flush rather than per event."""

    def __init__(self, metrics: Metrics, source: str) -> None:
        self.metrics, self.source = metrics, source
        self.started = time.perf_counter()
        self.committing = self.started

    def sent(self, published_ms: Iterable[int]) -> None:
        """The flush's outputs are acknowledged: its predictions are out.
        ``published_ms``: the Kafka timestamps of the scored events."""
        now_ms = time.time() * 1000
        self.metrics.event_to_prediction.observe_many(((now_ms - t) / 1000 for t in published_ms), (self.source,))

    def commit(self) -> None:
        self.committing = time.perf_counter()

    def done(self, events: int, partitions: Iterable[int]) -> None:
        """After the commit; ``partitions``: those whose state the flush wrote."""
        metrics, source = self.metrics, self.source
        now = time.perf_counter()
        metrics.flush_seconds.labels(source).observe(now - self.started)
        metrics.commit_seconds.labels(source).observe(now - self.committing)
        metrics.flush_events.labels(source).observe(events)
        metrics.applied(source, partitions)

"""Prometheus metrics of one worker, in a registry owned by its app."""
from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.events = Counter(
            "featurestream_events_total",
            "Records read from event topics, by outcome (applied, late, duplicate, invalid, error)",
            ["source", "outcome"],
            registry=self.registry,
        )
        self.dlq = Counter(
            "featurestream_dlq_total",
            "Records sent to the dead-letter topic, by reason",
            ["source", "reason"],
            registry=self.registry,
        )
        self.predictions = Counter(
            "featurestream_predictions_total", "Predictions published", ["model", "version", "role"],
            registry=self.registry,
        )
        self.scoring_errors = Counter(
            "featurestream_scoring_errors_total", "Events a model failed to score", ["model", "version"],
            registry=self.registry,
        )
        self.score_latency = Histogram(
            "featurestream_score_seconds", "In-process MOJO scoring latency",
            buckets=(1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 5e-3, 1e-2, 0.1),
            registry=self.registry,
        )
        self.control_rejected = Counter(
            "featurestream_control_rejected_total",
            "Control-plane records refused for their signature (forged, unsigned or stale), by topic role",
            ["topic"],
            registry=self.registry,
        )
        self.http_errors = Counter(
            "featurestream_http_errors_total",
            "HTTP requests answered with an error, by status",
            ["status"],
            registry=self.registry,
        )

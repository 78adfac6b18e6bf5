"""Prometheus metrics of one worker, in a registry owned by its app."""
from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter


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
        self.http_errors = Counter(
            "featurestream_http_errors_total",
            "HTTP requests answered with an error, by status",
            ["status"],
            registry=self.registry,
        )

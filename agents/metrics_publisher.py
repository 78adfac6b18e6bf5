"""``fs.metrics``: the worker's /metrics figures as periodic JSON snapshots.

One writer per worker (a Faust timer of the worker's app), every
``FS_METRICS_INTERVAL_S``, keyed by the worker's URL (and one per
``featurestream monitor`` process, keyed by its URL): consumers that cannot
scrape (a notebook, another cluster, the console) read the same numbers from
Kafka.  A snapshot is the registry's samples as they are, so the two can
never disagree about what a figure means (docs/monitoring.md)."""
from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

import faust
import msgspec
from prometheus_client import CollectorRegistry

from agents.metrics import Metrics

log = logging.getLogger(__name__)


class MetricSample(msgspec.Struct, kw_only=True):
    name: str  # as in the exposition: featurestream_events_total, ..._bucket, ..._sum, ..._count
    labels: dict[str, str]
    value: float


class MetricsSnapshot(msgspec.Struct, kw_only=True):
    worker: str  # the worker's canonical URL (also the record's key)
    seq: int  # 1, 2, ... since the worker started: a gap is a lost snapshot, a reset a restart
    taken_at: str  # ISO-8601 UTC
    taken_at_ms: int
    interval_s: float
    samples: list[MetricSample]

    def value(self, name: str, **labels: str) -> float | None:
        """The sample of ``name`` whose labels include ``labels`` (the first), if any."""
        for sample in self.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                return sample.value
        return None


def take(registry: CollectorRegistry, worker: str, seq: int, interval_s: float) -> MetricsSnapshot:
    now = time.time()
    samples = [
        MetricSample(name=s.name, labels=dict(s.labels), value=s.value)
        for family in registry.collect() for s in family.samples
        if not s.name.endswith("_created")  # when a series was first seen: not a figure
    ]
    return MetricsSnapshot(
        worker=worker, seq=seq, taken_at=datetime.fromtimestamp(now, timezone.utc).isoformat(timespec="milliseconds"),
        taken_at_ms=int(now * 1000), interval_s=interval_s, samples=samples,
    )


def encode(snapshot: MetricsSnapshot) -> bytes:
    return msgspec.json.encode(snapshot)


def decode(raw: bytes) -> MetricsSnapshot:
    return msgspec.json.decode(raw, type=MetricsSnapshot)


Send = Callable[[bytes, bytes], Awaitable[object]]  # (key, value) onto fs.metrics


@dataclass
class Publisher:
    send: Send
    registry: CollectorRegistry
    worker: str
    interval_s: float
    seq: int = 0
    # Readers of each snapshot: the health judges (agents.health_alerts) and the console's chart
    # history; they read the figures published, not a second collect.
    readers: list[Callable[[MetricsSnapshot], Awaitable[None]]] = field(default_factory=list)

    async def publish(self) -> None:
        self.seq += 1
        snapshot = take(self.registry, self.worker, self.seq, self.interval_s)
        try:
            await self.send(self.worker.encode(), encode(snapshot))
        except Exception:  # the next one goes out anyway; metrics never stop a worker
            log.exception("publishing metrics snapshot %s failed", self.seq)
        for reader in self.readers:
            try:
                await reader(snapshot)
            except Exception:  # as above: an alert judge that fails is logged, the worker goes on
                log.exception("a reader of metrics snapshot %s failed", self.seq)


def register_metrics_publisher(app: faust.App, topic_name: str, metrics: Metrics, worker: str,
                               interval_s: float) -> Publisher | None:
    if interval_s <= 0:
        return None
    topic = app.topic(topic_name)

    async def send(key: bytes, value: bytes) -> object:
        return await topic.send(key=key, value=value)

    publisher = Publisher(send, metrics.registry, worker, interval_s)

    @app.timer(interval_s)
    async def publish_metrics() -> None:
        await publisher.publish()

    return publisher

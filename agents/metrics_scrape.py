"""Figures read at scrape time rather than kept on the hot path: consumer lag,
the age of the newest applied event, the deployed models, table sizes.

They all come from state the worker keeps anyway (the flushed clocks, the
consumer's high watermarks, the control plane's deployments, the partition
store), so ingest pays nothing for them."""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from agents.control_records import ModelDeployment
from agents.source_runtime import SourceRuntime
from tables.processor import stream_time

SEP = b"\x1f"  # kafka_plumbing.partition_store's separator of a namespace and its key


class HasConsumer(Protocol):
    """The ingest loop (``agents.ingest_loop.IngestLoop``): its consumer while it runs."""

    consumer: AIOKafkaConsumer | None


@dataclass
class TableKeys:
    """Keys per table and partition, counted at most once per ``every_s``: a
    count walks the partition's keys in RocksDB, too dear for every scrape."""

    every_s: float
    counted_at: float = float("-inf")
    counts: dict[tuple[str, str, int], int] = field(default_factory=dict)

    def get(self, sources: Mapping[str, SourceRuntime]) -> dict[tuple[str, str, int], int]:
        now = time.monotonic()
        if now - self.counted_at >= self.every_s:
            self.counts = count_keys(sources)
            self.counted_at = now
        return self.counts


def count_keys(sources: Mapping[str, SourceRuntime]) -> dict[tuple[str, str, int], int]:
    counts: dict[tuple[str, str, int], int] = {}
    for name, runtime in sources.items():
        state = runtime.state
        # A view's namespace is named by its state key (``view.<name>.v1.<hash>``): shown as the view's ref.
        tables = {f"view.{view.state_key}": view.ref for view in runtime.views}
        for partition in list(state.partitions):
            for key in state.store.keys(state.log, partition):
                namespace = key.split(SEP, 1)[0].decode(errors="replace")
                table = tables.get(namespace, namespace)
                slot = (name, table, partition)
                counts[slot] = counts.get(slot, 0) + 1
    return counts


@dataclass(eq=False)  # registered by identity: a registry keys its collectors by hash
class WorkerCollector(Collector):
    sources: Mapping[str, SourceRuntime]
    loop: HasConsumer
    models: Callable[[], Mapping[str, ModelDeployment]]
    last_applied_at: Mapping[tuple[str, int], float]
    keys: TableKeys

    def collect(self) -> Iterator[Metric]:
        now = time.time()
        lag = GaugeMetricFamily("featurestream_consumer_lag", "Records in a source partition not yet applied "
                                "and flushed: the consumer's high watermark less the flushed position",
                                labels=["source", "partition"])
        event_age = GaugeMetricFamily("featurestream_newest_event_age_seconds", "Now less the event time of the "
                                      "newest event applied on the partition (flushed)", labels=["source", "partition"])
        wall_age = GaugeMetricFamily("featurestream_last_applied_age_seconds", "Now less the wall time of the "
                                     "last flush that applied an event on the partition, since this worker started",
                                     labels=["source", "partition"])
        consumer = self.loop.consumer
        assigned = consumer.assignment() if consumer is not None else set()
        for name, runtime in self.sources.items():
            for partition in sorted(runtime.state.partitions):
                labels = [name, str(partition)]
                clock = runtime.flushed_clock(partition)
                tp = TopicPartition(runtime.topic, partition)
                highwater = consumer.highwater(tp) if consumer is not None and tp in assigned else None
                if highwater is not None:
                    position = 0 if clock is None or clock.offset is None else clock.offset + 1
                    lag.add_metric(labels, max(highwater - position, 0))
                newest = stream_time(clock)
                if newest is not None:
                    event_age.add_metric(labels, now - newest / 1000)
                applied_at = self.last_applied_at.get((name, partition))
                if applied_at is not None:
                    wall_age.add_metric(labels, now - applied_at)
        yield lag
        yield event_age
        yield wall_age
        info = GaugeMetricFamily("featurestream_model_info", "Deployed model versions (1), by role",
                                 labels=["model", "version", "role"])
        for model, deployment in sorted(self.models().items()):
            for role in ("primary", "shadow"):
                version = getattr(deployment, role)
                if version:
                    info.add_metric([model, str(version), role], 1)
        yield info
        keys = GaugeMetricFamily("featurestream_table_keys", "Keys in the worker's flushed state, by source, "
                                 "table (a view's ref, seen, clock) and partition",
                                 labels=["source", "table", "partition"])
        for (name, table, partition), n in sorted(self.keys.get(self.sources).items()):
            keys.add_metric([name, table, str(partition)], n)
        yield keys

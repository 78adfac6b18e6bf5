"""Live model quality and drift, off the hot path: a task of the worker
(``FS_MONITOR=1``) or a process of its own (``featurestream monitor``,
``app.monitor_service``).

A plain consumer (``kafka_plumbing.clients``, no group: every partition)
reads the primary and shadow predictions and the logs of the models' label
sources; ``models.quality`` joins labels to predictions by event time and
keeps the rolling figures, ``models.drift`` bins each prediction's inputs and
score into tumbling event-time windows against the baselines stored with its
model version (read from the registry once per version).  Alerts go to
``fs.alerts``; the figures are read at scrape time by ``QualityCollector``,
so ``/metrics`` and the ``fs.metrics`` snapshots carry them.  Ingest pays
nothing: it only writes the prediction records it wrote anyway.

On start it reads from ``FS_MONITOR_LOOKBACK_S`` back (by record timestamp),
so a restart rebuilds the recent windows instead of starting blank."""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import faust
import msgspec
from aiokafka import AIOKafkaConsumer, ConsumerRecord
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from agents.control_records import now_iso
from agents.metrics import Metrics
from kafka_plumbing import clients
from kafka_plumbing.settings import Settings
from models.alerts import Alert, encode as encode_alert
from models.drift import SCORE, AlertBook, DriftWindows, model_bins
from models.quality import LabelJoin, RollingQuality, scored_of
from models.registry import Registry, RegistryError
from tables.definitions import Definitions
from tables.labels import label_of
from tables.log_record import CONTROL_HEADER
from tables.model_spec import ModelSpec
from tables.validation import parse_time_ms

log = logging.getLogger(__name__)


@dataclass
class VersionDrift:
    windows: DriftWindows
    book: AlertBook


@dataclass
class QualityMonitor:
    settings: Settings
    definitions: Definitions
    specs: dict[str, ModelSpec]
    registry: Registry
    worker: str
    joins: dict[str, LabelJoin] = field(default_factory=dict)  # model -> its join (each model has its label rule)
    rolling: dict[str, RollingQuality] = field(default_factory=dict)
    drift: dict[tuple[str, int], VersionDrift | None] = field(default_factory=dict)  # None: no baselines
    alerts: list[Alert] = field(default_factory=list)  # raised, not yet sent
    psi: dict[tuple[str, int, str], float] = field(default_factory=dict)  # last judged window's PSI per feature
    skipped: int = 0  # records that are neither a prediction nor a label (unparseable)
    prediction_topics: tuple[str, str] = field(init=False)

    def __post_init__(self) -> None:
        s = self.settings
        self.prediction_topics = (s.topics.predictions, s.topics.shadow_predictions)
        for name, spec in self.specs.items():
            self.joins[name] = LabelJoin(
                horizon_ms=int(s.quality_horizon_s * 1000),
                scored_lateness_ms=self.definitions.source(spec.source).lateness_ms,
                label_lateness_ms=self.definitions.source(spec.label_source).lateness_ms,
            )
            self.rolling[name] = RollingQuality(window_ms=int(s.quality_window_s * 1000))

    def topics(self) -> list[str]:
        t = self.settings.topics
        labels = {t.events(spec.label_source) for spec in self.specs.values()}
        return [t.predictions, t.shadow_predictions, *sorted(labels)]

    def take(self, message: ConsumerRecord) -> None:
        if any(key == CONTROL_HEADER for key, _ in message.headers or ()):
            return  # a marker, not an event
        try:
            data = msgspec.json.decode(message.value)  # a third of json.loads' time, the same dicts
            if message.topic in self.prediction_topics:
                self.prediction(data, message.partition)
            else:
                self.label(message.topic, data, message.partition)
        except (msgspec.DecodeError, ValueError, TypeError, KeyError, AttributeError):
            self.skipped += 1  # bad records are ingest's business (the DLQ): here they are only not counted

    def prediction(self, data: dict[str, Any], partition: int = 0) -> None:
        if data["model"] not in self.specs:
            return
        scored = scored_of(data)
        if scored is None:
            return
        name, version, p1, key = scored.model, scored.version, scored.p1, data.get("join_key")
        join = self.joins[name]
        if (scored.series, scored.event_id) in join.done:
            return  # resent (at-least-once): counted once, in the join and in the drift windows
        # primary and shadow topics are partitioned alike: their partitions are separate lanes
        lane = partition * 2 + (data["role"] != "primary")
        drift = self._drift(name, version)
        if drift is not None:  # per version, whatever its role: a shadow's inputs and score drift too
            for report in drift.windows.add(scored.time_ms, {**data.get("features", {}), SCORE: p1}, lane):
                for feature, value in report.psi.items():
                    self.psi[(name, version, feature)] = value
                self.alerts += drift.book.judge(report, now_iso(), self.worker)
        if key is None:
            join.done[(scored.series, scored.event_id)] = scored.time_ms
            return
        for pair in join.prediction(scored, lane):
            self.rolling[name].add(pair, join.label_watermark or pair.label_time_ms)

    def label(self, topic: str, data: dict[str, Any], partition: int = 0) -> None:
        for name, spec in self.specs.items():
            if self.settings.topics.events(spec.label_source) != topic:
                continue
            found = label_of(spec, data)
            time_field = self.definitions.source(spec.label_source).time_field
            if found is None or data.get(time_field) is None:
                continue
            time_ms = parse_time_ms(data[time_field])
            join = self.joins[name]
            for pair in join.label(found.key, found.value, time_ms, partition):
                self.rolling[name].add(pair, join.label_watermark or time_ms)

    def expire(self) -> None:
        for join in self.joins.values():
            join.expire()

    def _drift(self, name: str, version: int) -> VersionDrift | None:
        slot = (name, version)
        if slot not in self.drift:
            self.drift[slot] = None
            try:
                bins = model_bins(self.registry.get(name, version).metadata)
            except RegistryError as exc:
                log.warning("no drift baselines for %s v%s: %s", name, version, exc)
                return None
            if bins:
                s = self.settings
                self.drift[slot] = VersionDrift(
                    DriftWindows(bins, int(s.drift_window_s * 1000),
                                 self.definitions.source(self.specs[name].source).lateness_ms, s.drift_min_events),
                    AlertBook(name, version, s.drift_psi_threshold),
                )
        return self.drift[slot]


# The rolling figures per model version and role (``featurestream_model_<figure>``), and every
# family the collector yields: how the console tells the monitor's figures from a worker's own.
FIGURES = ("auc", "log_loss", "accuracy", "ece", "mean_predicted", "observed_rate", "labelled")
FAMILIES = (*(f"featurestream_model_{figure}" for figure in FIGURES), "featurestream_quality_labels",
            "featurestream_quality_unmatched_labels", "featurestream_drift_psi", "featurestream_drift_alert")


@dataclass(eq=False)  # registered by identity: a registry keys its collectors by hash
class QualityCollector(Collector):
    """The monitor's figures, computed when scraped (a window's AUC sorts its pairs: not per record)."""

    monitor: QualityMonitor

    def collect(self) -> Iterator[Metric]:
        labels = ["model", "version", "role"]
        families = {
            name: GaugeMetricFamily(f"featurestream_model_{name}", doc, labels=labels)
            for name, doc in (
                ("auc", "Rolling ROC AUC of labelled predictions (absent with one class only)"),
                ("log_loss", "Rolling log loss of labelled predictions (p clipped to [1e-15, 1-1e-15])"),
                ("accuracy", "Rolling share of labelled predictions whose decided class was the label"),
                ("ece", "Rolling expected calibration error over 10 equal-width bins of p1"),
                ("mean_predicted", "Rolling mean predicted probability of the positive class"),
                ("observed_rate", "Rolling observed rate of the positive class"),
                ("labelled", "Labelled predictions in the rolling window"),
            )
        }
        for model, rolling in sorted(self.monitor.rolling.items()):
            for (name, version, role), found in sorted(rolling.current().items()):
                values = [name, str(version), role]
                for figure in ("auc", "log_loss", "accuracy", "ece", "mean_predicted", "observed_rate"):
                    value = getattr(found, figure)
                    if value is not None:
                        families[figure].add_metric(values, value)
                families["labelled"].add_metric(values, found.count)
        yield from families.values()
        joined = CounterMetricFamily("featurestream_quality_labels", "Label verdicts per prediction series: "
                                     "matched, early (label before its event), expired (no label within the "
                                     "horizon)", labels=[*labels, "outcome"])
        for model, join in sorted(self.monitor.joins.items()):
            for ((name, version, role), outcome), n in sorted(join.counts.items()):
                joined.add_metric([name, str(version), role, outcome], n)
        yield joined
        unmatched = CounterMetricFamily("featurestream_quality_unmatched_labels", "Labels that met no "
                                        "prediction (their events were not scored)", labels=["model"])
        for model, join in sorted(self.monitor.joins.items()):
            unmatched.add_metric([model], join.unmatched_labels)
        yield unmatched
        psi = GaugeMetricFamily("featurestream_drift_psi", "PSI of the last judged event-time window against "
                                "the version's training baseline, per input (score: the model's p1)",
                                labels=["model", "version", "feature"])
        alerting = GaugeMetricFamily("featurestream_drift_alert", "1 while the feature's PSI is over the "
                                     "threshold (since its alert, until its recovery)",
                                     labels=["model", "version", "feature"])
        for (name, version, feature), value in sorted(self.monitor.psi.items()):
            psi.add_metric([name, str(version), feature], value)
            drift = self.monitor.drift.get((name, version))
            alerting.add_metric([name, str(version), feature],
                                1.0 if drift is not None and drift.book.alerting(feature) else 0.0)
        yield psi
        yield alerting


async def run(monitor: QualityMonitor, stopping: Callable[[], bool]) -> None:
    """Until ``stopping()``: the worker's app stopping, or ``featurestream monitor`` told to end."""
    settings = monitor.settings
    consumer = clients.consumer(settings, *monitor.topics(), auto_offset_reset="latest")
    producer = clients.producer(settings, linger_ms=5)
    await clients.start_consumer(consumer)
    await producer.start()
    try:
        await _rewind(consumer, settings.monitor_lookback_s)
        while not stopping():
            batches = await consumer.getmany(timeout_ms=500, max_records=5000)
            for messages in batches.values():
                for message in messages:
                    monitor.take(message)
            if batches:
                monitor.expire()
            while monitor.alerts:
                alert = monitor.alerts[0]
                await producer.send_and_wait(settings.topics.alerts, encode_alert(alert), key=alert.key())
                monitor.alerts.pop(0)
    finally:
        await producer.stop()
        await clients.stop_consumer(consumer)


async def _rewind(consumer: AIOKafkaConsumer, lookback_s: float) -> None:
    """Every partition from its first record ``lookback_s`` ago (by record timestamp); none: from the end."""
    partitions = sorted(consumer.assignment())
    since = int((time.time() - lookback_s) * 1000)
    found = await consumer.offsets_for_times({tp: since for tp in partitions})
    ends = await consumer.end_offsets(partitions)
    for tp in partitions:
        offset = found.get(tp)
        consumer.seek(tp, offset.offset if offset is not None else ends[tp])


def register_quality_monitor(app: faust.App, settings: Settings, definitions: Definitions,
                             specs: dict[str, ModelSpec], metrics: Metrics, worker: str) -> QualityMonitor | None:
    if not settings.monitor or not specs:
        return None
    monitor = QualityMonitor(settings, definitions, specs, Registry(settings.registry_dir), worker)
    metrics.registry.register(QualityCollector(monitor))

    @app.task
    async def monitor_quality() -> None:
        try:
            await run(monitor, lambda: app.should_stop)
        except Exception:  # monitoring never stops a worker; its figures stop and say so in the log
            log.exception("quality monitor stopped")

    return monitor

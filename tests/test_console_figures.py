"""The console's figures without a broker: they are the registry's samples
(what /metrics exposes), quantiles read histograms as Prometheus's
``histogram_quantile`` does, chart points are rates and quantiles between
two reads, a tenant sees only its own, and the alert/dead-letter feed keeps
the newest records of any alert kind and never trips on a bad one."""
from __future__ import annotations

import asyncio
from pathlib import Path

from dataclasses import replace

import msgspec
import pytest
from aiokafka.structs import ConsumerRecord
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from agents.console_feed import PREVIEW_BYTES, ConsoleFeed
from agents.dead_letters import dead_letter, encode
from agents.metrics import Metrics
from agents.metrics_publisher import take
from app.console_figures import ConsoleHistory, Visible, figures, quantile, read_samples
from kafka_plumbing.settings import load
from models.alerts import Alert

EVERYONE = Visible(lambda _: True, lambda _: True, True)


def record(topic: str, value: bytes, key: bytes | None = None, offset: int = 0) -> ConsumerRecord:
    return ConsumerRecord(topic, 0, offset, 0, 0, key, value, None, 0, len(value), ())


def test_quantile_reads_buckets_like_histogram_quantile() -> None:
    cumulative = [(0.1, 10.0), (0.5, 30.0), (1.0, 40.0), (float("inf"), 40.0)]
    assert quantile(0.5, cumulative) == pytest.approx(0.1 + 0.4 * (20 - 10) / 20)  # rank 20 in (0.1, 0.5]
    assert quantile(0.25, cumulative) == pytest.approx(0.1 * 10 / 10)
    assert quantile(0.99, cumulative) == pytest.approx(0.5 + 0.5 * (39.6 - 30) / 10)
    assert quantile(0.99, [(0.1, 1.0), (float("inf"), 5.0)]) == 0.1  # in +Inf: the highest finite bound
    assert quantile(0.5, [(0.1, 0.0), (float("inf"), 0.0)]) is None


def test_figures_are_the_registry_samples() -> None:
    metrics = Metrics()
    metrics.events.labels("departures", "applied").inc(1234)
    metrics.events.labels("departures", "late").inc(2)
    metrics.dlq.labels("departures", "late").inc(2)
    metrics.predictions.labels("flight_delay", "3", "primary", "1").inc(7)
    data = figures(metrics.registry, ConsoleHistory(), None, "http://w", ["departures"], EVERYONE)
    exposed = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families(generate_latest(metrics.registry).decode()) for s in f.samples}
    [source] = data.sources
    assert source.events["applied"] == exposed[("featurestream_events_total",
                                                (("outcome", "applied"), ("source", "departures")))] == 1234
    assert source.dlq == {"late": 2}
    assert [(d.model, d.version, d.role, d.predicted, d.count) for d in data.decisions] == [
        ("flight_delay", "3", "primary", "1", 7)]
    assert data.alerts == [] and data.dead_letters == [] and not data.feed
    assert msgspec.json.decode(msgspec.json.encode(data))["sources"][0]["events"]["applied"] == 1234


def test_history_points_are_rates_and_quantiles_between_reads() -> None:
    metrics = Metrics()
    history = ConsoleHistory()
    metrics.events.labels("departures", "applied").inc(100)
    history.sample(read_samples(metrics.registry), 1000.0)
    assert not history.points  # one read is no interval
    metrics.events.labels("departures", "applied").inc(50)
    metrics.events.labels("departures", "invalid").inc(10)
    metrics.event_to_prediction.observe_many([0.003] * 98 + [2.0] * 2, ("departures",))
    history.sample(read_samples(metrics.registry), 1000.5)
    assert not history.points  # closer than a second: the same point
    history.sample(read_samples(metrics.registry), 1002.0)
    [point] = history.points
    assert point.events_per_s == 30.0 and point.applied_per_s == 25.0
    assert 0.0025 < point.e2p_p50_s <= 0.005 and 1.0 < point.e2p_p99_s <= 2.5
    history.sample(read_samples(metrics.registry), 1003.0)
    assert history.points[-1].events_per_s == 0 and history.points[-1].e2p_p99_s is None  # nothing in between


def test_history_rides_on_the_metrics_snapshots() -> None:
    metrics = Metrics()
    history = ConsoleHistory()
    asyncio.run(history.snapshot(take(metrics.registry, "w", 1, 10.0)))
    metrics.events.labels("departures", "applied").inc(100)
    later = take(metrics.registry, "w", 2, 10.0)
    later.taken_at_ms = history.previous[0] * 1000 + 10_000  # ten seconds on
    asyncio.run(history.snapshot(later))
    [point] = history.points
    assert point.applied_per_s == pytest.approx(10.0) and point.at_ms == later.taken_at_ms


def test_a_tenant_sees_its_own_sources_models_and_alerts() -> None:
    settings = replace(load(), console_recent=5)
    feed = ConsoleFeed(settings)
    ours = drift_alert("ours")
    theirs = drift_alert("theirs")
    for i, alert in enumerate((ours, theirs)):
        feed.take(record(settings.topics.alerts, msgspec.json.encode(alert), alert.key(), i))
    feed.take(record(settings.topics.alerts, b'{"kind": "lag", "value": 9000, "threshold": 1000, '
                     b'"where": {"source": "departures", "partition": 3}, "since_ms": 1}', b"lag:x"))  # its own fields
    metrics = Metrics()
    metrics.events.labels("mine", "applied").inc()
    metrics.events.labels("yours", "applied").inc()
    visible = Visible(lambda s: s == "mine", lambda m: m == "ours", False)
    data = figures(metrics.registry, ConsoleHistory(), feed, "w", ["mine", "yours"], visible)
    assert [s.source for s in data.sources] == ["mine"]
    assert [a.key for a in data.alerts] == ["drift:ours:1:x"]
    everyone = figures(metrics.registry, ConsoleHistory(), feed, "w", ["mine", "yours"], EVERYONE)
    assert [a.key for a in everyone.alerts] == ["lag:x", "drift:theirs:1:x", "drift:ours:1:x"]  # newest first
    assert [a.key for a in data.active_alerts] == ["drift:ours:1:x"]
    # a recovery clears its key from the alerts in force; the record stays among the recent ones
    feed.take(record(settings.topics.alerts, msgspec.json.encode(msgspec.structs.replace(ours, recovered=True)),
                     ours.key(), 3))
    everyone = figures(metrics.registry, ConsoleHistory(), feed, "w", ["mine", "yours"], EVERYONE)
    assert [a.key for a in everyone.active_alerts] == ["lag:x", "drift:theirs:1:x"]
    assert [a.key for a in everyone.alerts][0] == "drift:ours:1:x"


def test_alerts_that_say_where_in_a_map() -> None:
    """A record with its labels in ``where`` (one alert type for every kind) is read as well, and a
    tenant sees it by the model or source it names."""
    settings = replace(load(), console_recent=5)
    feed = ConsoleFeed(settings)
    lag = (b'{"kind": "lag", "metric": "consumer_lag", "series": "lag:departures", "where": {"source": "departures"},'
           b' "value": 9000.0, "threshold": 1000.0, "since": "t0", "recovered": false, "at": "t1",'
           b' "detail": "9000 records behind", "window_start": null}')
    skew = (b'{"kind": "skew", "metric": "mismatch_rate", "series": "skew:flight_delay", '
            b'"where": {"model": "flight_delay", "view": "origin_traffic"}, "value": 0.5, "threshold": 0.0, '
            b'"since": "t0", "recovered": false, "at": "t1"}')
    feed.take(record(settings.topics.alerts, lag, b"lag:departures"))
    feed.take(record(settings.topics.alerts, skew, b"skew:flight_delay", 1))
    assert feed.undecodable == 0
    [shown] = [a for a in feed.alerts if a.key == "lag:departures"]
    assert shown.alert.where == {"source": "departures"} and shown.alert.detail == "9000 records behind"
    metrics = Metrics()
    visible = Visible(lambda s: s == "departures", lambda m: False, False)
    data = figures(metrics.registry, ConsoleHistory(), feed, "w", [], visible)
    assert [a.key for a in data.active_alerts] == ["lag:departures"]


def drift_alert(model: str) -> Alert:
    """As models.drift.AlertBook writes them."""
    return Alert(kind="drift", metric="psi", series=f"drift:{model}:1:x",
                 where={"model": model, "version": "1", "feature": "x"}, value=1.0, threshold=0.2, since="a",
                 recovered=False, at="t", window_start="a", window_end="b", window_events=1)


def test_feed_keeps_the_newest_and_survives_bad_records() -> None:
    settings = replace(load(), console_recent=3)
    feed = ConsoleFeed(settings)
    for offset in range(5):
        letter = dead_letter(reason="invalid_json", detail="bad", source="departures", topic="t", partition=0,
                             offset=offset, timestamp_ms=None, key=b"k", value=b"x" * 1000 + b"<b>")
        feed.take(record(settings.topics.dlq, encode(letter), offset=offset))
    feed.take(record(settings.topics.dlq, b"not json at all"))
    feed.take(record(settings.topics.alerts, b'{"kind": 5}'))
    assert [d.letter.offset for d in feed.dead_letters] == [2, 3, 4]
    last = feed.dead_letters[-1]
    assert last.preview == "x" * PREVIEW_BYTES and last.letter.original_bytes == 1003
    assert last.letter.original_b64 is None and last.letter.reason == "invalid_json"
    assert feed.undecodable == 2 and not feed.alerts


def test_live_quality_from_the_monitor_process_snapshot() -> None:
    """A worker without the monitor shows the quality `featurestream monitor` publishes on fs.metrics;
    workers' own snapshots (no model figures) are skipped, and the newest monitor snapshot wins."""
    from agents.metrics_publisher import MetricSample, MetricsSnapshot, encode as encode_snapshot

    settings = replace(load(), console_recent=5)
    feed = ConsoleFeed(settings)
    series = {"model": "flight_delay", "version": "3", "role": "primary"}

    def snapshot(worker: str, at_ms: int, auc: float | None) -> bytes:
        samples = [MetricSample(name="featurestream_events_total", labels={"source": "d", "outcome": "applied"},
                                value=1.0)]
        if auc is not None:
            samples.append(MetricSample(name="featurestream_model_auc", labels=series, value=auc))
        else:  # a worker's own: its deployed models, no quality
            samples.append(MetricSample(name="featurestream_model_info", labels=series, value=1.0))
        return encode_snapshot(MetricsSnapshot(worker=worker, seq=1, taken_at="t", taken_at_ms=at_ms,
                                               interval_s=10.0, samples=samples))

    feed.take(record(settings.topics.metrics, snapshot("http://monitor:6070", 2_000, 0.81), b"m", 0))
    feed.take(record(settings.topics.metrics, snapshot("http://worker-2:6066", 3_000, None), b"w", 1))
    feed.take(record(settings.topics.metrics, snapshot("http://monitor:6070", 1_000, 0.5), b"m", 2))  # older
    assert feed.monitor is not None and feed.monitor.worker == "http://monitor:6070"
    metrics = Metrics()
    metrics.events.labels("d", "applied").inc(2)
    data = figures(metrics.registry, ConsoleHistory(), feed, "w", ["d"], EVERYONE)
    [model] = data.models
    assert (model.model, model.version, model.quality) == ("flight_delay", "3", {"auc": 0.81})
    # Only the monitor's families come from the snapshot: the worker's counts stay its own.
    assert data.sources[0].events == {"applied": 2.0}


def test_the_families_the_console_takes_from_a_monitor_are_the_collectors() -> None:
    from agents.quality_monitor import FAMILIES, QualityCollector, QualityMonitor
    from models.registry import Registry
    from tables.definitions import load as load_definitions

    settings = load()
    monitor = QualityMonitor(settings, load_definitions(settings.features_module), {}, Registry(Path("/nonexistent")),
                             "w")
    assert {family.name for family in QualityCollector(monitor).collect()} == set(FAMILIES)

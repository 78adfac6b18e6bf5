"""Health alerts judged on a worker's real metrics registry (no broker): the
error rate over the window, consumer lag, and p99 latencies each raise one
alert when over their threshold and one recovery when back under."""
from __future__ import annotations

from msgspec.structs import replace

import pytest

from agents.health_rules import HealthCollector, HealthWatch, Thresholds, quantile
from agents.metrics import LATENCY_BUCKETS, Metrics
from agents.metrics_publisher import MetricSample, MetricsSnapshot, take
from models.alerts import Alert, decode, encode

RULES = Thresholds(window_s=10, min_events=100, error_rate=0.05, lag=1000, latency_p99_s=0.5, http_p99_s=0.2)


def snap(metrics: Metrics, at_s: float, extra: list[MetricSample] | None = None) -> MetricsSnapshot:
    snapshot = take(metrics.registry, "w", 1, 1.0)
    return replace(snapshot, taken_at_ms=int(at_s * 1000), taken_at=f"t{at_s:g}",
                   samples=snapshot.samples + (extra or []))


def test_error_rate_alerts_over_the_window_and_recovers_when_it_passes() -> None:
    metrics, watch = Metrics(), HealthWatch(RULES, "w")
    metrics.events.labels("departures", "applied").inc(1000)
    assert watch.judge(snap(metrics, 0)) == []
    metrics.events.labels("departures", "invalid").inc(3)  # 3 of at least 100: under 5 %
    assert watch.judge(snap(metrics, 1)) == []
    metrics.events.labels("departures", "invalid").inc(30)
    metrics.events.labels("departures", "applied").inc(70)
    [alert] = watch.judge(snap(metrics, 2))
    assert (alert.kind, alert.series, alert.where, alert.recovered, alert.since) == (
        "error_rate", "error_rate:departures@w", {"source": "departures"}, False, "t2")
    assert alert.value == pytest.approx(33 / 103, abs=1e-6) and alert.threshold == 0.05 and alert.window_events == 103
    assert watch.judge(snap(metrics, 5)) == []  # still in the window
    metrics.events.labels("departures", "applied").inc(10)
    [recovery] = watch.judge(snap(metrics, 13))  # the burst is older than the window now
    assert (recovery.recovered, recovery.since, recovery.series) == (True, "t2", alert.series)
    assert decode(encode(recovery)) == recovery and isinstance(recovery, Alert)


def test_lag_is_judged_now_per_source() -> None:
    metrics, watch = Metrics(), HealthWatch(RULES, "w")

    def lag(*values: float) -> list[MetricSample]:
        return [MetricSample(name="featurestream_consumer_lag", labels={"source": "weather", "partition": str(p)},
                             value=v) for p, v in enumerate(values)]

    assert watch.judge(snap(metrics, 0, lag(600, 400))) == []  # 1000: at the threshold, not over
    [alert] = watch.judge(snap(metrics, 1, lag(600, 401)))
    metrics.registry.register(HealthCollector(watch))
    published = snap(metrics, 1.5)
    assert published.value("featurestream_health_alert", series="lag:weather") == 1.0
    assert published.value("featurestream_health_value", kind="lag", series="lag:weather") == 1001
    assert (alert.kind, alert.metric, alert.value, alert.recovered) == ("lag", "consumer_lag", 1001, False)
    assert watch.judge(snap(metrics, 2, lag(5000, 0))) == []
    [recovery] = watch.judge(snap(metrics, 3, lag(0, 0)))
    assert recovery.recovered and recovery.since == "t1"


def test_latency_p99_per_source_and_route() -> None:
    metrics, watch = Metrics(), HealthWatch(RULES, "w")
    metrics.http_latency.labels("/stats", "GET", "worker").observe(0.001)
    metrics.event_to_prediction.observe_many([0.01] * 50, ("departures",))
    assert watch.judge(snap(metrics, 0)) == []
    metrics.http_latency.labels("/stats", "GET", "worker").observe(0.3)  # the one of 2: p99 in (0.25, 0.5]
    metrics.event_to_prediction.observe_many([0.01] * 98 + [2.0, 2.0], ("departures",))
    alerts = watch.judge(snap(metrics, 1))
    assert sorted((a.series, a.recovered) for a in alerts) == [
        ("latency:event_to_prediction:departures@w", False), ("latency:http:GET /stats@w", False)]
    e2p = next(a for a in alerts if a.where.get("source") == "departures")
    assert 1.0 < e2p.value <= 2.5 and e2p.window_events == 100
    # no requests nor predictions in the next window: it clears
    assert sorted(a.recovered for a in watch.judge(snap(metrics, 12))) == [True, True]


def test_quantile_interpolates_as_promql() -> None:
    now = {0.1: 50.0, 0.5: 90.0, 1.0: 100.0, float("inf"): 100.0}
    assert quantile(0.5, now, {}) == (0.1, 100.0)
    assert quantile(0.7, now, {})[0] == pytest.approx(0.1 + 0.4 * 0.5)
    assert quantile(0.99, now, {}) == pytest.approx((0.95, 100.0))
    assert quantile(0.99, {**now, float("inf"): 200.0}, {})[0] == 1.0  # in +Inf: the highest finite bound
    assert quantile(0.99, now, now) is None
    assert LATENCY_BUCKETS[-1] < float("inf")

"""Health alerts (``agents.health_rules``) wired into a worker: each metrics
snapshot the publisher takes is judged, and what changes state goes to
``fs.alerts``.  Off when metrics snapshots are (``FS_METRICS_INTERVAL_S=0``)
or with ``FS_ALERTS=0``."""
from __future__ import annotations

import logging

import faust

from agents.health_rules import HealthCollector, HealthWatch, Thresholds
from agents.metrics_publisher import MetricsSnapshot, Publisher
from kafka_plumbing.settings import Settings
from models.alerts import encode

log = logging.getLogger(__name__)


def thresholds(settings: Settings) -> Thresholds:
    return Thresholds(
        window_s=settings.alert_window_s, min_events=settings.alert_min_events,
        error_rate=settings.alert_error_rate, lag=settings.alert_lag,
        latency_p99_s=settings.alert_latency_p99_s, http_p99_s=settings.alert_http_p99_s,
    )


def register_health_alerts(app: faust.App, settings: Settings, publisher: Publisher | None) -> HealthWatch | None:
    if publisher is None or not settings.alerts:
        return None
    watch = HealthWatch(thresholds(settings), publisher.worker)
    publisher.registry.register(HealthCollector(watch))
    topic = app.topic(settings.topics.alerts)

    async def judge(snapshot: MetricsSnapshot) -> None:
        for alert in watch.judge(snapshot):
            log.warning("%s %s: %s (threshold %s)", "recovered" if alert.recovered else "ALERT",
                        alert.series, alert.value, alert.threshold)
            await topic.send(key=alert.key(), value=encode(alert))

    publisher.readers.append(judge)
    return watch

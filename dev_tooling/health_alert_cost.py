"""What the health alerts cost a worker: the time to judge one metrics
snapshot (``agents.health_rules``), paid once per ``FS_METRICS_INTERVAL_S``
off the ingest loop's code path.  The snapshot is a real registry's, filled
as a worker with the flights module fills it (five sources, every outcome,
twelve partitions of lag, six HTTP routes).

    python -m dev_tooling.health_alert_cost
"""
from __future__ import annotations

import time

from agents.health_rules import HealthWatch
from agents.health_alerts import thresholds
from agents.metrics import OUTCOMES, Metrics
from agents.metrics_publisher import MetricSample, take
from kafka_plumbing.settings import Settings

SOURCES = ("departures", "arrivals", "weather", "departures.by_tailnum", "arrivals.by_carrier")
ROUTES = ("/features/{view}/{entity}", "/features", "/stats", "/models", "/healthz", "/score")


def main(rounds: int = 2000) -> None:
    metrics = Metrics()
    for source in SOURCES:
        for outcome in OUTCOMES:
            metrics.events.labels(source, outcome).inc(1000)
        metrics.event_to_prediction.observe_many([0.01] * 100, (source,))
    for route in ROUTES:
        metrics.http_latency.labels(route, "GET", "worker").observe(0.01)
    snapshot = take(metrics.registry, "w", 1, 10.0)
    snapshot.samples += [MetricSample(name="featurestream_consumer_lag", labels={"source": s, "partition": str(p)},
                                      value=0.0) for s in SOURCES for p in range(12)]
    watch = HealthWatch(thresholds(Settings()), "w")
    started = time.perf_counter()
    for _ in range(rounds):
        watch.judge(snapshot)
    per = (time.perf_counter() - started) / rounds
    print(f"{len(snapshot.samples)} samples: {per * 1000:.2f} ms to judge one snapshot "
          f"({per / Settings().metrics_interval_s * 100:.4f} % of one core at FS_METRICS_INTERVAL_S)")


if __name__ == "__main__":
    main()

"""Health alerts on the real fs.alerts topic of a real worker: a backlog of
real flights raises a consumer-lag alert that recovers once it is applied; a
burst of malformed departures raises an error-rate alert that recovers when
the window has passed; requests slower than a (tiny) p99 threshold raise a
latency alert that recovers when the route is quiet."""
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest

from dev_tooling import flights_data
from kafka_plumbing.producer import produce, produce_raw
from kafka_plumbing.settings import Settings
from models.alerts import Alert, decode
from tables.definitions import load as load_definitions
from tests.integration.conftest import Worker, consume_all, running_worker
from tests.integration.noise import malformed

WINDOW_S = 4.0
LAG = 50.0


@pytest.fixture(scope="module")
def alerting_worker(isolated: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    from kafka_plumbing.topics import ensure_topics_sync

    settings = replace(isolated, metrics_interval_s=0.5, alert_window_s=WINDOW_S, alert_min_events=20,
                       alert_error_rate=0.05, alert_lag=LAG, alert_latency_p99_s=0.0, alert_http_p99_s=1e-6)
    ensure_topics_sync(settings, list(load_definitions(settings.features_module).sources))
    yield from running_worker(settings, tmp_path_factory.mktemp("worker"))


def alerts_until(worker: Worker, enough: Callable[[list[Alert]], bool], timeout: float = 60) -> list[Alert]:
    deadline = time.monotonic() + timeout
    while True:
        found = [decode(r.value) for r in consume_all(worker.settings, worker.settings.topics.alerts)]
        if enough(found) or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def states(alerts: list[Alert], series: str) -> list[bool]:
    """Alert (False) and recovery (True) records of one condition of the worker, in order."""
    return [a.recovered for a in alerts if a.series.rsplit("@", 1)[0] == series]


def of(alerts: list[Alert], series: str) -> list[Alert]:
    return [a for a in alerts if a.series.rsplit("@", 1)[0] == series]


def test_lag_error_rate_and_latency_alerts_recover(alerting_worker: Worker) -> None:
    worker, settings = alerting_worker, alerting_worker.settings
    definitions = load_definitions(settings.features_module)

    # lag: a backlog of real events published faster than one worker applies them
    by_source = flights_data.load_events(limit=3000, progress=False)
    total = sum(len(v) for v in by_source.values())
    asyncio.run(produce(settings, definitions.key_fields(), flights_data.iter_interleaved(by_source), total,
                        progress=False))
    for name, events in by_source.items():
        worker.wait_for(name, len(events))
    lagged = alerts_until(worker, lambda found: any(states(found, f"lag:{s}") == [False, True] for s in by_source))
    lag_series = [s for s in by_source if states(lagged, f"lag:{s}") == [False, True]]
    assert lag_series, [(a.series, a.value, a.recovered) for a in lagged]
    raised, recovered = of(lagged, f"lag:{lag_series[0]}")
    assert raised.kind == "lag" and raised.metric == "consumer_lag" and raised.where == {"source": lag_series[0]}
    assert raised.value > LAG >= recovered.value and raised.threshold == LAG
    assert raised.since == recovered.since and raised.worker == worker.url
    assert raised.series == recovered.series == f"lag:{lag_series[0]}@{worker.url}"

    # error rate: a burst of malformed departures and nothing else
    good = by_source["departures"][-1]
    burst = [(key.encode(), payload) for key, payload, _ in malformed(good)]
    asyncio.run(produce_raw(settings, settings.topics.events("departures"), burst))
    found = alerts_until(worker, lambda found: states(found, "error_rate:departures") == [False, True])
    assert states(found, "error_rate:departures") == [False, True], [(a.series, a.value) for a in found]
    raised, recovered = of(found, "error_rate:departures")
    assert raised.value > 0.05 >= recovered.value and raised.window_events and raised.window_events >= 20
    assert raised.since == recovered.since < recovered.at
    assert [a for a in found if a.kind == "error_rate" and a.where != {"source": "departures"}] == []

    # latency: every request is slower than a microsecond; then the route is left alone for a window
    for _ in range(3):
        assert worker.get("/models")[0] == 200
    found = alerts_until(worker, lambda found: states(found, "latency:http:GET /models") == [False, True])
    raised, recovered = of(found, "latency:http:GET /models")
    assert not raised.recovered and recovered.recovered
    assert raised.where == {"latency": "http", "route": "GET /models"} and raised.metric == "p99_seconds"
    assert raised.value > 1e-6 and recovered.value == 0.0 and recovered.window_events == 0

"""Live model quality and drift against the real broker with a trained model:
the AUC and log loss the monitor publishes (/metrics and fs.metrics), as a task
of the worker and as ``featurestream monitor`` beside it, equal an
offline computation from fs.predictions joined here with the arrivals log by
the same rule; a slice of departures with dep_delay shifted raises a drift
alert on fs.alerts, and the normal slice after it clears it."""
from __future__ import annotations

import asyncio
import json
import math
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Iterator
from urllib.request import urlopen

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from agents.metrics_publisher import decode as decode_snapshot
from dev_tooling import flights_data, kafka_local
from dev_tooling.processes import start_monitor, wait_ready
from kafka_plumbing.producer import produce
from kafka_plumbing.settings import Settings
from tables.definitions import load as load_definitions
from tests.integration.conftest import Worker, consume_all, decode, running_worker
from tests.integration.flights_stream import deploy_model
from tests.integration.labelled import arrival_labels, labelled_p1, pairwise_auc

SHIFT_MIN = 240.0
THRESHOLD = 0.5


@dataclass
class Monitored:
    worker: Worker
    url: str  # where the monitor serves /metrics (and the key of its fs.metrics snapshots)


@pytest.fixture(scope="module", params=["in_worker", "own_process"])
def monitored(isolated: Settings, tmp_path_factory: pytest.TempPathFactory,
              request: pytest.FixtureRequest) -> Iterator[Monitored]:
    """The monitor as a task of the worker (FS_MONITOR=1), or as ``featurestream monitor`` beside it."""
    from kafka_plumbing.topics import ensure_topics_sync

    mode = request.param
    # Day-long windows: a few evening hours differ from an all-day baseline for real (delays build up
    # through the day), a day does not; the day the first scored events fall in has too few to be judged.
    settings = replace(isolated, topic_prefix=f"{isolated.topic_prefix}-{mode}", app_id=f"{isolated.app_id}-{mode}",
                       monitor=mode == "in_worker", metrics_interval_s=1.0, drift_window_s=86400.0,
                       drift_min_events=150, drift_psi_threshold=THRESHOLD, quality_window_s=30 * 86400.0)
    ensure_topics_sync(settings, list(load_definitions(settings.features_module).sources))
    work = tmp_path_factory.mktemp(mode)
    with contextmanager(running_worker)(settings, work) as worker:
        if mode == "in_worker":
            yield Monitored(worker, worker.url)
            return
        monitor = start_monitor(kafka_local.free_port(), work / "monitor.log", env=settings.as_env())
        try:
            wait_ready(monitor, timeout=60)
            yield Monitored(worker, monitor.url)
        finally:
            assert monitor.process is not None
            monitor.process.terminate()
            assert monitor.process.wait(timeout=30) == 0, monitor.log_path.read_text()


def publish(worker: Worker, skip: int, limit: int, shift: float = 0.0) -> None:
    definitions = load_definitions(worker.settings.features_module)
    by_source = flights_data.load_events(limit=limit, skip=skip, progress=False)
    for event in by_source["departures"]:
        if shift and event.get("dep_delay") is not None:
            event["dep_delay"] = float(event["dep_delay"]) + shift
    total = sum(len(v) for v in by_source.values())
    asyncio.run(produce(worker.settings, definitions.key_fields(), flights_data.iter_interleaved(by_source), total,
                        progress=False))


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    with urlopen(url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def offline(settings: Settings) -> tuple[int, float, float]:
    """Pairs, AUC, log loss of the primary predictions, computed here from the topics (tests/integration/labelled.py)."""
    found = labelled_p1(decode(consume_all(settings, settings.topics.predictions)), arrival_labels(settings))
    p, y = np.array([v[0] for v in found.values()]), np.array([v[1] for v in found.values()])
    pa = np.clip(p, 1e-15, 1 - 1e-15)
    return len(p), pairwise_auc(p, y), float(-np.mean(y * np.log(pa) + (1 - y) * np.log(1 - pa)))


def test_live_quality_equals_offline_and_drift_alert_recovers(monitored: Monitored) -> None:
    worker, settings = monitored.worker, monitored.worker.settings
    publish(worker, 0, 1500)
    worker.wait_for("departures", 1500)
    version = deploy_model(worker)
    publish(worker, 1500, 700)  # 2013-01-02 22:20 to 01-03 18:49
    publish(worker, 2200, 700, shift=SHIFT_MIN)  # to 01-04 14:00
    publish(worker, 2900, 1600)  # to 2013-01-06: the next day closes (a judged window after the shift)
    worker.wait_for("departures", 4500)

    series = (("model", "flight_delay"), ("role", "primary"), ("version", str(version)))
    deadline = time.monotonic() + 60
    while True:  # outputs trail the counters a little; the monitor trails the outputs
        n, auc, log_loss = offline(settings)
        figures = scrape(monitored.url)
        if figures.get(("featurestream_model_labelled", series)) == n or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert n > 1000
    assert figures[("featurestream_model_labelled", series)] == n
    assert figures[("featurestream_model_auc", series)] == pytest.approx(auc, abs=1e-9)
    assert figures[("featurestream_model_log_loss", series)] == pytest.approx(log_loss, rel=1e-9)
    assert 0.5 < auc < 1

    # the same figures in the monitor's fs.metrics snapshots (one a second)
    deadline = time.monotonic() + 20
    while True:
        mine = [r for r in consume_all(settings, settings.topics.metrics) if r.key == monitored.url.encode()]
        snapshot = decode_snapshot(mine[-1].value)
        got = snapshot.value("featurestream_model_labelled", model="flight_delay", role="primary")
        if got == n or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert got == n
    assert snapshot.value("featurestream_model_auc", model="flight_delay", role="primary") == pytest.approx(auc, abs=1e-9)

    alerts = [json.loads(r.value) for r in consume_all(settings, settings.topics.alerts)]
    dep_delay = [a for a in alerts if a["kind"] == "drift" and a["where"]["feature"] == "dep_delay"]
    print("alerts:", [(a["where"].get("feature"), a["window_start"], round(a["value"], 3), a["recovered"]) for a in alerts])
    assert [a["recovered"] for a in dep_delay] == [False, True], dep_delay
    raised, recovered = dep_delay
    assert raised["value"] > THRESHOLD >= recovered["value"] and raised["threshold"] == THRESHOLD
    assert raised["since"] == recovered["since"] == raised["window_start"] < recovered["window_start"]
    assert (raised["where"]["model"], int(raised["where"]["version"]), raised["kind"], raised["metric"]) == (
        "flight_delay", version, "drift", "psi")
    assert raised["series"] == recovered["series"] == f"drift:flight_delay:{version}:dep_delay"
    psi = figures.get(("featurestream_drift_psi", (("feature", "dep_delay"), ("model", "flight_delay"),
                                                     ("version", str(version)))))
    assert psi is not None and not math.isnan(psi)

"""/metrics and fs.metrics of a real worker on a real broker: the exposition
passes ``promtool check metrics``, its figures agree with /stats (which
counts from the flushed state, a separate path), and the worker's fs.metrics
snapshots carry the same figures."""
from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from agents.metrics_publisher import MetricsSnapshot, decode
from dev_tooling import flights_data
from kafka_plumbing.producer import encode, produce, produce_raw
from kafka_plumbing.settings import Settings
from tables.definitions import load as load_definitions
from tests.integration.conftest import Worker, consume_all, running_worker
from tests.integration.noise import iso

LIMIT = 1500
LATE = 4
READS = 5
FEATURES_ROUTE = "/features/{view}/{entity}"

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture(scope="module")
def metrics_worker(isolated: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    from kafka_plumbing.topics import ensure_topics_sync

    ensure_topics_sync(isolated, list(load_definitions(isolated.features_module).sources))
    yield from running_worker(isolated, tmp_path_factory.mktemp("worker"), env={"FS_METRICS_INTERVAL_S": "1"})


@pytest.fixture(scope="module")
def run(metrics_worker: Worker) -> dict[str, Any]:
    worker = metrics_worker
    settings = worker.settings
    definitions = load_definitions(settings.features_module)
    by_source = flights_data.load_events(limit=LIMIT, progress=False, sources=("departures",))
    departures = by_source["departures"]
    asyncio.run(produce(settings, definitions.key_fields(), flights_data.iter_interleaved(by_source), len(departures),
                        progress=False))
    last_ms = flights_data.event_time_ms(departures[-1])
    late = [{**departures[-1], "event_id": f"late-{i}", "event_time": iso(last_ms - 2 * 3600_000 - i * 60_000)}
            for i in range(LATE)]
    raw = [(e["origin"].encode(), encode(e)) for e in late] + [(b"JFK", b"{not json"), (b"JFK", b"[]")]
    asyncio.run(produce_raw(settings, settings.topics.events("departures"), raw))
    counts = worker.wait_for("departures", len(departures) + len(raw))
    for _ in range(READS):  # served by the read process: its latencies must reach /metrics
        status, _ = worker.get("/features/origin_traffic/JFK")
        assert status == 200
    return {"counts": counts, "sent": len(departures) + len(raw)}


def scrape(worker: Worker) -> str:
    with urllib.request.urlopen(worker.url + "/metrics", timeout=10) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        return response.read().decode()


def parse(text: str) -> Samples:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum over the series of ``name`` whose labels include ``labels``."""
    found = [v for (n, ls), v in samples.items() if n == name and labels.items() <= dict(ls).items()]
    assert found, f"no series {name}{labels}"
    return sum(found)


def series(samples: Samples, name: str, **labels: str) -> list[dict[str, str]]:
    return [dict(ls) for (n, ls), _ in samples.items() if n == name and labels.items() <= dict(ls).items()]


def test_promtool_accepts_the_exposition(run: dict[str, Any], metrics_worker: Worker, tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool is not None, "promtool missing: .ci/run installs Debian's prometheus package"
    text = scrape(metrics_worker)
    (tmp_path / "metrics.txt").write_text(text)
    checked = subprocess.run([promtool, "check", "metrics"], input=text.encode(), capture_output=True, timeout=60)
    assert checked.returncode == 0, (checked.stdout + checked.stderr).decode()
    for family in ("featurestream_predictions_total", "featurestream_model_info", "featurestream_score_seconds",
                   "featurestream_event_to_prediction_seconds"):  # declared even before a model is deployed
        assert f"# TYPE {family} " in text


def test_figures_agree_with_stats(run: dict[str, Any], metrics_worker: Worker) -> None:
    worker, counts = metrics_worker, run["counts"]
    samples = parse(scrape(worker))
    for outcome in ("applied", "late", "duplicate", "invalid"):
        assert value(samples, "featurestream_events_total", source="departures", outcome=outcome) == counts[outcome]
    assert counts["late"] == LATE and counts["invalid"] == 2
    assert value(samples, "featurestream_events_total", source="departures", outcome="error") == 0
    assert value(samples, "featurestream_dlq_total", source="departures", reason="late") == LATE
    assert value(samples, "featurestream_dlq_total", source="departures") == LATE + 2

    partitions = worker.settings.partitions
    assert len(series(samples, "featurestream_consumer_lag", source="departures")) == partitions
    # Every record is flushed: the lag falls to 0 once the consumer has fetched again.
    deadline = time.monotonic() + 30
    while value(samples, "featurestream_consumer_lag", source="departures") != 0 and time.monotonic() < deadline:
        time.sleep(0.5)
        samples = parse(scrape(worker))
    assert value(samples, "featurestream_consumer_lag", source="departures") == 0
    # The flights are from 2013: the newest applied event is years old in event time,
    # and was applied moments ago in wall time.
    for labels in series(samples, "featurestream_newest_event_age_seconds", source="departures"):
        assert value(samples, "featurestream_newest_event_age_seconds", **labels) > 10 * 365 * 86400
    wall = series(samples, "featurestream_last_applied_age_seconds", source="departures")
    assert wall and all(0 <= value(samples, "featurestream_last_applied_age_seconds", **ls) < 300 for ls in wall)

    assert value(samples, "featurestream_flush_seconds_count", source="departures") > 0
    assert value(samples, "featurestream_commit_seconds_count", source="departures") > 0
    assert value(samples, "featurestream_flush_events_sum", source="departures") == run["sent"]
    # Key counts are refreshed at most every FS_METRICS_INTERVAL_S: the first may predate the events.
    deadline = time.monotonic() + worker.settings.metrics_interval_s + 10
    while not series(samples, "featurestream_table_keys", source="departures", table="origin_traffic"):
        assert time.monotonic() < deadline, "no featurestream_table_keys for origin_traffic"
        time.sleep(0.5)
        samples = parse(scrape(worker))
    assert value(samples, "featurestream_table_keys", source="departures", table="origin_traffic") > 0

    reads = value(samples, "featurestream_http_request_seconds_count", route=FEATURES_ROUTE, server="reader")
    assert reads >= READS
    assert value(samples, "featurestream_http_request_seconds_count", route="/stats", server="worker") > 0


def test_fs_metrics_snapshots(run: dict[str, Any], metrics_worker: Worker) -> None:
    worker, counts = metrics_worker, run["counts"]
    deadline = time.monotonic() + 60
    mine: list[MetricsSnapshot] = []
    while time.monotonic() < deadline:
        records = consume_all(worker.settings, worker.settings.topics.metrics)
        mine = [decode(r.value) for r in records if r.key == worker.url.encode()]
        last = mine[-1] if mine else None
        if last is not None and last.value("featurestream_events_total", source="departures",
                                           outcome="applied") == counts["applied"]:
            break
        time.sleep(1)
    assert mine, "no fs.metrics snapshot from this worker"
    last = mine[-1]
    assert last.worker == worker.url and last.interval_s == 1.0
    assert [s.seq for s in mine] == list(range(mine[0].seq, mine[0].seq + len(mine)))
    assert last.value("featurestream_events_total", source="departures", outcome="applied") == counts["applied"]
    assert last.value("featurestream_dlq_total", source="departures", reason="late") == LATE
    assert last.value("featurestream_consumer_lag", source="departures") is not None

"""Two workers in one group: partitions split between them, reads routed to the
key's owner, and a deploy reaches both within seconds."""
from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.request
from datetime import datetime
from typing import Iterator

import pytest

from dev_tooling import flights_data, kafka_local
from dev_tooling.processes import start_worker, stop_pid, wait_ready
from kafka_plumbing.producer import produce
from kafka_plumbing.settings import Settings
from kafka_plumbing.topics import ensure_topics_sync
from tables.definitions import load as load_definitions
from tests.integration.conftest import Worker, consume_until
from tests.integration.flights_stream import total_counts

HISTORY = 3_000
LIVE = 2_000


@pytest.fixture(scope="module")
def pair(isolated: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Worker]]:
    ensure_topics_sync(isolated, list(load_definitions(isolated.features_module).sources))
    handles = []
    try:
        for name in ("a", "b"):
            work = tmp_path_factory.mktemp(f"worker-{name}")
            handles.append(start_worker(kafka_local.free_port(), work / "data", work / "worker.log", env=isolated.as_env()))
        workers = [Worker(isolated, h) for h in handles]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # both ready and sharing the partitions
            for h in handles:
                wait_ready(h)
            if all(w.get("/healthz")[0] == 200 for w in workers):
                break
            time.sleep(1)
        yield workers
    finally:
        for h in handles:
            stop_pid(h.pid)
            if h.process is not None:
                h.process.wait(timeout=30)


def publish(settings: Settings, skip: int, limit: int, rate: float | None = None,
            sources: tuple[str, ...] = ("departures",)) -> int:
    definitions = load_definitions(settings.features_module)
    by_source = flights_data.load_events(limit=limit, skip=skip, sources=sources, progress=False)
    total = sum(len(v) for v in by_source.values())
    asyncio.run(produce(settings, definitions.key_fields(), flights_data.iter_interleaved(by_source), total, rate=rate, progress=False))
    return total


def applied(workers: list[Worker], source: str) -> int:
    return sum(w.counts(source)["applied"] for w in workers)


def wait_applied(workers: list[Worker], source: str, n: int, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while applied(workers, source) < n:
        assert time.monotonic() < deadline, f"{applied(workers, source)} of {n}"
        time.sleep(0.5)


def wait_decided(workers: list[Worker], source: str, n: int, timeout: float = 60) -> None:
    """Until ``n`` records of ``source`` have an outcome, over the workers."""
    deadline = time.monotonic() + timeout
    while (decided := sum(total_counts(tuple(workers), source).values())) < n:
        assert time.monotonic() < deadline, f"{decided} of {n} {source}"
        time.sleep(0.5)


def test_partitions_are_shared_and_reads_routed_to_the_owner(pair: list[Worker]) -> None:
    publish(pair[0].settings, 0, HISTORY, sources=("departures", "arrivals"))
    wait_applied(pair, "departures", HISTORY)
    per_worker = [w.counts("departures")["applied"] for w in pair]
    assert all(n > 0 for n in per_worker), per_worker  # both own some partitions
    for airport in ("EWR", "JFK", "LGA"):
        answers = [w.get(f"/features/origin_traffic/{airport}") for w in pair]
        assert [status for status, _ in answers] == [200, 200]
        assert answers[0][1]["features"] == answers[1][1]["features"]


def test_a_batch_sent_to_either_worker_answers_every_row_with_the_owners_value(pair: list[Worker]) -> None:
    # Runs after the test above has published HISTORY and both workers own partitions.
    tails = ("N14228", "N24211", "N619AA", "N804JB", "N668DN", "N39463",
             "N516JB", "N829AS", "N593JB", "N3ALAA", "N793JB", "N657JB")
    rows = [{"tailnum": t, "origin": o} for t, o in zip(tails, ("EWR", "JFK", "LGA") * 4)]
    body = json.dumps({"views": ["plane_recent", "origin_traffic"], "rows": rows}).encode()

    def batch(worker: Worker) -> list[dict]:
        request = urllib.request.Request(worker.url + "/features", data=body, method="POST")
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())["rows"]

    # plane_recent reads the re-keyed log, which trails the departures counted above: every
    # applied departure's copy decided, or reads move on between the batch and the single GETs.
    wait_decided(pair, "departures.by_tailnum", applied(pair, "departures"))
    for worker in pair:
        for row, got in zip(rows, batch(worker)):
            assert not got["errors"], got["errors"]  # every row answered, by whichever worker owns it
            for view, field in (("plane_recent", "tailnum"), ("origin_traffic", "origin")):
                owner = pair[0].get(f"/features/{view}/{row[field]}")
                assert (200, got["views"][view]) == owner, (worker.url, view, row[field])


def test_a_deploy_reaches_every_worker_within_seconds(pair: list[Worker]) -> None:
    first = pair[0]
    for trees in ("10", "5"):
        result = first.cli("train", "--name", "flight_delay", "--ntrees", trees)
        assert result.returncode == 0, result.stdout + result.stderr
    assert first.cli("models", "deploy", "flight_delay", "1").returncode == 0
    time.sleep(2)
    deployed = [w.get("/models")[1]["models"][0]["deployed"] for w in pair]
    assert [d and d["primary"] for d in deployed] == [1, 1], deployed  # both workers know

    producer = threading.Thread(target=publish, args=(first.settings, HISTORY, LIVE, 200.0))
    producer.start()
    time.sleep(4)
    deployed_at = time.time()
    result = first.cli("models", "deploy", "flight_delay", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    producer.join()
    wait_applied(pair, "departures", HISTORY + LIVE)

    records = consume_until(first.settings, first.settings.topics.predictions, lambda rs: len(rs) >= LIVE)
    assert len(records) == LIVE and len({r["event_id"] for r in records}) == LIVE
    partitions = {r["partition"] for r in records}
    assert len(partitions) >= 2
    for partition in partitions:
        mine = sorted((r for r in records if r["partition"] == partition), key=lambda r: r["offset"])
        versions = [r["model_version"] for r in mine]
        assert versions == sorted(versions) and versions[0] == 1 and versions[-1] == 2, partition
        first_v2 = next(r for r in mine if r["model_version"] == 2)
        switched_at = datetime.fromisoformat(first_v2["scored_at"].replace("Z", "+00:00")).timestamp()
        assert switched_at - deployed_at < 10, (partition, switched_at - deployed_at)

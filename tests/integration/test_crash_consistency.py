"""Crash consistency of the batched hot path, against the real broker.

- SIGKILL three times mid-stream, each restart on the same data directory:
  every event is applied exactly once (the counts equal the replay's
  decisions), the feature log holds every applied event, with the values the
  replay computes, and the re-keyed logs got every applied event.
- SIGTERM right after the worker reports everything applied: every output is
  in Kafka, and a restart applies nothing twice."""
from __future__ import annotations

import asyncio
import os
import signal
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator

import pytest

from app.row_files import read_rows
from dev_tooling import flights_data
from dev_tooling.processes import start_worker, wait_ready
from dev_tooling import kafka_local
from kafka_plumbing.producer import produce
from kafka_plumbing.settings import Settings
from kafka_plumbing.topics import ensure_topics_sync
from tables.definitions import load as load_definitions
from tests.integration.conftest import Worker, consume_all, decode

LIMIT = 2500
SOURCES = ("departures", "arrivals", "weather", "departures.by_tailnum", "arrivals.by_carrier")
REKEYED = (("departures.by_tailnum", "departures"), ("arrivals.by_carrier", "arrivals"))


def produce_flights(settings: Settings) -> dict[str, int]:
    definitions = load_definitions(settings.features_module)
    by_source = flights_data.load_events(limit=LIMIT, progress=False)
    interleaved = list(flights_data.iter_interleaved(by_source))
    asyncio.run(produce(settings, definitions.key_fields(), iter(interleaved), len(interleaved), progress=False))
    return {name: len(events) for name, events in by_source.items()}


class Restartable:
    """One worker identity (port, data directory) that can be killed and started again."""

    def __init__(self, settings: Settings, work: Path) -> None:
        self.settings = settings
        self.work = work
        self.port = kafka_local.free_port()
        self.worker: Worker | None = None

    def start(self) -> Worker:
        handle = start_worker(self.port, self.work / "data", self.work / "worker.log", env=self.settings.as_env())
        wait_ready(handle)
        self.worker = Worker(self.settings, handle)
        return self.worker

    def signal(self, signum: int) -> None:
        assert self.worker is not None and self.worker.handle.process is not None
        os.kill(self.worker.handle.pid, signum)
        self.worker.handle.process.wait(timeout=60)
        self.worker = None

    def stop(self) -> None:
        if self.worker is not None:
            self.signal(signal.SIGTERM)


@pytest.fixture()
def restartable(isolated: Settings, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Restartable]:
    tag = "kill" if "kill" in request.node.name else "term"  # each test its own topics and group
    settings = replace(isolated, topic_prefix=f"{isolated.topic_prefix}-{tag}", app_id=f"{isolated.app_id}-{tag}")
    ensure_topics_sync(settings, list(load_definitions(settings.features_module).sources))
    worker = Restartable(settings, tmp_path)
    try:
        yield worker
    finally:
        worker.stop()


def applied_total(worker: Worker) -> int:
    try:
        return worker.counts("departures")["applied"] + worker.counts("arrivals")["applied"]
    except (OSError, KeyError, TypeError):
        return 0


def wait_all(worker: Worker, sent: dict[str, int]) -> None:
    for name, n in sent.items():
        worker.wait_for(name, n, timeout=400)
    for derived, parent in REKEYED:
        worker.wait_for(derived, worker.counts(parent)["applied"], timeout=400)


def by_position(settings: Settings, topic: str) -> dict[tuple[int, int], dict[str, Any]]:
    """Feature-log records by the (partition, offset) they were served for; a
    record sent again after a kill must be identical to the first."""
    out: dict[tuple[int, int], dict[str, Any]] = {}
    for record in decode(consume_all(settings, topic)):
        key = (record["partition"], record["offset"])
        assert out.setdefault(key, record) == record, key
    return out


def assert_equals_replay(worker: Worker, source: str, tmp_path: Path) -> None:
    out = tmp_path / f"{source}.parquet"
    result = worker.cli("replay", "--source", source, "--from-topic", "--out", str(out))
    assert result.returncode == 0, result.stderr
    replayed = {(row["partition"], row["offset"]): row for row in read_rows(out)}
    counts = worker.counts(source)
    served = by_position(worker.settings, worker.settings.topics.features(source))
    assert counts["applied"] == len(replayed) == len(served), (source, counts, len(replayed), len(served))
    differences = []
    for position, record in served.items():
        row = replayed[position]
        for view, values in record["features"].items():
            for name, value in values.items():
                got = row[f"{view}.{name}"]
                if got != value or type(got) is not type(value):
                    differences.append((position, f"{view}.{name}", value, got))
    assert differences == [], differences[:5]


def test_three_kills_mid_stream_lose_nothing_and_apply_nothing_twice(restartable: Restartable,
                                                                     tmp_path: Path) -> None:
    worker = restartable.start()
    sent = produce_flights(restartable.settings)
    goal = sent["departures"] + sent["arrivals"]
    for fraction in (0.2, 0.45, 0.7):
        deadline = time.monotonic() + 300
        while applied_total(worker) < goal * fraction:
            assert time.monotonic() < deadline, f"stuck at {applied_total(worker)} of {goal}"
            time.sleep(0.05)
        assert applied_total(worker) < goal, "the kill should land mid-stream: raise LIMIT"
        restartable.signal(signal.SIGKILL)
        worker = restartable.start()
    wait_all(worker, sent)
    for source in SOURCES:
        assert_equals_replay(worker, source, tmp_path)
    late = [r for r in decode(consume_all(worker.settings, worker.settings.topics.dlq)) if r["reason"] == "late"]
    # No applied event is judged late on its re-delivery: one dead letter per late decision.
    assert len({(r["topic"], r["partition"], r["offset"]) for r in late}) == sum(
        worker.counts(s)["late"] for s in SOURCES)


def test_sigterm_after_everything_applied_leaves_every_output_in_kafka(restartable: Restartable) -> None:
    worker = restartable.start()
    sent = produce_flights(restartable.settings)
    wait_all(worker, sent)
    before = {s: worker.counts(s) for s in (*sent, *(d for d, _ in REKEYED))}
    restartable.signal(signal.SIGTERM)
    settings = restartable.settings
    for source, counts in before.items():
        assert len(by_position(settings, settings.topics.features(source))) == counts["applied"], source
    for derived, parent in REKEYED:
        assert len(consume_all(settings, settings.topics.events(derived))) == before[parent]["applied"], derived
    worker = restartable.start()
    time.sleep(3)  # a restart re-reads nothing as new
    assert {s: worker.counts(s) for s in before} == before

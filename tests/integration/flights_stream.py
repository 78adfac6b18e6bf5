"""A worker on the real flights stream that tests can kill, restart and
compare with the replay: shared by the crash and broker-restart tests."""
from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Any

from app.row_files import read_rows
from dev_tooling import flights_data
from dev_tooling import kafka_local
from dev_tooling.processes import start_worker, wait_ready
from kafka_plumbing.producer import produce
from kafka_plumbing.settings import Settings
from tables.definitions import load as load_definitions
from tests.integration.conftest import Worker, consume_all, decode

LIMIT = 2500
SOURCES = ("departures", "arrivals", "weather", "departures.by_tailnum", "arrivals.by_carrier")
REKEYED = (("departures.by_tailnum", "departures"), ("arrivals.by_carrier", "arrivals"))


def produce_flights(settings: Settings, limit: int = LIMIT) -> dict[str, int]:
    definitions = load_definitions(settings.features_module)
    by_source = flights_data.load_events(limit=limit, progress=False)
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

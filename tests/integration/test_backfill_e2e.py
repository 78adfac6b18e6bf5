"""Backfill and versions, the way a user runs them: a worker serves
``origin_traffic`` v1; it is restarted with a module that adds v2 while events
keep arriving; ``featurestream backfill`` follows the fill; v1 keeps serving
until ``featurestream views cutover``.  Every value v2 served after its
handover equals a replay of the whole log, exactly.  Then v3 is added while
the partitions are idle (the fill reaches its handover through markers) and
``backfill --cutover`` makes it the served version."""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Iterator

import pytest

from dev_tooling import kafka_local
from agents.control_client import issue_cutover
from dev_tooling.processes import start_worker, stop_pid, wait_ready
from app.row_files import read_rows
from kafka_plumbing.settings import Settings
from kafka_plumbing.topics import ensure_topics_sync
from tables.definitions import load as load_definitions
from tables.log_record import is_control
from tests.conftest import SUMMARY_LINES
from tests.integration.conftest import Worker, consume_all, consume_until

FIRST, SECOND, THIRD = 4_000, 3_000, 500
V2_MODULE, V3_MODULE = "tables.flights_v2", "tests.integration.features_v3"


class Deployment:
    """One worker at a time on the same data directory, restarted with another feature module."""

    def __init__(self, settings: Settings, work: Path) -> None:
        self.settings = settings
        self.work = work
        self.worker: Worker | None = None
        self.served: dict[str, dict] = {}  # what one test saw, for the next

    def start(self, module: str, data_dir: str = "data") -> Worker:
        self.stop()
        settings = replace(self.settings, features_module=module)
        ensure_topics_sync(settings, list(load_definitions(module).sources))
        handle = start_worker(kafka_local.free_port(), self.work / data_dir, self.work / "worker.log",
                              env=settings.as_env())
        wait_ready(handle)
        self.worker = Worker(settings, handle)
        return self.worker

    def stop(self) -> None:
        if self.worker is not None:
            stop_pid(self.worker.handle.pid)
            if self.worker.handle.process is not None:
                self.worker.handle.process.wait(timeout=30)
            self.worker = None


@pytest.fixture(scope="module")
def deployment(isolated: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    deployment = Deployment(isolated, tmp_path_factory.mktemp("backfill"))
    try:
        yield deployment
    finally:
        deployment.stop()


def produce_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "app.cli", "produce", "flights", "--sources", "departures", *args]


def test_a_new_version_is_filled_from_the_log_and_serves_only_after_the_cut_over(
    deployment: Deployment, tmp_path: Path
) -> None:
    first = deployment.start("tables.flights")
    assert first.cli("produce", "flights", "--sources", "departures", "--limit", str(FIRST)).returncode == 0
    first.wait_for("departures", FIRST)

    deployment.stop()
    # Events keep arriving across the restart: the new worker's agent works
    # through them while v2 is filled, so the handover meets a moving agent.
    producer = subprocess.Popen(
        produce_cmd("--skip", str(FIRST), "--limit", str(SECOND), "--rate", "1000"),
        env={**os.environ, **first.settings.as_env()}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    worker = deployment.start(V2_MODULE)
    result = worker.cli("backfill", "origin_traffic", timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "origin_traffic v2 is filled" in result.stderr
    assert producer.wait(timeout=120) == 0
    worker.wait_for("departures", FIRST + SECOND)
    # However fast the agent took the second batch, these come after the handover: served v2.
    assert worker.cli("produce", "flights", "--sources", "departures", "--skip", str(FIRST + SECOND),
                      "--limit", str(THIRD)).returncode == 0
    worker.wait_for("departures", FIRST + SECOND + THIRD)

    # v1 still answers to the name; v2 is readable by version, and says so.
    status, body = worker.get("/features/origin_traffic/JFK")
    assert status == 200 and body["version"] == 1 and body["serving_version"] == 1, body
    status, v2 = worker.get("/features/origin_traffic/JFK?version=2")
    assert status == 200 and v2["version"] == 2 and "departures_total" in v2["features"], v2
    status, body = worker.get("/features/origin_traffic/JFK?version=9")
    assert status == 404 and body["error"] == "unknown_version"

    # Exactness: every value served, v1 and v2, equals a replay of the whole log.
    served = consume_until(worker.settings, worker.settings.topics.features("departures"),
                           lambda rows: len(rows) >= FIRST + SECOND + THIRD)
    out = tmp_path / "replayed.jsonl"
    replayed = worker.cli("replay", "--source", "departures", "--from-topic", "--out", str(out))
    assert replayed.returncode == 0, replayed.stderr
    expected = {(r["partition"], r["offset"]): r for r in read_rows(out)}
    live_from = {int(p): s["live_from"] for v in worker.get("/views")[1]["views"] if v["ref"] == "origin_traffic@v2"
                 for p, s in v["partitions"].items()}
    assert live_from and all(s is not None for s in live_from.values()), live_from
    with_v2 = differences = 0
    for record in served:
        row = expected[(record["partition"], record["offset"])]
        assert ("origin_traffic@v2" in record["features"]) == (record["offset"] >= live_from[record["partition"]])
        with_v2 += "origin_traffic@v2" in record["features"]
        for ref, values in record["features"].items():
            for name, value in values.items():
                want = row[f"{ref}.{name}"]
                differences += not (value == want and type(value) is type(want))
    assert differences == 0
    assert with_v2 >= THIRD
    SUMMARY_LINES.append(
        f"backfill: origin_traffic v2 filled from the log while events arrived, live from offsets {live_from}; "
        f"{with_v2} of {len(served)} events served v2 ({FIRST + SECOND + THIRD - with_v2 - FIRST} of the {SECOND} "
        f"sent across the restart were taken before the handover), 0 differences from a full replay"
    )
    jfk = sum(1 for r in expected.values() if r["entity"] == "JFK")
    assert v2["features"]["departures_total"] == jfk  # the lifetime count saw all of the history

    # Cut-over: the name now serves v2; a version the workers do not define is refused by them.
    assert worker.cli("views", "cutover", "origin_traffic", "2").returncode == 0
    status, body = worker.get("/features/origin_traffic/JFK")
    assert status == 200 and body["version"] == 2 and body["features"] == v2["features"]
    deployment.served["v2"] = v2["features"]
    verdict = asyncio.run(issue_cutover(worker.settings, "origin_traffic", 9, by="test"))
    assert verdict.result == "refused" and "no version 9" in (verdict.reason or ""), verdict


def test_a_version_added_to_idle_partitions_is_filled_and_cut_over(deployment: Deployment) -> None:
    # An empty data directory: every table, clocks and fill offsets included,
    # is recovered from its changelog, so v2 is not filled again.
    worker = deployment.start(V3_MODULE, data_dir="fresh-data")
    status, v2 = worker.get("/features/origin_traffic/JFK?version=2")
    assert status == 200 and v2["features"] == deployment.served["v2"], v2
    applied_before = worker.counts("departures")
    result = worker.cli("backfill", "origin_traffic", "--cutover", timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "now serves version 3" in result.stderr
    status, v3 = worker.get("/features/origin_traffic/JFK")
    assert status == 200 and v3["version"] == 3 and v3["serving_version"] == 3
    shared = set(v2["features"])
    assert {k: v3["features"][k] for k in shared} == v2["features"]
    assert "p50_dep_delay_6h" in v3["features"]
    # No event arrived: the handover came through markers, which are not events.
    topic = worker.settings.topics.events("departures")
    markers = [m for m in consume_all(worker.settings, topic) if is_control(m.headers)]
    assert markers
    assert worker.counts("departures") == applied_before


def departures_by_dest(worker: Worker) -> Counter:
    topic = worker.settings.topics.events("departures")
    return Counter(json.loads(m.value)["dest"] for m in consume_all(worker.settings, topic) if not is_control(m.headers))


def test_a_view_on_a_new_entity_gets_its_history_re_keyed(deployment: Deployment, tmp_path: Path) -> None:
    worker = deployment.worker
    assert worker is not None  # the v3 worker, started over departures that were never keyed by dest
    sent = departures_by_dest(worker)
    dest, flights = sent.most_common(1)[0]
    status, body = worker.get(f"/features/dest_departures/{dest}")
    assert status == 503 and body["error"] == "view_filling", body  # never served without its history

    result = worker.cli("backfill", "dest_departures", timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "the workers have applied them" in result.stderr and "dest_departures v1 is filled" in result.stderr
    status, body = worker.get(f"/features/dest_departures/{dest}")
    assert status == 200 and body["features"]["total"] == flights, (body, flights)  # the whole history

    # Live forwarding took over where the history ends: nothing lost, nothing twice.
    more = worker.cli("produce", "flights", "--sources", "departures", "--skip", str(FIRST + SECOND + THIRD),
                      "--limit", "600")
    assert more.returncode == 0, more.stderr
    worker.wait_for("departures", FIRST + SECOND + THIRD + 600)
    sent = departures_by_dest(worker)
    counts = worker.wait_for("departures.by_dest", sum(sent.values()))
    assert counts == {"applied": sum(sent.values()), "late": 0, "duplicate": 0, "invalid": 0}, counts
    for name, n in sent.most_common(5):
        status, body = worker.get(f"/features/dest_departures/{name}")
        assert status == 200 and body["features"]["total"] == n, (name, body, n)

    # And the re-keyed log replays to exactly what its agent served.
    served = consume_until(worker.settings, worker.settings.topics.features("departures.by_dest"),
                           lambda rows: len(rows) >= sum(sent.values()))
    out = tmp_path / "by_dest.jsonl"
    replayed = worker.cli("replay", "--source", "departures.by_dest", "--from-topic", "--out", str(out))
    assert replayed.returncode == 0, replayed.stderr
    expected = {(r["partition"], r["offset"]): r for r in read_rows(out)}
    assert len(served) == len(expected) == sum(sent.values())
    for record in served:
        row = expected[(record["partition"], record["offset"])]
        for name, value in record["features"]["dest_departures"].items():
            assert value == row[f"dest_departures.{name}"] and type(value) is type(row[f"dest_departures.{name}"])


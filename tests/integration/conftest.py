"""Integration fixtures: one real Apache Kafka broker for the whole session
(fresh data directory, stopped and removed at the end) and real worker
processes started with ``featurestream worker``."""
from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator

import pytest

from dev_tooling import kafka_local
from kafka_plumbing.log_reader import read_all
from dev_tooling.processes import WorkerHandle, http_json, start_worker, stop_pid, wait_ready
from kafka_plumbing.settings import Settings, load
from tests.conftest import SUMMARY_LINES


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    home = tmp_path_factory.mktemp("featurestream")
    # Workers and commands sign control records with this key (kafka_plumbing.signing).
    # 4 partitions, not the 12 of a new deployment: a third of the partitions
    # to assign, restore and flush keeps the suite fast on two cores; the tests
    # about scaling out ask for more (test_three_workers).
    base = replace(load(), control_key=secrets.token_urlsafe(32), partitions=4)
    if base.kafka_bootstrap:  # an existing cluster was named: use it, start nothing
        yield replace(base, home=home, topic_prefix=f"it{uuid.uuid4().hex[:6]}")
        return
    data_dir = home / "kafka"
    settings = replace(base, home=home, kafka_port=kafka_local.free_port(), topic_prefix="it")
    info = kafka_local.start(settings, data_dir=data_dir, port=settings.kafka_port)
    assert info.version and info.version.startswith("3.9"), info
    version_line = next(
        (line for line in info.log_path.read_text().splitlines() if "Kafka version" in line), "?"
    ) if info.log_path else "?"
    SUMMARY_LINES.append(
        f"Apache Kafka {info.version} broker at {info.bootstrap} started in {info.startup_seconds:.1f}s; "
        f"its log: {version_line.strip()}"
    )
    try:
        yield settings
    finally:
        kafka_local.stop(settings, data_dir=data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)


class Worker:
    """A real worker process bound to one test module's isolated topics."""

    def __init__(self, settings: Settings, handle: WorkerHandle) -> None:
        self.settings = settings
        self.handle = handle
        self.url = handle.url

    def get(self, path: str) -> tuple[int, Any]:
        return http_json(self.url + path)

    def counts(self, source: str) -> dict[str, int]:
        _, body = self.get("/stats")
        parts = body["sources"].get(source, {})
        keys = ("applied", "late", "duplicate", "invalid")
        return {k: sum(p[k] for p in parts.values()) for k in keys}

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        """Run ``featurestream ARGS`` against this worker's topics, as a user would."""
        return subprocess.run(
            [sys.executable, "-m", "app.cli", *args], env={**os.environ, **self.settings.as_env()},
            capture_output=True, text=True, timeout=timeout,
        )

    def wait_for(self, source: str, total: int, timeout: float = 240) -> dict[str, int]:
        """Until every record sent to ``source`` has an outcome."""
        deadline = time.monotonic() + timeout
        counts = self.counts(source)
        while time.monotonic() < deadline:
            counts = self.counts(source)
            if sum(counts.values()) >= total:
                return counts
            time.sleep(0.5)
        raise AssertionError(f"{source}: only {counts} of {total} after {timeout}s; log {self.handle.log_path}")


@pytest.fixture(scope="module")
def isolated(broker: Settings, request: pytest.FixtureRequest) -> Settings:
    """Own topic prefix and app id per test module: no state leaks between modules."""
    tag = request.module.__name__.rsplit(".", 1)[-1].replace("test_", "")[:20]
    unique = f"{tag}{uuid.uuid4().hex[:6]}"
    return replace(
        broker, topic_prefix=f"{broker.topic_prefix}-{unique}", app_id=f"fs-{unique}",
        registry_dir=broker.home / unique / "registry",
    )


@pytest.fixture(scope="module")
def worker(isolated: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    from kafka_plumbing.topics import ensure_topics_sync
    from tables.definitions import load as load_definitions

    ensure_topics_sync(isolated, list(load_definitions(isolated.features_module).sources))
    yield from running_worker(isolated, tmp_path_factory.mktemp("worker"))


def running_worker(settings: Settings, work: Path, env: dict[str, str] | None = None) -> Iterator[Worker]:
    """A worker process on ``settings`` (and ``env``: variables beyond them), ready, stopped when the generator closes."""
    handle = start_worker(kafka_local.free_port(), work / "data", work / "worker.log",
                          env={**settings.as_env(), **(env or {})})
    try:
        wait_ready(handle)
        yield Worker(settings, handle)
    finally:
        stop_pid(handle.pid)
        if handle.process is not None:
            handle.process.wait(timeout=30)


def consume_all(settings: Settings, topic: str, timeout: float = 30) -> list[Any]:
    """Every record of ``topic`` from the beginning to the current end."""
    return asyncio.run(read_all(settings, topic, timeout))


def decode(records: list[Any]) -> list[dict]:
    return [json.loads(r.value) for r in records]


def consume_until(settings: Settings, topic: str, enough: Any, timeout: float = 60) -> list[dict]:
    """Decoded records of ``topic`` once ``enough(records)`` holds: outputs are
    sent without waiting, so they can trail the table counters a little."""
    deadline = time.monotonic() + timeout
    while True:
        records = decode(consume_all(settings, topic))
        if enough(records) or time.monotonic() > deadline:
            return records
        time.sleep(0.5)

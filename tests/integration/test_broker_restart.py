"""The broker stopped and started again mid-stream, under a running worker.

The test starts its own broker (the session's is shared by every module), a
worker on it, publishes real flights, and once a fifth of the events are
applied stops the broker (a clean shutdown, as an upgrade or a restart
does) and starts it again on the same data directory and port.  The same
worker process carries on: every event is applied exactly once, the feature
log and the re-keyed logs hold every applied event with the replay's values,
and no applied event comes back as late.  The worker's log names the
outage without a line for every retry."""
from __future__ import annotations

import shutil
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator

import pytest

from dev_tooling import kafka_local
from kafka_plumbing.settings import Settings, load
from kafka_plumbing.topics import ensure_topics_sync
from tables.definitions import load as load_definitions
from tests.conftest import SUMMARY_LINES
from tests.integration.flights_stream import (SOURCES, Restartable, applied_total, assert_equals_replay,
                                              count_outputs, produce_flights, wait_all)

LIMIT = 6000
RATE = 1_500  # events/s: about 8 s of publishing, the broker away for a few of them
DOWN_S = 3.0


@dataclass
class OwnBroker:
    settings: Settings
    data_dir: Path

    def stop(self) -> None:
        assert kafka_local.stop(self.settings, data_dir=self.data_dir), "the broker was not running"

    def start(self) -> None:
        kafka_local.start(self.settings, data_dir=self.data_dir, port=self.settings.kafka_port)


@pytest.fixture()
def own_broker(tmp_path: Path) -> Iterator[OwnBroker]:
    base = load()
    if base.kafka_bootstrap:
        pytest.skip("FS_KAFKA_BOOTSTRAP names an external cluster; this test restarts its own local broker")
    settings = replace(base, home=tmp_path / "home", kafka_port=kafka_local.free_port(), topic_prefix="restart",
                       app_id="fs-restart", registry_dir=tmp_path / "registry")
    broker = OwnBroker(settings, tmp_path / "kafka")
    broker.start()
    try:
        yield broker
    finally:
        kafka_local.stop(settings, data_dir=broker.data_dir)
        shutil.rmtree(broker.data_dir, ignore_errors=True)


def test_a_broker_restart_mid_stream_loses_nothing_and_applies_nothing_twice(own_broker: OwnBroker,
                                                                             tmp_path: Path) -> None:
    settings = own_broker.settings
    ensure_topics_sync(settings, list(load_definitions(settings.features_module).sources))
    restartable = Restartable(settings, tmp_path / "worker")
    worker = restartable.start()
    try:
        # Published at a pace, as producers do: the broker goes away while events still arrive.
        sent: dict[str, int] = {}
        stream = threading.Thread(target=lambda: sent.update(produce_flights(settings, LIMIT, rate=RATE)))
        stream.start()
        deadline = time.monotonic() + 300
        while applied_total(worker) < 2 * LIMIT * 0.2:
            assert time.monotonic() < deadline, f"stuck at {applied_total(worker)}"
            time.sleep(0.05)
        assert stream.is_alive(), "the broker should go away mid-stream: lower RATE"
        own_broker.stop()
        time.sleep(DOWN_S)
        own_broker.start()
        stream.join()
        wait_all(worker, sent)
        assert worker.handle.process is not None and worker.handle.process.poll() is None, "the worker died"
        # aiokafka retries without backing off while the broker is away; its
        # repeated errors are held to one line per kind every few seconds.
        refused = [line for line in worker.handle.log_path.read_text().splitlines() if "Unable connect to node" in line]
        assert 1 <= len(refused) <= 20, len(refused)
        for source in SOURCES:
            assert_equals_replay(worker, source, tmp_path)
        outputs = count_outputs(worker)
        SUMMARY_LINES.append(f"broker restart: stopped at 20% of {sum(sent.values())} events published at "
                             f"{RATE:.0f}/s, down {DOWN_S:.0f} s; 0 lost, 0 applied twice, 0 values differing from "
                             f"the replay; {outputs.line()}")
    finally:
        restartable.stop()

"""The worker's read process answers GET /features without the worker's loop.

The worker is frozen with SIGSTOP (its loop cannot answer anything): reads
still answer, from the state the worker had flushed, identical to what the
worker itself serves with the read process off.  New events reach reads once
the worker runs again, and the read process ends with the worker."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest

from dev_tooling import flights_data
from kafka_plumbing.producer import produce
from kafka_plumbing.settings import Settings
from tables.definitions import load as load_definitions
from tests.integration.conftest import Worker, running_worker

LIMIT = 1500
ORIGINS = ("EWR", "JFK", "LGA")


def _send(settings: Settings, skip: int, limit: int) -> int:
    definitions = load_definitions(settings.features_module)
    events = flights_data.load_events(limit=limit, skip=skip, sources=("departures",), progress=False)["departures"]
    asyncio.run(produce(settings, definitions.key_fields(), (("departures", e) for e in events), len(events),
                        progress=False))
    return len(events)


def _reader_pids(worker_pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(worker_pid), "-f", "app.reader"], capture_output=True, text=True)
    return [int(p) for p in found.stdout.split()]


@pytest.fixture(scope="module")
def pair(isolated: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Worker, Worker]]:
    """The same topics served twice: by a worker with its read process, and by one without (a second app id)."""
    from dataclasses import replace

    from kafka_plumbing.topics import ensure_topics_sync

    ensure_topics_sync(isolated, list(load_definitions(isolated.features_module).sources))
    plain_settings = replace(isolated, app_id=isolated.app_id + "-plain")
    with_reader = running_worker(isolated, tmp_path_factory.mktemp("reader"))
    plain = running_worker(plain_settings, tmp_path_factory.mktemp("plain"), env={"FS_READ_PROCESS": "0"})
    try:
        yield next(with_reader), next(plain)
    finally:
        with_reader.close()
        plain.close()


def test_reads_answer_while_the_worker_is_frozen_and_equal_the_workers_own(pair: tuple[Worker, Worker]) -> None:
    worker, plain = pair
    assert _reader_pids(worker.handle.pid), "the worker has a read process"
    assert not _reader_pids(plain.handle.pid), "FS_READ_PROCESS=0: none"
    sent = _send(worker.settings, 0, LIMIT)
    worker.wait_for("departures", sent)
    plain.wait_for("departures", sent)

    own = {origin: plain.get(f"/features/origin_traffic/{origin}") for origin in ORIGINS}
    # No waiting: what /stats counted, a read sees (both see flushes once written locally).
    before = {origin: worker.get(f"/features/origin_traffic/{origin}") for origin in ORIGINS}
    for origin in ORIGINS:
        assert before[origin][0] == 200, before[origin]
        assert before[origin][1] == own[origin][1], origin  # the read process serves what the worker serves
    as_of = "2013-01-01T12:00:00Z"
    assert worker.get(f"/features/origin_traffic/JFK?as_of={as_of}") == plain.get(
        f"/features/origin_traffic/JFK?as_of={as_of}")

    os.kill(worker.handle.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        frozen = {origin: worker.get(f"/features/origin_traffic/{origin}") for origin in ORIGINS}
        took = time.monotonic() - started
        # Routes the worker itself answers wait for it: proxied, they time out rather than answer.
    finally:
        os.kill(worker.handle.pid, signal.SIGCONT)
    assert frozen == before, "the frozen worker's flushed state, served by the read process"
    print(f"read process: {len(ORIGINS)} reads answered in {took * 1000:.0f} ms while the worker was stopped")

    more = _send(worker.settings, LIMIT, 500)
    worker.wait_for("departures", sent + more)
    after = worker.get("/features/origin_traffic/JFK")
    assert after[0] == 200 and after[1]["events_applied"] > before["JFK"][1]["events_applied"]


def test_the_read_process_ends_with_its_worker(isolated: Settings, tmp_path: Path) -> None:
    from dataclasses import replace

    settings = replace(isolated, app_id=isolated.app_id + "-kill")
    run = running_worker(settings, tmp_path)
    worker = next(run)
    readers = _reader_pids(worker.handle.pid)
    assert len(readers) == 1
    os.kill(worker.handle.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and Path(f"/proc/{readers[0]}").exists() and not _zombie(readers[0]):
        time.sleep(0.1)
    assert not Path(f"/proc/{readers[0]}").exists() or _zombie(readers[0]), "the read process outlived its worker"
    run.close()


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except OSError:
        return False

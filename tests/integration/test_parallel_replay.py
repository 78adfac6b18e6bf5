"""The offline engine run partition by partition in parallel (``--workers``,
``--dask``) writes the same bytes as the one-process run: real flights in
real topics, a source's own log and a re-keyed one (whose partitions
interleave the parent's partitions as lanes), replay and training set."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pandas as pd
import pytest

from app.row_files import read_rows, write_rows
from dev_tooling import flights_data
from tests.integration.conftest import Worker, consume_all
from tests.integration.flights_stream import produce_flights, wait_all
from tables.log_record import lane_of

LIMIT = 3000
SOURCES = ("departures", "departures.by_tailnum")


@pytest.fixture(scope="module")
def flights(worker: Worker) -> dict[str, int]:
    """Departures with their arrivals and weather, applied by a live worker,
    which also wrote the re-keyed logs."""
    sent = produce_flights(worker.settings, LIMIT)
    wait_all(worker, sent)
    return sent


def replay_file(worker: Worker, source: str, out: Path, *flags: str) -> tuple[bytes, str]:
    result = worker.cli("replay", "--source", source, "--from-topic", "--out", str(out), *flags)
    assert result.returncode == 0, result.stderr
    return out.read_bytes(), " ".join(result.stderr.split())  # rich wraps lines at 80 columns in a pipe


@pytest.fixture(scope="module")
def one_process(worker: Worker, flights: dict[str, int], tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """The reference: each source replayed in one process (no flag)."""
    work = tmp_path_factory.mktemp("one-process")
    return {source: replay_file(worker, source, work / f"{source}.parquet")[0] for source in SOURCES}


def test_the_logs_exercise_partitions_and_lanes(worker: Worker, flights: dict[str, int],
                                                one_process: dict[str, bytes], tmp_path: Path) -> None:
    """Equality below means something: rows from several partitions, and a
    re-keyed log whose partitions carry several upstream lanes."""
    for source in SOURCES:
        path = tmp_path / f"{source}.parquet"
        path.write_bytes(one_process[source])
        rows = read_rows(path)
        assert len(rows) > 1000, source
        assert len({row["partition"] for row in rows}) >= 2, source
    rekeyed = consume_all(worker.settings, worker.settings.topics.events("departures.by_tailnum"))
    lanes: dict[int, set[int | None]] = {}
    for record in rekeyed:
        lanes.setdefault(record.partition, set()).add(lane_of(record.headers))
    assert any(len(seen) >= 2 for seen in lanes.values()), lanes


@pytest.mark.parametrize("source", SOURCES)
def test_two_processes_write_the_same_bytes(worker: Worker, one_process: dict[str, bytes], source: str,
                                            tmp_path: Path) -> None:
    parallel, stderr = replay_file(worker, source, tmp_path / "parallel.parquet", "--workers", "2")
    assert "partitions with records, on 2 processes" in stderr, stderr
    assert parallel == one_process[source]


@pytest.fixture(scope="module")
def dask_scheduler() -> Iterator[str]:
    """A small local Dask cluster the command connects to by address, as to a real one."""
    from distributed import LocalCluster

    # Threads, not processes: quick to start; the jobs still cross the wire to and from the command.
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, protocol="tcp://", host="127.0.0.1",
                      dashboard_address=None) as cluster:
        yield cluster.scheduler_address


@pytest.mark.parametrize("source", SOURCES)
def test_dask_cluster_writes_the_same_bytes(worker: Worker, one_process: dict[str, bytes], dask_scheduler: str,
                                            source: str, tmp_path: Path) -> None:
    parallel, stderr = replay_file(worker, source, tmp_path / "dask.parquet", "--dask", dask_scheduler)
    assert f"partitions with records, on Dask at {dask_scheduler}" in stderr, stderr
    assert parallel == one_process[source]


def labels_file(path: Path) -> Path:
    """One label per departure: its origin and plane, its time, delayed or not."""
    departures = pd.DataFrame(flights_data.load_events(limit=LIMIT, sources=["departures"],
                                                       progress=False)["departures"])
    labels = pd.DataFrame({
        "origin": departures.origin, "tailnum": departures.tailnum, "time": departures.event_time,
        "label": (departures.dep_delay.fillna(0) > 15).astype(int),
    })
    write_rows(path, labels.astype(object).where(labels.notna(), None).to_dict("records"), list(labels.columns))
    return path


@pytest.mark.parametrize("flags", [("--workers", "2"), ("--dask", None)], ids=["workers", "dask"])
def test_training_set_is_the_same_bytes(worker: Worker, flights: dict[str, int], dask_scheduler: str,
                                        flags: tuple[str, Any], tmp_path: Path) -> None:
    """Views on a source's log and on a re-keyed log (plane_recent reads departures.by_tailnum)."""
    labels = labels_file(tmp_path / "labels.jsonl")
    outputs = []
    for extra in ((), (flags[0], flags[1] or dask_scheduler)):
        out = tmp_path / f"training{len(outputs)}.parquet"
        result = worker.cli("training-set", "--labels", str(labels), "--views", "origin_traffic", "plane_recent",
                            "--out", str(out), *extra)
        assert result.returncode == 0, result.stderr
        outputs.append(out.read_bytes())
    frame = pd.read_parquet(tmp_path / "training0.parquet")
    assert frame["plane_recent.flights_24h"].gt(0).sum() > 100  # the re-keyed view has history to join
    assert outputs[1] == outputs[0]

"""Scale-out: three workers in one group on 12 partitions, against the real broker.

Three workers (A, B, C) share the 12 partitions of every log, the model
deployed.  Mid-stream C is killed with SIGKILL and a new worker D (another
port, an empty data directory) is started: C's partitions move to A and B
when C's session expires, then on to D.  After each move:

- every window survives: every key read on every worker equals the replay,
  and at the end the feature log of each of the 5 logs equals the replay;
- a read for any entity sent to any worker answers with the owner's value
  (all three workers give the same answer for every key);
- every worker owning a departures partition scores: prediction records name
  the event, not the worker, so each worker's /metrics count of published
  predictions is compared (departures are keyed by 3 origins, so only 3 of
  the 12 partitions carry them: partitions 0, 1 and 7, which the assignor
  gives to at most 2 of 3 workers);
- applied/late/duplicate/invalid over the workers equal the replay's.
"""
from __future__ import annotations

import signal
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator

import pytest

from agents.ingest_loop import SESSION_TIMEOUT_MS
from dev_tooling import flights_data
from kafka_plumbing.settings import Settings
from kafka_plumbing.topics import ensure_topics_sync
from tables.definitions import load as load_definitions
from tests.conftest import SUMMARY_LINES
from tests.integration.conftest import Worker, consume_all, decode
from tests.integration.flights_stream import (SOURCES, Key, Restartable, answers, applied_total,
                                              assert_equals_replay, both_ready, deploy_model, keys_of, owned,
                                              positions, predictions_published, produce_flights, replayed_values,
                                              total_counts, wait_all, wait_answers)

PARTITIONS = 12
HISTORY = 1_200  # departures (with arrivals and weather) before the model is trained and deployed
STREAM = 2_500  # departures streamed while C is killed and D started
AFTER = 800  # departures once D serves: it scores some of them
RATE = 1_000.0  # events per second: the stream lasts several seconds, so the kill lands inside it


@dataclass
class Group:
    workers: dict[str, Restartable]
    keys: list[Key]
    sent: Counter[str] = field(default_factory=Counter)

    def running(self) -> list[Worker]:
        return [r.worker for r in self.workers.values() if r.worker is not None]


def partitions_of(worker: Worker) -> int:
    """Partitions of the planes' log this worker owns (its /stats lists those with state: departures are
    keyed by 3 airports, so only a log keyed by thousands of planes has state in all 12)."""
    return len({p for source, p in owned(worker) if source == "departures.by_tailnum"})


def same_everywhere(workers: list[Worker], keys: list[Key], expected: dict[Key, str]) -> int:
    """Every worker answers every key with the replay's value; returns the reads compared."""
    for worker in workers:
        got = answers(worker, keys)
        wrong = {k: v for k, v in got.items() if v != (200, expected[k])}
        assert wrong == {}, (worker.url, len(wrong), list(wrong.items())[:3])
    return len(workers) * len(keys)


@pytest.fixture(scope="module")
def group(isolated: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Group]:
    settings = replace(isolated, partitions=PARTITIONS)
    ensure_topics_sync(settings, list(load_definitions(settings.features_module).sources))
    events = flights_data.load_events(limit=HISTORY + STREAM, progress=False)
    workers = {name: Restartable(settings, tmp_path_factory.mktemp(f"worker-{name}")) for name in "abc"}
    try:
        with ThreadPoolExecutor(max_workers=3) as pool:  # each start waits for the others' rebalance
            list(pool.map(lambda r: r.start(), workers.values()))
        yield Group(workers, keys_of(events, PARTITIONS))
    finally:
        for restartable in workers.values():
            restartable.stop()


def test_three_workers_survive_a_kill_and_a_new_worker(group: Group, tmp_path: Path,
                                                       tmp_path_factory: pytest.TempPathFactory) -> None:
    a, b, c = (group.workers[n].worker for n in "abc")
    assert a is not None and b is not None and c is not None
    settings = a.settings
    both_ready([a, b, c])

    group.sent.update(produce_flights(settings, HISTORY))
    wait_all(a, dict(group.sent), b, c)
    before = sorted(partitions_of(w) for w in (a, b, c))
    assert before == [4, 4, 4], ("12 partitions, 4 a worker", before)
    version = deploy_model(a)
    for worker in (b, c):  # each follows the deployment before a departure of the stream arrives
        deadline = time.monotonic() + 30
        while not any(m["name"] == "flight_delay" and (m["deployed"] or {}).get("primary") == version
                      for m in worker.get("/models")[1]["models"]):
            assert time.monotonic() < deadline, f"{worker.url} never followed the deployment"
            time.sleep(0.2)
    unscored = set(positions(decode(consume_all(settings, settings.topics.features("departures")))))

    # C is killed mid-stream; D, a new identity (port, empty data dir), starts at once.
    group.workers["d"] = Restartable(settings, tmp_path_factory.mktemp("worker-d"))
    with ThreadPoolExecutor(max_workers=1) as pool:
        stream = pool.submit(produce_flights, settings, STREAM, HISTORY, RATE)
        c_before = applied_total(c)
        deadline = time.monotonic() + 120
        while applied_total(c) - c_before < 200:  # C has streamed state of its own to lose
            assert not stream.done() and time.monotonic() < deadline, f"C applied only {applied_total(c) - c_before}"
            time.sleep(0.05)
        assert not stream.done(), "the kill must land mid-stream: lower RATE"
        c_scored = predictions_published(c)
        c_scores = any(source == "departures" for source, _ in owned(c))  # its URL's rank decides
        killed = time.monotonic()
        group.workers["c"].signal(signal.SIGKILL)
        d = group.workers["d"].start()  # ready once the group rebalanced without C (its session expired)
        ready_s = time.monotonic() - killed
        group.sent.update(stream.result())
    workers = [a, b, d]
    both_ready(workers)
    wait_all(a, dict(group.sent), b, d)
    failover_s = time.monotonic() - killed
    after = sorted(partitions_of(w) for w in workers)
    assert after == [4, 4, 4], after

    # First check after the moves (C -> A and B -> D): every worker, every key, the replay's value.
    expected, _ = replayed_values(settings, group.keys)
    wait_answers(d, group.keys, expected, timeout=30)
    reads = same_everywhere(workers, group.keys, expected)

    group.sent.update(produce_flights(settings, AFTER, HISTORY + STREAM))
    wait_all(a, dict(group.sent), b, d)
    for source in SOURCES:
        assert_equals_replay(a, source, tmp_path, b, d)
    served = sum(total_counts(tuple(workers), s)["applied"] for s in SOURCES)
    expected, replays = replayed_values(settings, group.keys)
    reads += same_everywhere(workers, group.keys, expected)

    totals = {source: total_counts(tuple(workers), source) for source in SOURCES}
    assert totals == {source: vars(replays[source].counts) for source in SOURCES}
    assert sum(sum(totals[s].values()) for s in group.sent) == sum(group.sent.values())

    # Departures are keyed by origin: 3 airports, so 3 of the 12 partitions (0, 1, 7) carry every departure
    # and only their owners score.  Each owner scored; a worker that never owned one scored nothing.
    scored = {name: predictions_published(group.workers[name].worker) for name in "abd"}
    scoring = {name for name in "abd" if any(source == "departures" for source, _ in owned(group.workers[name].worker))}
    assert scoring and all((scored[n] > 0) == (n in scoring) for n in "abd"), (scored, scoring)
    assert (c_scored > 0) == c_scores and len(scoring) >= 2, (c_scored, c_scores, scoring)
    predicted = set(positions(decode(consume_all(settings, settings.topics.predictions))))
    departures = set(positions(decode(consume_all(settings, settings.topics.features("departures")))))
    assert predicted == departures - unscored, "a prediction per departure applied since the deploy"

    line = (f"three workers, {PARTITIONS} partitions: partitions per worker {before} before, "
            f"{after} after C was SIGKILLed mid-stream and D (new port, empty data dir) started; D ready "
            f"{ready_s:.1f}s after the kill (session timeout {SESSION_TIMEOUT_MS / 1000:.0f}s), everything applied "
            f"{failover_s:.1f}s after it; {served} feature-log records of {len(SOURCES)} logs equal the replay, "
            f"{reads} reads ({len(group.keys)} keys x 3 workers, twice) all the owner's value; model v{version} "
            f"predictions per worker (/metrics): A {scored['a']}, B {scored['b']}, C {c_scored} before its kill, "
            f"D {scored['d']} (departures keyed by 3 origins: 3 partitions, owned by {len(scoring)} of the 3 now); {len(predicted)} departures scored; totals equal the replay for {len(SOURCES)} logs")
    SUMMARY_LINES.append(line)
    print(line)

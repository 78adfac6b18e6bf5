"""Rebalance and restart with two workers in one group, against the real broker.

In order, on one pair of workers (each test goes on from the last):

1. B is killed with SIGKILL mid-stream: the survivor A takes B's partitions
   once B's session expires, restores their state from the changelogs,
   applies the rest, and answers for every key with the replay's values.
2. B restarted on its old data directory at the same URL gets its
   partitions back (the assignor orders members by URL); after more events,
   every value either worker serves, for any key, equals the replay.
3. Restart times: on the old data directory (its RocksDB state reused)
   against an empty one (everything read back from the changelogs).
4. Applied, late, duplicate and invalid over both workers equal the replay's.
"""
from __future__ import annotations

import json
import re
import shutil
import signal
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pytest

from agents.ingest_loop import SESSION_TIMEOUT_MS
from dev_tooling import flights_data
from kafka_plumbing.settings import Settings
from kafka_plumbing.topics import ensure_topics_sync
from tables.definitions import load as load_definitions
from tests.conftest import SUMMARY_LINES
from tests.integration.conftest import consume_all
from tests.integration.flights_stream import (REKEYED, SOURCES, Key, Restartable, answers, applied_total,
                                              assert_equals_replay, both_ready, by_position, keys_of, owned,
                                              produce_flights, replayed_values, total_counts, wait_all,
                                              wait_answers)

BEFORE = 3_000  # departures (with their arrivals and weather) streamed while B is killed
AFTER = 1_000  # departures after B is back
RATE = 1_000.0  # events per second: the stream lasts a few seconds, so the kill lands inside it
RESTORED = re.compile(r"(\d+) changelog records restored")

@dataclass
class Restart:
    ready_s: float  # start until /healthz says ready
    serving_s: float  # start until every key answers with the replay's values
    restored: int  # changelog records read back


@dataclass
class Pair:
    a: Restartable
    b: Restartable
    keys: list[Key]
    sent: Counter[str] = field(default_factory=Counter)
    expected: dict[Key, str] = field(default_factory=dict)  # the replay's values, as JSON
    after_kill: Restart | None = None


def log_size(restartable: Restartable) -> int:
    path = restartable.work / "worker.log"
    return path.stat().st_size if path.exists() else 0


def restored_since(restartable: Restartable, offset: int) -> int:
    """Changelog records the worker logged as restored (``agents.source_state``) after ``offset`` of its log."""
    with open(restartable.work / "worker.log", "rb") as log:
        log.seek(offset)
        return sum(int(n) for n in RESTORED.findall(log.read().decode("utf-8", "replace")))


def restart(restartable: Restartable, keys: list[Key], expected: dict[Key, str]) -> Restart:
    offset = log_size(restartable)
    started = time.monotonic()
    worker = restartable.start()
    ready_s = time.monotonic() - started
    wait_answers(worker, keys, expected)
    return Restart(ready_s, time.monotonic() - started, restored_since(restartable, offset))


@pytest.fixture(scope="module")
def pair(isolated: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    ensure_topics_sync(isolated, list(load_definitions(isolated.features_module).sources))
    events = flights_data.load_events(limit=BEFORE, progress=False)
    a = Restartable(isolated, tmp_path_factory.mktemp("worker-a"))
    b = Restartable(isolated, tmp_path_factory.mktemp("worker-b"))
    try:
        workers = [a.start(), b.start()]
        both_ready(workers)
        yield Pair(a, b, keys_of(events, isolated.partitions))
    finally:
        b.stop()
        a.stop()


def test_the_survivor_answers_for_every_key_after_a_kill(pair: Pair) -> None:
    a, b = pair.a.worker, pair.b.worker
    assert a is not None and b is not None
    settings = a.settings
    with ThreadPoolExecutor(max_workers=1) as pool:
        stream = pool.submit(produce_flights, settings, BEFORE, 0, RATE)
        deadline = time.monotonic() + 120
        while applied_total(b) < 300:  # B has state of its own to lose
            assert not stream.done() and time.monotonic() < deadline, f"B applied only {applied_total(b)}"
            time.sleep(0.05)
        b_owned = owned(b)
        b_applied = applied_total(b)
        assert not stream.done(), "the kill must land mid-stream: lower RATE"
        a_log = log_size(pair.a)
        killed = time.monotonic()
        pair.b.signal(signal.SIGKILL)
        pair.sent.update(stream.result())
    wait_answers(a, pair.keys)  # A takes B's partitions, restores them, catches up
    answered_s = time.monotonic() - killed
    wait_all(a, pair.sent)
    applied_s = time.monotonic() - killed
    a_restored = restored_since(pair.a, a_log)
    assert owned(a) >= b_owned, "the survivor owns every partition"
    assert a_restored > 0, "B's partitions restored on A from their changelogs"

    pair.expected, _ = replayed_values(settings, pair.keys)
    got = answers(a, pair.keys)
    wrong = {k: v for k, v in got.items() if v != (200, pair.expected[k])}
    assert wrong == {}, list(wrong.items())[:3]
    line = (f"rebalance: B SIGKILLed mid-stream with {b_applied} events applied on {len(b_owned)} partitions; "
            f"A answered all {len(pair.keys)} keys {answered_s:.1f}s after the kill (session timeout "
            f"{SESSION_TIMEOUT_MS / 1000:.0f}s), everything applied {applied_s:.1f}s after it, {a_restored} changelog "
            f"records restored on A; every value equals the replay")
    SUMMARY_LINES.append(line)
    print(line)


def test_the_restarted_worker_gets_its_partitions_back_with_its_windows(pair: Pair, tmp_path: Path) -> None:
    a = pair.a.worker
    assert a is not None
    a_alone = owned(a)
    # Nothing new since the kill: B's first answers are the state it had plus what A applied for it.
    pair.after_kill = restart(pair.b, pair.keys, pair.expected)
    b = pair.b.worker
    assert b is not None
    b_owned, a_owned = owned(b), owned(a)
    assert b_owned and not (a_owned & b_owned) and a_owned | b_owned == a_alone, (a_owned, b_owned)

    pair.sent.update(produce_flights(a.settings, AFTER, skip=BEFORE))
    wait_all(a, dict(pair.sent), b)
    for source in SOURCES:
        assert_equals_replay(a, source, tmp_path, b)
    pair.expected, _ = replayed_values(a.settings, pair.keys)
    for worker in (a, b):  # either worker answers for any key with its owner's value
        got = answers(worker, pair.keys)
        wrong = {k: v for k, v in got.items() if v != (200, pair.expected[k])}
        assert wrong == {}, (worker.url, list(wrong.items())[:3])
    back = pair.after_kill
    line = (f"rebalance: B restarted on its old data dir after the kill: ready in {back.ready_s:.1f}s, every key "
            f"right in {back.serving_s:.1f}s, {back.restored} changelog records restored; partitions back "
            f"({len(b_owned)} on B, {len(a_owned)} on A); after {AFTER} more departures every feature-log record of "
            f"the {len(SOURCES)} logs and all {len(pair.keys)} keys read on either worker equal the replay")
    SUMMARY_LINES.append(line)
    print(line)


def test_a_restart_on_the_old_data_dir_restores_far_less_than_on_an_empty_one(pair: Pair) -> None:
    pair.b.stop()
    old = restart(pair.b, pair.keys, pair.expected)
    pair.b.stop()
    shutil.move(pair.b.work / "data", pair.b.work / "data-before")
    empty = restart(pair.b, pair.keys, pair.expected)
    a = pair.a.worker
    assert a is not None
    wait_answers(a, pair.keys, pair.expected, timeout=10)
    assert pair.after_kill is not None
    # The old data dir's RocksDB state is reused: only what it lacks is read from the changelog.
    assert empty.restored > 0 and old.restored * 10 <= empty.restored, (old, empty)
    assert pair.after_kill.restored < empty.restored, (pair.after_kill, empty)
    line = (f"rebalance: B restarted (SIGTERM) on its old data dir: ready {old.ready_s:.1f}s, serving "
            f"{old.serving_s:.1f}s, {old.restored} changelog records restored; on an empty data dir: ready "
            f"{empty.ready_s:.1f}s, serving {empty.serving_s:.1f}s, {empty.restored} restored; "
            f"values equal the replay on both workers")
    SUMMARY_LINES.append(line)
    print(line)


def test_totals_over_both_workers_equal_the_replay(pair: Pair) -> None:
    a, b = pair.a.worker, pair.b.worker
    assert a is not None and b is not None
    settings = a.settings
    _, replays = replayed_values(settings, pair.keys)
    totals = {source: total_counts((a, b), source) for source in SOURCES}
    assert totals == {source: vars(replays[source].counts) for source in SOURCES}
    sent = sum(pair.sent.values())
    assert sum(sum(totals[s].values()) for s in pair.sent) == sent
    # Outputs of a flush the kill cut short were sent again (at least once): the re-keyed logs hold copies,
    # judged duplicate or late there. Each event is still applied exactly once in its source and re-keyed log.
    copies = 0
    for derived, parent in REKEYED:
        applied = [r["event_id"] for r in by_position(settings, settings.topics.features(parent)).values()]
        applied_derived = [r["event_id"] for r in by_position(settings, settings.topics.features(derived)).values()]
        assert len(applied) == len(set(applied)) == totals[parent]["applied"], parent
        assert sorted(applied_derived) == sorted(applied), derived
        in_log = [json.loads(r.value)["event_id"] for r in consume_all(settings, settings.topics.events(derived))]
        assert set(in_log) == set(applied), derived
        copies += len(in_log) - len(applied)
    line = (f"rebalance: applied/late/duplicate/invalid over both workers equal the replay for {len(SOURCES)} logs "
            f"({sent} events sent: " + ", ".join(f"{s} {totals[s]['applied']}/{totals[s]['late']}/"
                                                 f"{totals[s]['duplicate']}/{totals[s]['invalid']}" for s in SOURCES)
            + f"); every event applied once in its log and its re-keyed log, which hold {copies} copies re-sent "
              f"after the kill")
    SUMMARY_LINES.append(line)
    print(line)

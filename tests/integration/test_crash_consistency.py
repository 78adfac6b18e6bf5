"""Crash consistency of the batched hot path, against the real broker.

- SIGKILL three times mid-stream, each restart on the same data directory:
  every event is applied exactly once (the counts equal the replay's
  decisions), the feature log holds every applied event, with the values the
  replay computes, and the re-keyed logs got every applied event.
- SIGTERM right after the worker reports everything applied: every output is
  in Kafka, and a restart applies nothing twice."""
from __future__ import annotations

import signal
import time
from dataclasses import replace
from pathlib import Path
from typing import Iterator

import pytest

from kafka_plumbing.settings import Settings
from kafka_plumbing.topics import ensure_topics_sync
from tables.definitions import load as load_definitions
from tests.conftest import SUMMARY_LINES
from tests.integration.conftest import consume_all, decode
from tests.integration.flights_stream import (REKEYED, SOURCES, Restartable, applied_total, assert_equals_replay,
                                              by_position, produce_flights, wait_all)

KILL_LIMIT = 6000  # enough that each kill lands mid-stream


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


def test_three_kills_mid_stream_lose_nothing_and_apply_nothing_twice(restartable: Restartable,
                                                                     tmp_path: Path) -> None:
    worker = restartable.start()
    sent = produce_flights(restartable.settings, KILL_LIMIT)
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
    letters = decode(consume_all(worker.settings, worker.settings.topics.dlq))
    late = [r for r in letters if r["reason"] == "late"]
    # No applied event is judged late on its re-delivery: one dead letter per late decision.
    assert len({(r["topic"], r["partition"], r["offset"]) for r in late}) == sum(
        worker.counts(s)["late"] for s in SOURCES)
    # At least once: a kill between a flush's outputs and its state sends those outputs again.
    served = [r for s in SOURCES for r in decode(consume_all(worker.settings, worker.settings.topics.features(s)))]
    copies = len(served) - len({(r["topic"], r["partition"], r["offset"]) for r in served})
    counts = {s: worker.counts(s) for s in SOURCES}
    SUMMARY_LINES.append(
        f"crash consistency: 3 SIGKILLs mid-stream; {sum(sent.values())} events in, applied "
        f"{sum(c['applied'] for c in counts.values())} over the 5 logs (re-keyed included), "
        f"{len(letters)} dead letters ({len(late)} late), 0 lost, 0 applied twice, 0 values differing from the replay; "
        f"feature-log records sent twice (at least once): {copies}"
    )


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

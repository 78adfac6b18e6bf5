"""Crash consistency of the batched hot path, against the real broker.

- SIGKILL three times at random moments while more than 50,000 real events
  stream in, with the model deployed; restarted twice on the same data
  directory and once on an empty one.  Under both guarantees every event is
  applied exactly once (the counts equal the replay's decisions), the
  feature log holds every applied event with the values the replay
  computes, and the re-keyed logs got every applied event.  Under
  exactly_once, read_committed readers also find exactly one feature-log
  record, one prediction and one forward per applied event, and exactly one
  dead letter per rejected one; under at_least_once the copies are counted.
- SIGTERM right after the worker reports everything applied: every output is
  in Kafka, and a restart applies nothing twice."""
from __future__ import annotations

import random
import shutil
import signal
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator

import pytest

from dev_tooling import flights_data
from kafka_plumbing.settings import Settings
from kafka_plumbing.topics import ensure_topics_sync
from tables.definitions import load as load_definitions
from tests.conftest import SUMMARY_LINES
from tests.integration.conftest import consume_all, decode
from tests.integration.flights_stream import (REKEYED, SOURCES, Restartable, applied_total, assert_equals_replay,
                                              by_position, count_outputs, deploy_model, positions, produce_flights,
                                              wait_all)

HISTORY_DEPARTURES = 2_000  # published first: the model is trained on them
STREAM_DEPARTURES = 24_500  # then these, with their arrivals and weather: more than 50,000 events
STREAM_RATE = 1_500  # events/s: the worker keeps up, so each kill lands within its slice
KILLS = 3
SEED = 20261204  # the kill moments: fractions of their slices


def isolated_by(isolated: Settings, tag: str, **changes: Any) -> Settings:
    """Each test its own topics and groups (the registry is shared)."""
    settings = replace(isolated, topic_prefix=f"{isolated.topic_prefix}-{tag}", app_id=f"{isolated.app_id}-{tag}",
                       **changes)
    ensure_topics_sync(settings, list(load_definitions(settings.features_module).sources))
    return settings


@pytest.fixture()
def restartable(isolated: Settings, tmp_path: Path) -> Iterator[Restartable]:
    worker = Restartable(isolated_by(isolated, "term"), tmp_path)
    try:
        yield worker
    finally:
        worker.stop()


@pytest.mark.parametrize("guarantee", ["exactly_once", "at_least_once"])
def test_three_kills_and_an_empty_data_dir_lose_nothing_and_apply_nothing_twice(
        isolated: Settings, tmp_path: Path, guarantee: str) -> None:
    settings = isolated_by(isolated, f"kill-{guarantee.split('_')[0]}", processing_guarantee=guarantee)
    restartable = Restartable(settings, tmp_path)
    try:
        worker = restartable.start()
        history = produce_flights(settings, HISTORY_DEPARTURES)
        wait_all(worker, history)
        version = deploy_model(worker)
        unscored = set(positions(decode(consume_all(settings, settings.topics.features("departures")))))

        # The stream in four slices, each published at a pace while the worker
        # takes it; a kill lands at a random moment within each of the first three
        # (the worker has not taken the whole slice yet), the fourth follows the
        # last restart.
        rng = random.Random(SEED)
        moments = [rng.uniform(0.2, 0.7) for _ in range(KILLS)]
        per_slice = STREAM_DEPARTURES // (KILLS + 1)
        sent = dict(history)
        for k in range(KILLS + 1):
            skip = HISTORY_DEPARTURES + k * per_slice
            slice_events = flights_data.load_events(limit=per_slice, skip=skip, progress=False)
            goal = len(slice_events["departures"]) + len(slice_events["arrivals"])
            base = applied_total(worker)
            published: dict[str, int] = {}
            stream = threading.Thread(target=lambda: published.update(
                produce_flights(settings, per_slice, skip=skip, rate=STREAM_RATE)))
            stream.start()
            if k < KILLS:
                deadline = time.monotonic() + 300
                while applied_total(worker) - base < goal * moments[k]:
                    assert time.monotonic() < deadline, f"stuck at {applied_total(worker)}"
                    time.sleep(0.05)
                at_kill, publishing = applied_total(worker), stream.is_alive()
                restartable.signal(signal.SIGKILL)
                assert publishing or at_kill - base < goal, "the kill should land mid-stream"
            stream.join()
            for source, n in published.items():
                sent[source] += n
            if k < KILLS:
                if k == KILLS - 1:
                    shutil.rmtree(tmp_path / "data")  # the last restart recovers everything from the changelogs
                worker = restartable.start()
        assert sum(sent.values()) - sum(history.values()) > 50_000
        wait_all(worker, sent)

        for source in SOURCES:
            assert_equals_replay(worker, source, tmp_path)
        outputs = count_outputs(worker, predictions=True)
        scored = set(positions(decode(consume_all(settings, settings.topics.predictions))))
        served = set(positions(decode(consume_all(settings, settings.topics.features("departures")))))
        assert scored == served - unscored, "a prediction per departure applied since the deploy"
        if guarantee == "exactly_once":
            assert set(outputs.copies.values()) == {0}, outputs.copies
        applied = sum(worker.counts(s)["applied"] for s in SOURCES)
        SUMMARY_LINES.append(
            f"crash consistency, {guarantee}: 3 SIGKILLs at {', '.join(f'{m:.0%}' for m in moments)} of slices 1-3 of 4 "
            f"(the last restart on an empty data dir), model v{version} deployed; {sum(sent.values())} events in, "
            f"applied {applied} over the 5 logs (re-keyed included); 0 lost, 0 applied twice, 0 values differing "
            f"from the replay; {outputs.line()}"
        )
    finally:
        if restartable.worker is not None:
            restartable.stop()


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
    outputs = count_outputs(worker)
    assert set(outputs.copies.values()) == {0}, outputs.copies
    SUMMARY_LINES.append(f"SIGTERM after everything applied, then a restart: {sum(sent.values())} events in; "
                         f"every output in Kafka; {outputs.line()}")

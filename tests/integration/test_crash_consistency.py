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
STREAM_RATE = 1_500  # events/s: the stream is still arriving at each kill
SEED = 20261204


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
        before = applied_total(worker)
        unscored = set(positions(decode(consume_all(settings, settings.topics.features("departures")))))

        streamed: dict[str, int] = {}
        stream = threading.Thread(target=lambda: streamed.update(produce_flights(
            settings, STREAM_DEPARTURES, skip=HISTORY_DEPARTURES, rate=STREAM_RATE)))
        stream.start()
        rng = random.Random(SEED)
        moments = [rng.uniform(0.1, 0.3), rng.uniform(0.35, 0.55), rng.uniform(0.6, 0.8)]
        expected = 2 * STREAM_DEPARTURES  # departures and arrivals, about: the kills fall on fractions of it
        for i, fraction in enumerate(moments):
            deadline = time.monotonic() + 300
            while applied_total(worker) - before < expected * fraction:
                assert time.monotonic() < deadline, f"stuck at {applied_total(worker)}"
                time.sleep(0.05)
            assert stream.is_alive() or applied_total(worker) - before < expected * 0.95, "the kill should land mid-stream"
            restartable.signal(signal.SIGKILL)
            if i == len(moments) - 1:
                shutil.rmtree(tmp_path / "data")  # the last restart recovers everything from the changelogs
            worker = restartable.start()
        stream.join()
        sent = {source: history[source] + streamed[source] for source in history}
        assert sum(streamed.values()) > 50_000
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
            f"crash consistency, {guarantee}: 3 SIGKILLs at {', '.join(f'{m:.0%}' for m in moments)} of the stream "
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

"""Cross-source model inputs end to end: ``flight_delay_xs`` reads the origin's
weather and the carrier's arrivals as of each departure.  More than 20,000
real events across the three logs, out of order, with late copies, a weather
partition idle for half a day (bridged by watermark markers) and markers at
the end: every prediction's inputs equal the training set's row for the same
event, bit for bit, and none was scored before its inputs were final."""
from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from dataclasses import replace
from typing import Any, Iterator

import pytest

from app.client.publish import watermark
from dev_tooling import flights_data
from dev_tooling.flights_data import event_time_ms
from kafka_plumbing.producer import produce
from kafka_plumbing.settings import Settings
from kafka_plumbing.topics import ensure_topics_sync
from models.training_set import model_rows
from tables.definitions import Definitions, load as load_definitions
from tables.model_spec import model_specs
from tables.partitioning import key_partition
from tests.conftest import SUMMARY_LINES
from tests.integration.conftest import Worker, consume_all, decode, running_worker
from tests.integration.flights_stream import deploy_model
from tests.integration.noise import late_copies

MODEL = "flight_delay_xs"
TRAIN_DEPARTURES = 1_500
MAIN_DEPARTURES = 10_000
CHUNKS = 12
SHUFFLE = 40  # events swapped within this many positions: out of order by up to ~30 min of event time
IDLE_ORIGIN = "EWR"
HOUR = 3_600_000


@pytest.fixture(scope="module")
def xs_worker(isolated: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    # A long maximum wait: only the markers can release the last departures in time.
    settings = replace(isolated, xsource_max_wait_s=600.0)
    ensure_topics_sync(settings, list(load_definitions(settings.features_module).sources))
    yield from running_worker(settings, tmp_path_factory.mktemp("xs"))


def publish(settings: Settings, definitions: Definitions, events: list[tuple[str, dict]]) -> None:
    asyncio.run(produce(settings, definitions.key_fields(), iter(events), len(events), progress=False,
                        headers=definitions.schema_headers()))


def noisy_stream(seed: int, partitions: int) -> tuple[list[list[tuple[str, dict]]], int, int]:
    """The main slice in chunks: locally shuffled, with late copies, and no weather from the
    idle origin's partition for 12 hours; (chunks, events, late copies)."""
    rng = random.Random(seed)
    by_source = flights_data.load_events(limit=MAIN_DEPARTURES, skip=TRAIN_DEPARTURES, progress=False)
    stream = list(flights_data.iter_interleaved(by_source))
    start = event_time_ms(stream[0][1])
    idle = key_partition(IDLE_ORIGIN, partitions)
    gap = (start + 48 * HOUR, start + 60 * HOUR)
    stream = [(s, e) for s, e in stream if not (s == "weather" and key_partition(e["origin"], partitions) == idle
                                                 and gap[0] <= event_time_ms(e) < gap[1])]
    for i in range(0, len(stream) - SHUFFLE, SHUFFLE):
        window = stream[i:i + SHUFFLE]
        rng.shuffle(window)
        stream[i:i + SHUFFLE] = window
    late = 0
    for i in sorted(rng.sample(range(1000, len(stream)), 60), reverse=True):
        source, event = stream[i]
        if source in ("weather", "arrivals"):
            copies = late_copies(event, 1, 3 * HOUR)
            stream[i + 1:i + 1] = [(source, c) for c in copies]
            late += len(copies)
    size = len(stream) // CHUNKS + 1
    return [stream[i:i + size] for i in range(0, len(stream), size)], len(stream), late


def wait_predictions(worker: Worker, n: int, stalled_s: float = 60) -> list[dict[str, Any]]:
    """Until ``n`` predictions of the model, failing once none came for ``stalled_s``."""
    got: list[dict[str, Any]] = []
    last_change = time.monotonic()
    while time.monotonic() - last_change < stalled_s:
        now = [p for p in decode(consume_all(worker.settings, worker.settings.topics.predictions))
               if p["model"] == MODEL]
        if len(now) >= n:
            return now
        if len(now) > len(got):
            got, last_change = now, time.monotonic()
        time.sleep(2)
    dlq = decode(consume_all(worker.settings, worker.settings.topics.dlq))
    reasons = Counter(d["reason"] for d in dlq)
    sample = next((d["detail"] for d in dlq if d["reason"] != "late"), None)
    raise AssertionError(f"{len(got)} of {n} {MODEL} predictions, dead letters {dict(reasons)} ({sample}); "
                         f"worker log {worker.handle.log_path}")


def released(worker: Worker) -> dict[str, int]:
    """The worker's /metrics count of events released from the hold, by outcome."""
    from urllib.request import urlopen

    from prometheus_client.parser import text_string_to_metric_families

    with urlopen(worker.url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    return {sample.labels["outcome"]: int(sample.value) for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == "featurestream_cross_source_released_total" and sample.value}


def test_served_cross_source_inputs_equal_the_training_set(xs_worker: Worker) -> None:
    settings = xs_worker.settings
    definitions = load_definitions(settings.features_module)
    first = flights_data.load_events(limit=TRAIN_DEPARTURES, progress=False)
    publish(settings, definitions, list(flights_data.iter_interleaved(first)))
    xs_worker.wait_for("departures", len(first["departures"]))
    deploy_model(xs_worker, MODEL)
    counts = xs_worker.counts("departures")
    before, before_total = counts["applied"], sum(counts.values())

    chunks, sent, late = noisy_stream(13, settings.partitions)
    assert sent - late > 20_000
    started = time.monotonic()
    newest = 0
    idle = key_partition(IDLE_ORIGIN, settings.partitions)
    taken = before_total
    for chunk in chunks:
        # Departures run ahead of the other logs by up to a chunk (about a day): they are
        # taken before the weather and arrivals of their time exist, and must wait for them.
        departures = [(s, e) for s, e in chunk if s == "departures"]
        publish(settings, definitions, departures)
        taken += len(departures)
        xs_worker.wait_for("departures", taken)
        publish(settings, definitions, [(s, e) for s, e in chunk if s != "departures"])
        newest = max([newest, *(event_time_ms(e) for _, e in chunk)])
        # The publisher knows its stream is out of order by less than an hour: it promises so
        # for the weather partition it has nothing for.
        asyncio.run(watermark(definitions, settings, "weather", newest - HOUR, [idle]))
    for source in ("weather", "arrivals"):  # the end of the stream: nothing older will follow
        asyncio.run(watermark(definitions, settings, source, newest + HOUR))

    applied = xs_worker.wait_for("departures", taken)["applied"] - before
    served = wait_predictions(xs_worker, applied)
    seconds = time.monotonic() - started

    rows = {(r["partition"], r["offset"]): r
            for r in model_rows(settings, definitions, model_specs(definitions)[MODEL])}
    columns = list(served[0]["features"])
    assert any(c.startswith("origin_weather.") for c in columns) and any(c.startswith("carrier_arrivals.") for c in columns)
    differences = [
        (p["partition"], p["offset"]) for p in served
        if json.dumps(p["features"], sort_keys=True)
        != json.dumps({c: rows[(p["partition"], p["offset"])][c] for c in columns}, sort_keys=True)
    ]
    incomplete = sum(not p["complete"] for p in served)
    assert len(served) == applied
    assert incomplete == 0, f"{incomplete} predictions waited out"
    assert differences == [], f"{len(differences)} of {len(served)} differ, first {differences[:5]}"
    assert released(xs_worker) == {"complete": len(served)}
    dlq = decode(consume_all(settings, settings.topics.dlq))
    assert sum(d["reason"] == "late" for d in dlq) >= late  # the late copies were refused, online and offline
    held = sorted(p["held_ms"] for p in served)
    SUMMARY_LINES.append(
        f"cross-source inputs: {len(served)} predictions of {MODEL} over {sent} events ({late} late copies), "
        f"0 differences from the training set, 0 waited out; held median {held[len(held) // 2]:.0f} ms, "
        f"max {held[-1]:.0f} ms; {seconds:.0f} s from first publish"
    )

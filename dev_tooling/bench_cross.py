"""The bench's ``cross_source`` stage: what holding departures for other logs costs.

The same slice of real flights (departures with their arrivals and weather,
in event-time order) goes into two workers on fresh topics: one scoring
``flight_delay`` (inputs from the departures' own log only: nothing held),
one scoring ``flight_delay_xs`` (the origin's weather and the carrier's
arrivals too: each departure held until those logs' watermarks pass its
time, docs/models.md#cross-source-inputs).  Watermark markers close every
log after the slice, as a publisher that has sent everything would.

Measured per worker: departures scored per second (from the start of
publishing to the broker time of the last prediction), and the time each
prediction was held (``held_ms``) with how many waited out the maximum.
"""
from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

from dev_tooling import flights_data
from dev_tooling.bench_worker import BenchWorker, percentiles
from kafka_plumbing.log_reader import read_all
from kafka_plumbing.producer import produce, produce_markers
from kafka_plumbing.settings import Settings
from models.registry import Registry
from tables.definitions import Definitions
from tables.log_record import watermark_headers
from tables.validation import parse_time_ms

HELD_MODEL, PLAIN_MODEL = "flight_delay_xs", "flight_delay"
HOUR_MS = 3_600_000


@dataclass
class CrossRun:
    departures: int
    seconds: float
    scored_per_s: float
    held: dict[str, float]  # p50_ms, p99_ms, max_ms of held_ms
    waited_out: int  # predictions marked incomplete (the maximum wait passed)


def slice_of(departures: int) -> dict[str, list[dict[str, Any]]]:
    return flights_data.load_events(limit=departures, progress=False)


def run_cross(settings: Settings, definitions: Definitions, events: dict[str, list[dict[str, Any]]],
              model: str) -> CrossRun | None:
    """None when the registry has no version of ``model`` (train one: ``--train``)."""
    if not Registry(settings.registry_dir).list_models().get(model):
        return None
    worker = BenchWorker(settings, definitions.key_fields())
    worker.start()
    try:
        worker.deploy_latest(model)
        stream = flights_data.interleave(events)
        newest = max(parse_time_ms(e["event_time"]) for _, e in stream)
        started = time.time()
        asyncio.run(produce(settings, definitions.key_fields(), stream, len(stream), progress=False))
        for source in events:  # as app.client's watermark(): every partition of each published log
            asyncio.run(produce_markers(settings, settings.topics.events(source), watermark_headers(newest + HOUR_MS),
                                        range(settings.partitions)))
        predictions = _predictions(settings, len(events["departures"]))
        last_ms = max(p.timestamp for p in predictions)
        decoded = [json.loads(p.value) for p in predictions]
        seconds = last_ms / 1000 - started
        return CrossRun(len(decoded), seconds, len(decoded) / seconds,
                        percentiles([float(d.get("held_ms", 0.0)) for d in decoded]),
                        sum(1 for d in decoded if not d.get("complete", True)))
    finally:
        worker.stop()


def _predictions(settings: Settings, expected: int, timeout_s: float = 180.0) -> list[Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        found = asyncio.run(read_all(settings, settings.topics.predictions, 10))
        if len(found) >= expected:
            return found
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(found)} of {expected} departures scored after {timeout_s:.0f}s")
        time.sleep(0.5)

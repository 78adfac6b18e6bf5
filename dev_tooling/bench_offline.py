"""The offline engine in the bench, over the same topic the worker ingested.

- replay: ``tables.replay.replay`` of the departures log read through
  ``kafka_plumbing.log_reader`` (Kafka read included), every view of the source;
- training set: ``models.training_set.point_in_time`` of one label per
  departure (origin, time, delayed > 15 min) joined to ``origin_traffic``
  (its replay of the log included).
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import pandas as pd

from dev_tooling.bench_baselines import Rate
from kafka_plumbing import log_reader
from kafka_plumbing.settings import Settings
from models.training_set import point_in_time
from tables.definitions import Definitions
from tables.log_record import from_messages
from tables.replay import ReplayCounts, replay

SOURCE = "departures"
VIEW = "origin_traffic"


@dataclass
class Offline:
    replay: Rate
    training_set: Rate


def replay_rate(settings: Settings, definitions: Definitions) -> Rate:
    topic = settings.topics.events(SOURCE)
    started = time.perf_counter()
    bounds = asyncio.run(log_reader.topic_size(settings, topic))
    counts = ReplayCounts()
    for _ in replay(definitions.source(SOURCE), definitions.views_of(SOURCE),
                    from_messages(log_reader.read_topic(settings, topic, bounds), settings.partitions), settings.max_payload_bytes, counts):
        pass
    records = counts.applied + counts.late + counts.duplicate + counts.invalid
    return Rate(records, time.perf_counter() - started)


def training_set_rate(settings: Settings, definitions: Definitions, events: list[dict]) -> Rate:
    labels = pd.DataFrame({
        "origin": [e["origin"] for e in events],
        "time": [e["event_time"] for e in events],
        "label": [int((e.get("dep_delay") or 0) > 15) for e in events],
    })
    started = time.perf_counter()
    frame = point_in_time(settings, definitions, labels, [VIEW])
    return Rate(len(frame), time.perf_counter() - started)


def run_offline(settings: Settings, definitions: Definitions, events: list[dict]) -> Offline:
    return Offline(replay_rate(settings, definitions), training_set_rate(settings, definitions, events))

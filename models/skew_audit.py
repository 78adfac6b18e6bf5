"""One skew audit of a source: the newest feature-log records (and the newest
predictions of its events) are recomputed by the offline engine
(``tables.replay``) from the source's log, and compared (``models.skew``).

The sample is the last ``sample`` records of each partition of the feature
log and of ``fs.predictions``.  A partition's state depends on its whole
history (clocks, duplicate ids, lateness), so each sampled partition of the
source log is replayed from its first offset to the newest sampled
position: the audit costs what ``featurestream replay`` costs for those
partitions, read once however many records are sampled in them."""
from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import msgspec
from aiokafka import ConsumerRecord

from kafka_plumbing import log_reader
from kafka_plumbing.settings import Settings
from models.skew import FEATURE_LOG, PREDICTION, SkewReport
from tables.definitions import Definitions
from tables.feature_log import ServedRecord
from tables.log_record import from_messages
from tables.replay import replay

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sampled:
    record: str  # FEATURE_LOG or PREDICTION
    event_id: Any
    partition: int  # of the source log
    offset: int
    served: dict[tuple[str, str], Any]  # (view ref, feature) -> value


def tail(settings: Settings, topic: str, sample: int) -> Iterator[ConsumerRecord]:
    """The last ``sample`` records of every partition of ``topic`` (none if it does not exist)."""
    try:
        sizes = asyncio.run(log_reader.topic_size(settings, topic))
    except LookupError:
        return iter(())
    bounds = {p: (max(first, end - sample), end) for p, (first, end) in sizes.items() if end > first}
    return log_reader.read_topic(settings, topic, bounds)


def sampled_feature_log(settings: Settings, source: str, sample: int) -> list[Sampled]:
    out: dict[tuple[int, int], Sampled] = {}  # by position: a record sent twice (at least once) is checked once
    for message in tail(settings, settings.topics.features(source), sample):
        served = ServedRecord.decode(message.value)
        values = {(view, name): value for view, features in served.features.items()
                  for name, value in features.items()}
        out[(served.partition, served.offset)] = Sampled(FEATURE_LOG, served.event_id, served.partition,
                                                         served.offset, values)
    return list(out.values())


class ScoredInputs(msgspec.Struct, kw_only=True):
    """What the audit reads of a ``fs.predictions`` record (``agents.scoring.PredictionRecord``)."""

    source: str
    partition: int | None
    offset: int | None
    event_id: Any
    model: str
    model_version: int
    role: str
    features: dict[str, Any] = {}  # ``<view ref>.<feature>`` and event fields


def sampled_predictions(settings: Settings, definitions: Definitions, sample: int) -> dict[str, list[Sampled]]:
    """Source -> the view inputs of its sampled predictions (primary and shadow) that are its own views'
    (a view of another source is read at scoring time, not recomputed from this log)."""
    refs = {ref: view.source.name for ref, view in definitions.views.items()}
    out: dict[str, list[Sampled]] = {}
    seen: set[tuple[str, int, int, str, int, str]] = set()  # a prediction sent twice is checked once
    topics = settings.topics
    for topic in (topics.predictions, topics.shadow_predictions):
        for message in tail(settings, topic, sample):
            try:  # json, not msgspec, reads the NaN a feature can be; then typed
                scored = msgspec.convert(json.loads(message.value), type=ScoredInputs)
            except (ValueError, msgspec.ValidationError):
                log.warning("%s:%s:%s is not a prediction record: not audited", topic, message.partition,
                            message.offset)
                continue
            if scored.source not in definitions.sources or scored.partition is None or scored.offset is None:
                continue  # POST /score: no log position to recompute
            identity = (scored.source, scored.partition, scored.offset, scored.model, scored.model_version,
                        scored.role)
            if identity in seen:
                continue
            seen.add(identity)
            served = {}
            for column, value in scored.features.items():
                view, _, feature = column.rpartition(".")
                if refs.get(view) == scored.source:
                    served[(view, feature)] = value
            out.setdefault(scored.source, []).append(
                Sampled(PREDICTION, scored.event_id, scored.partition, scored.offset, served))
    return out


def audit_source(settings: Settings, definitions: Definitions, source: str, samples: list[Sampled]) -> SkewReport:
    """Replay the sampled partitions of ``source``'s log up to the newest sampled position and compare."""
    report = SkewReport(source)
    if not samples:
        return report
    newest: dict[int, int] = {}
    for s in samples:
        newest[s.partition] = max(newest.get(s.partition, -1), s.offset)
    topic = settings.topics.events(source)
    sizes = asyncio.run(log_reader.topic_size(settings, topic))
    bounds = {p: (sizes[p][0], last + 1) for p, last in newest.items() if p in sizes}
    wanted = {(s.partition, s.offset) for s in samples}
    rows: dict[tuple[int, int], dict[str, Any]] = {}
    records = from_messages(log_reader.read_topic(settings, topic, bounds), settings.partitions)
    for row in replay(definitions.source(source), definitions.views_of(source), records,
                      settings.max_payload_bytes):
        position = (row["partition"], row["offset"])
        if position in wanted:
            rows[position] = row
    for s in sorted(samples, key=lambda s: (s.partition, s.offset, s.record)):
        report.compare(s.record, s.event_id, s.partition, s.offset, s.served, rows.get((s.partition, s.offset)))
    return report


def audit(settings: Settings, definitions: Definitions, sample: int, sources: list[str] | None = None,
          predictions: bool = True) -> list[SkewReport]:
    names = sources or [name for name in definitions.sources if definitions.views_of(name)]
    scored = sampled_predictions(settings, definitions, sample) if predictions else {}
    return [audit_source(settings, definitions, name,
                         sampled_feature_log(settings, name, sample) + scored.get(name, []))
            for name in names]


__all__ = ["FEATURE_LOG", "PREDICTION", "Sampled", "audit", "audit_source"]

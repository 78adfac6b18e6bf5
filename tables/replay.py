"""The offline engine: a source's log, in partition order, through the same
validation and processor the online agent uses, yielding for every applied
event the feature values the online path served for it.

Pure: it takes log records (from Kafka or a file, see ``app.log_reader``) and
plain dicts as stores.  Partitions are independent (state and clocks are per
partition), so each is replayed from its first offset to its last.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Iterator

from agents.validation import Valid, validate
from tables.dsl import FeatureView, Source
from tables.processor import APPLIED, SourceProcessor, Stores


LANE_HEADER = "fs-lane"


def lane_of(headers: Any) -> int | None:
    """The upstream partition a re-keyed record came from (None on a source's own topic)."""
    items = headers.items() if isinstance(headers, dict) else (headers or ())
    for key, value in items:
        if key == LANE_HEADER:
            return int(value)
    return None


@dataclass(frozen=True)
class LogRecord:
    partition: int
    offset: int
    value: bytes | None
    lane: int | None = None  # upstream partition of a re-keyed record


@dataclass
class ReplayCounts:
    applied: int = 0
    late: int = 0
    duplicate: int = 0
    invalid: int = 0


def feature_columns(views: list[FeatureView]) -> list[str]:
    """``<view>.<feature>``: one column per feature, stable order."""
    return [f"{v.name}.{f.name}" for v in views for f in v.features]


def replay(
    source: Source,
    views: list[FeatureView],
    records: Iterable[LogRecord],
    max_payload_bytes: int,
    counts: ReplayCounts | None = None,
    include_record: bool = False,
) -> Iterator[dict[str, Any]]:
    """One row per applied event: identity, position, then every feature
    (and, with ``include_record``, the event's own fields under ``record``)."""
    views = [v for v in views if v.source.name == source.name]
    processor = SourceProcessor(source, views)
    stores = Stores.in_memory(views)
    counts = counts if counts is not None else ReplayCounts()
    for record in records:
        checked = validate(source, record.value, max_payload_bytes)
        if not isinstance(checked, Valid):
            processor.reject(stores, record.partition)
            counts.invalid += 1
            continue
        outcome = processor.process(stores, record.partition, checked.record, checked.time_ms, record.lane)
        setattr(counts, outcome.status, getattr(counts, outcome.status) + 1)
        if outcome.status != APPLIED:
            continue
        row: dict[str, Any] = {
            "event_id": checked.record[source.id_field],
            "entity": str(checked.record[source.key]),
            "event_time_ms": checked.time_ms,
            "partition": record.partition,
            "offset": record.offset,
        }
        for view in views:
            values = outcome.features[view.name]
            for feat in view.features:
                row[f"{view.name}.{feat.name}"] = values[feat.name]
        if include_record:
            row["record"] = checked.record
        yield row

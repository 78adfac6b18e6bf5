"""The offline engine: a source's log, in partition order, through the same
validation and processor the online agent uses, yielding for every applied
event the feature values the online path served for it.

Pure: it takes log records (from Kafka or a file, see ``kafka_plumbing.log_reader``) and
plain dicts as stores.  Partitions are independent (state and clocks are per
partition), so each is replayed from its first offset to its last.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Iterator, NamedTuple

from tables.log_record import LogRecord
from tables.validation import Rejection, Valid, validate
from tables.dsl import FeatureView, Source
from tables.processor import APPLIED, INVALID, Outcome, SourceProcessor, Stores


@dataclass
class ReplayCounts:
    applied: int = 0
    late: int = 0
    duplicate: int = 0
    invalid: int = 0


def feature_columns(views: list[FeatureView]) -> list[str]:
    """``<view>.<feature>``: one column per feature, stable order."""
    return [f"{v.ref}.{f.name}" for v in views for f in v.features]


class Taken(NamedTuple):
    checked: Valid | None  # the event, when it is one
    outcome: Outcome | None  # None for a marker
    rejection: Rejection | None = None  # why it is invalid


def take(processor: SourceProcessor, stores: Stores, record: LogRecord, max_payload_bytes: int) -> Taken:
    """One record of a partition's log, exactly as the online agent takes it
    (it calls this too): a marker only moves the offset on (no outcome), an
    invalid record is counted (outcome ``invalid``, its rejection), an event
    is decided and applied."""
    if record.control:
        processor.touch(stores, record.partition, record.offset)
        return Taken(None, None)
    checked = validate(processor.source, record.value, max_payload_bytes, record.lane, record.timestamp_ms,
                       record.placed, record.schema_version)
    if not isinstance(checked, Valid):
        processor.reject(stores, record.partition, record.offset)
        return Taken(None, Outcome(INVALID, 0), checked)
    return Taken(checked, processor.process(
        stores, record.partition, checked.record, checked.time_ms, record.lane, record.offset
    ))


def replay(
    source: Source,
    views: list[FeatureView],
    records: Iterable[LogRecord],
    max_payload_bytes: int,
    counts: ReplayCounts | None = None,
    include_record: bool = False,
    include_value: bool = False,
    stores: Stores | None = None,
) -> Iterator[dict[str, Any]]:
    """One row per applied event: identity, position, then every feature
    (with ``include_record``, the event's own fields under ``record``; with
    ``include_value``, its original bytes under ``value`` and the schema version
    they were written in under ``schema_version``).  ``stores``: where
    the state goes (in memory by default); pass them to read the state the
    log leaves, as ``SourceProcessor.read`` serves it."""
    views = [v for v in views if v.source.name == source.name]
    processor = SourceProcessor(source, views)
    stores = Stores.in_memory(views) if stores is None else stores
    counts = counts if counts is not None else ReplayCounts()
    for record in records:
        checked, outcome, _ = take(processor, stores, record, max_payload_bytes)
        if outcome is None:
            continue  # a marker, not an event
        setattr(counts, outcome.status, getattr(counts, outcome.status) + 1)
        if checked is None or outcome.status != APPLIED:
            continue
        row: dict[str, Any] = {
            "event_id": checked.record[source.id_field],
            "entity": str(checked.record[source.key]),
            "event_time_ms": checked.time_ms,
            "partition": record.partition,
            "offset": record.offset,
        }
        for view in views:
            values = outcome.features[view.ref]
            for feat in view.features:
                row[f"{view.ref}.{feat.name}"] = values[feat.name]
        if include_record:
            row["record"] = checked.record
        if include_value:
            row["value"] = record.value
            row["schema_version"] = record.schema_version  # the bytes are read in this version
        yield row

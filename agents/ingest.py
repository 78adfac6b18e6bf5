"""The ingest agent: one per source.  Parse, look up, apply, emit.

For each record of ``fs.events.<source>``, in partition order:

1. validate it (``tables.validation``); a rejection goes to ``fs.dlq`` with
   the original bytes, topic, partition, offset and reason;
2. hand it to the shared ``SourceProcessor`` with the Faust tables as stores,
   which decides late / duplicate / applied and updates the view tables;
3. emit what was served for it to ``fs.features.<source>`` (the feature log
   the replay is compared against); late events also go to ``fs.dlq``;
4. forward applied events to ``fs.events.<source>.by_<entity>`` for views keyed
   by another entity: those logs are sources of their own, with the same agent.

Outputs use ``send_soon`` so the hot path never waits on the producer.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import faust
from faust.types import EventT

from tables import validation
from agents.backfill import Backfill
from agents.control_plane import ControlPlane
from agents.dead_letters import dead_letter
from agents.dead_letters import encode as encode_dead_letter
from agents.metrics import Metrics
from agents.scoring import Provenance, ScoringRuntime
from agents.source_runtime import SourceRuntime
from kafka_plumbing.catalogue import Topics
from kafka_plumbing.settings import Settings
from tables.definitions import Definitions
from tables.processor import APPLIED, LATE, Outcome, SourceProcessor, Stores
from tables.log_record import is_control, lane_headers, lane_of

log = logging.getLogger(__name__)


def _table(app: faust.App, topics: Topics, name: str, partitions: int, help_: str) -> faust.Table:
    # Keys are plain strings with the raw serializer, the same bytes the event
    # topic is keyed by, so table_route finds the owning worker.  Faust derives
    # a table's key serializer from key_type (json for str, which quotes keys)
    # and builds its changelog topic with it at registration: the changelog is
    # passed in, raw, or recovery cannot decode a single key and a worker with
    # an empty data dir never becomes ready; the store reads the serializer
    # attribute when first opened.
    changelog = app.topic(
        topics.changelog(app.conf.id, name), key_type=str, value_type=bytes, key_serializer="raw",
        value_serializer="raw", partitions=partitions, compacting=True, acks=False, internal=True,
    )
    table = app.Table(name, key_type=str, value_type=bytes, partitions=partitions, help=help_,
                      changelog_topic=changelog)
    table.key_serializer = "raw"
    return table


@dataclass(frozen=True)
class ServedRecord:
    """One record of the feature log: what was served for an applied event."""

    event_id: Any
    entity: str
    event_time_ms: int
    topic: str
    partition: int
    offset: int
    features: dict[str, dict[str, Any]]  # view ref -> values, before the event was applied
    versions: dict[str, int]  # view ref -> version

    def encode(self) -> bytes:
        # json, as the replay compares values: it keeps what msgspec would turn into null (inf, nan)
        return json.dumps(vars(self)).encode()


@dataclass(frozen=True)
class Outputs:
    """Where one source's agent writes."""

    dlq: faust.TopicT
    features: faust.TopicT
    forwards: dict[str, tuple[str, faust.TopicT]]  # re-keyed log -> (field it is keyed by, its topic)


@dataclass(frozen=True)
class Services:
    """What every source's agent shares in a worker."""

    settings: Settings
    metrics: Metrics
    plane: ControlPlane
    backfill: Backfill
    scoring: ScoringRuntime | None


def register_ingest(
    app: faust.App, settings: Settings, definitions: Definitions, metrics: Metrics,
    plane: ControlPlane, backfill: Backfill, scoring: ScoringRuntime | None = None,
) -> dict[str, SourceRuntime]:
    services = Services(settings, metrics, plane, backfill, scoring)
    dlq = app.topic(settings.topics.dlq, key_type=bytes, value_type=bytes, internal=False)
    runtimes: dict[str, SourceRuntime] = {}
    for source in definitions.sources.values():
        views = definitions.views_of(source.name)
        view_tables = {
            v.ref: _table(app, settings.topics, f"view.{v.state_key}", settings.partitions, f"{v.name} v{v.version}")
            for v in views
        }
        stores = Stores.encoded(
            views={v.state_key: view_tables[v.ref] for v in views},
            clocks=_table(app, settings.topics, f"clock.{source.name}", settings.partitions, "partition clocks"),
            seen=_table(app, settings.topics, f"seen.{source.name}", settings.partitions, "recent event ids"),
        )
        derived = definitions.derived_of(source.name)
        processor = SourceProcessor(source, views, tuple(d.name for d in derived))
        runtime = SourceRuntime(source, views, processor, stores, view_tables)
        runtimes[source.name] = runtime
        outputs = Outputs(
            dlq=dlq,
            features=app.topic(settings.topics.features(source.name), key_type=bytes, value_type=bytes),
            forwards={d.name: (d.key, app.topic(settings.topics.events(d.name), key_type=bytes, value_type=bytes))
                      for d in derived},
        )
        topic = app.topic(settings.topics.events(source.name), key_type=bytes, value_type=bytes)
        app.agent(topic, name=f"ingest.{source.name}")(SourceAgent(runtime, outputs, services).run)
    return runtimes


class SourceAgent:
    """One source's agent: parse, look up, apply, emit."""

    def __init__(self, runtime: SourceRuntime, outputs: Outputs, services: Services) -> None:
        self.runtime = runtime
        self.source = runtime.source
        self.outputs = outputs
        self.services = services
        self.versions = {v.ref: v.version for v in runtime.views}

    async def run(self, stream: faust.StreamT) -> None:
        await self.services.plane.loaded.wait()  # never score with a stale deployment
        async for event in stream.events():
            self.take(event)

    def take(self, event: EventT) -> None:
        runtime, metrics, message = self.runtime, self.services.metrics, event.message
        try:
            self.services.backfill.at_record(runtime, message.partition, message.offset)
            if is_control(message.headers):  # a backfill marker, not an event
                runtime.processor.touch(runtime.stores, message.partition, message.offset)
                return
            checked = validation.validate(self.source, message.value, self.services.settings.max_payload_bytes)
            if isinstance(checked, validation.Rejection):
                runtime.processor.reject(runtime.stores, message.partition, message.offset)
                metrics.events.labels(self.source.name, "invalid").inc()
                self.reject(event, checked.reason, checked.detail)
                return
            outcome = runtime.processor.process(
                runtime.stores, message.partition, checked.record, checked.time_ms, lane_of(message.headers),
                message.offset,
            )
        except Exception as exc:  # never let one record stop the worker
            log.exception("ingest %s failed at %s:%s", self.source.name, message.partition, message.offset)
            metrics.events.labels(self.source.name, "error").inc()
            self.reject(event, validation.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}")
            return
        metrics.events.labels(self.source.name, outcome.status).inc()
        if outcome.status == LATE:
            self.reject(event, validation.LATE, "older than the allowed lateness behind the newest event time seen")
        elif outcome.status == APPLIED:
            try:
                self.emit(event, checked.record, outcome)
            except Exception as exc:  # applied, but an output failed: say so, keep going
                log.exception("emitting %s %s:%s failed", self.source.name, message.partition, message.offset)
                self.reject(event, validation.INTERNAL_ERROR, f"outputs failed: {type(exc).__name__}: {exc}")

    def reject(self, event: EventT, reason: str, detail: str) -> None:
        message = event.message
        record = dead_letter(reason=reason, detail=detail, source=self.source.name, topic=message.topic,
                             partition=message.partition, offset=message.offset, timestamp_s=message.timestamp,
                             key=message.key, value=message.value)
        self.outputs.dlq.send_soon(key=message.key, value=encode_dead_letter(record))
        self.services.metrics.dlq.labels(self.source.name, reason).inc()

    def emit(self, event: EventT, record: dict[str, Any], outcome: Outcome) -> None:
        """Feature log, predictions, re-keyed forwards of one applied event."""
        message, source = event.message, self.source
        served = ServedRecord(
            event_id=record[source.id_field], entity=str(record[source.key]), event_time_ms=outcome.time_ms,
            topic=message.topic, partition=message.partition, offset=message.offset,
            features=outcome.features, versions=self.versions,
        )
        self.outputs.features.send_soon(key=message.key, value=served.encode())
        scoring = self.services.scoring
        if scoring is not None:
            provenance = Provenance(
                event_id=served.event_id, source=source.name, topic=message.topic,
                partition=message.partition, offset=message.offset,
                event_time_ms=outcome.time_ms, event_time=record[source.time_field],
            )
            for error in scoring.score_in_stream(source.name, record, outcome.features, provenance, message.key):
                self.reject(event, validation.SCORING_ERROR, error)
        # Views by other entities read the applied events re-keyed: the
        # original bytes, so their agent validates and decides the same way,
        # and the partition they came from, the lane they are ordered in.
        lane_header = lane_headers(message.partition)
        for derived in outcome.forwards:  # a log whose history is still being written gets nothing yet
            field, forward = self.outputs.forwards[derived]
            entity = record.get(field)
            if entity is not None:
                forward.send_soon(key=str(entity).encode(), value=message.value, headers=lane_header)

"""The ingest agent: one per source.  Parse, look up, apply, emit, in batches.

For each record of ``fs.events.<source>``, in partition order:

1. validate it (``tables.validation``); a rejection goes to ``fs.dlq`` with
   the original bytes, topic, partition, offset and reason;
2. hand it to the shared ``SourceProcessor`` with the partition's state in
   memory (``agents.source_state``), which decides late / duplicate /
   applied and updates the views;
3. emit what was served for it to ``fs.features.<source>`` (the feature log
   the replay is compared against); late events also go to ``fs.dlq``;
4. forward applied events to ``fs.events.<source>.by_<entity>`` for views keyed
   by another entity: those logs are sources of their own, with the same agent.

A batch (``FS_FLUSH_EVENTS`` events or ``FS_FLUSH_MS`` after its first) is
flushed in this order, and only then are its offsets committed:
its outputs are sent and acknowledged; each partition's changed state is
written once, as one record batch of the state changelog, then locally with
the changelog offset.  The records come from the worker's ingest loop
(``agents.ingest_loop``).  A kill at any moment re-delivers what was not
committed: records the flushed state already holds (offset up to its clock's)
are skipped, so no event is lost or applied twice; outputs of a flush cut
short between its outputs and its state are sent again (at least once, with
the same values and offsets).  Under exactly once the outputs, the state and
the offsets are one Kafka transaction (``agents.flush_writer``).
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import faust
from aiokafka import ConsumerRecord, TopicPartition

from tables import validation
from agents.backfill import Backfill
from agents.control_plane import ControlPlane
from agents.cross_hold import Hold
from agents.dead_letters import dead_letter
from agents.flush_writer import TRANSACTION_TIMEOUT_MS
from agents.dead_letters import encode as encode_dead_letter
from agents.ingest_loop import AgentClients, IngestLoop
from agents.metrics import Metrics
from agents.outbox import Outbox
from agents.placement import Placement
from agents.scoring import Provenance, ScoreRequest, ScoringRuntime
from agents.source_runtime import SourceRuntime
from agents.source_state import SourceState
from kafka_plumbing.partition_store import PartitionStore
from kafka_plumbing.settings import Settings
from tables.definitions import Definitions
from tables.feature_log import ServedRecord
from tables.processor import APPLIED, LATE, Outcome
from tables.log_record import LogRecord, lane_headers, schema_of
from tables.replay import take

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class Outputs:
    """Where one source's agent writes (topic names)."""

    dlq: str
    features: str
    forwards: dict[str, tuple[str, str]]  # re-keyed log -> (field it is keyed by, its topic)


@dataclass(frozen=True)
class Services:
    """What every source's agent shares in a worker."""

    settings: Settings
    metrics: Metrics
    plane: ControlPlane
    backfill: Backfill
    scoring: ScoringRuntime | None


def register_ingest(
    app: faust.App, settings: Settings, definitions: Definitions, store: PartitionStore, metrics: Metrics,
    plane: ControlPlane, backfill: Backfill, placement: Placement, scoring: ScoringRuntime | None = None,
) -> dict[str, SourceRuntime]:
    services = Services(settings, metrics, plane, backfill, scoring)
    runtimes: dict[str, SourceRuntime] = {}
    agents: list[SourceAgent] = []
    for source in definitions.sources.values():
        views = definitions.views_of(source.name)
        topic_name = settings.topics.events(source.name)
        state = SourceState(store, source.name, views, settings.topics.state_changelog(settings.app_id, source.name),
                            settle_s=TRANSACTION_TIMEOUT_MS / 1000 + 5 if settings.exactly_once else 0.0)
        derived = definitions.derived_of(source.name)
        processor = definitions.processor(source.name)
        runtime = SourceRuntime(source, views, processor, state, topic_name)
        runtimes[source.name] = runtime
        outputs = Outputs(
            dlq=settings.topics.dlq,
            features=settings.topics.features(source.name),
            forwards={d.name: (d.key, settings.topics.events(d.name)) for d in derived},
        )
        agents.append(SourceAgent(runtime, outputs, services))
    loop = IngestLoop(settings, agents, placement)
    metrics.watch(runtimes, loop, lambda: plane.models, settings.metrics_interval_s)  # metrics: read at scrape time

    @app.task
    async def ingest() -> None:
        await loop.run(plane.loaded)

    return runtimes


@dataclass
class Batch:
    """Records taken and not yet flushed: their outputs and the partitions they changed."""

    records: list[ConsumerRecord] = field(default_factory=list)
    outbox: Outbox = field(default_factory=Outbox)
    to_score: list[tuple[ConsumerRecord, ScoreRequest]] = field(default_factory=list)  # applied, scored at the flush
    partitions: set[int] = field(default_factory=set)  # whose state changed
    through: dict[int, int] = field(default_factory=dict)  # partition -> last offset taken
    started: float = 0.0


class SourceAgent:
    """One source's agent: parse, look up, apply, emit; flushed in batches.

    The worker's ingest loop (``agents.ingest_loop``) hands it the records of
    its source's log, in partition order, and tells it of rebalances."""

    def __init__(self, runtime: SourceRuntime, outputs: Outputs, services: Services) -> None:
        self.runtime = runtime
        self.source = runtime.source
        self.state = runtime.state
        self.outputs = outputs
        self.services = services
        self.versions = {v.ref: v.version for v in runtime.views}
        self.batch = Batch()
        self.flush_lock = asyncio.Lock()
        self.kafka: AgentClients | None = None
        self.flushing: asyncio.Future | None = None
        self.warned: set[int] = set()
        scoring = services.scoring
        inputs = scoring.input_views(self.source.name) if scoring is not None else []
        self.hold: Hold | None = (Hold(scoring.replica, inputs, services.settings.xsource_max_wait_s)
                                  if scoring is not None and scoring.replica is not None and inputs else None)

    @property
    def topic(self) -> str:
        return self.runtime.topic

    @property
    def state_topic(self) -> str:
        return self.state.changelog

    def owns(self, partition: int) -> bool:
        return self.state.owns(partition)

    def due(self, flush_events: int, flush_s: float) -> bool:
        batch = self.batch
        return bool(batch.records) and (len(batch.records) >= flush_events
                                        or time.monotonic() - batch.started >= flush_s)

    async def flush_behind(self, flush_events: int) -> None:
        """Flush while the next batch is taken: one flush in flight at a time,
        waited for only when the open batch has grown well past its size."""
        if self.flushing is not None and not self.flushing.done():
            if len(self.batch.records) < 4 * flush_events:
                return
            await asyncio.gather(self.flushing, return_exceptions=True)
        self.flushing = asyncio.ensure_future(self.flush())
        self.flushing.add_done_callback(self._flushed)

    def _flushed(self, future: asyncio.Future) -> None:
        if not future.cancelled() and future.exception() is not None:  # not committed: taken again
            log.error("flush of %s failed", self.source.name, exc_info=future.exception())

    async def drain(self) -> None:
        """Everything taken written and committed (before a revoke, and on shutdown); the hold released."""
        if self.flushing is not None:
            await asyncio.gather(self.flushing, return_exceptions=True)
        await self.flush(release_all=True)

    def releasing(self) -> bool:
        return self.hold is not None and self.hold.due()

    async def tick(self, every_s: float) -> None:
        """Flush a batch that is due while no record arrives."""
        while True:
            await asyncio.sleep(every_s)
            if (self.batch.records and time.monotonic() - self.batch.started >= every_s) or self.releasing():
                try:
                    await self.flush()
                except Exception:  # the loop's next flush tries again
                    log.exception("flush of %s failed", self.source.name)

    async def assigned(self, assigned: set[TopicPartition]) -> None:
        """Restore the partitions now owned, before their first record, so reads answer."""
        assert self.kafka is not None
        for tp in sorted(assigned):
            if tp.topic == self.topic:
                await self.state.ensure(self.kafka.restore, tp.partition)

    def revoked(self, revoked: set[TopicPartition]) -> None:
        for tp in revoked:
            if tp.topic == self.topic:
                self.state.revoke(tp.partition)

    async def flush(self, release_all: bool = False) -> None:
        """Outputs and each changed partition's state to Kafka (``agents.flush_writer``),
        then the state locally, then the positions: an offset never goes before its effects.
        Held events released meanwhile are scored into it (a flush with no record of its own)."""
        async with self.flush_lock:
            batch, self.batch = self.batch, Batch()
            holding = self.hold is not None and (release_all and len(self.hold) > 0 or self.hold.due())
            if (not batch.records and not holding) or self.kafka is None:
                return
            timer = self.services.metrics.flush_timer(self.source.name)  # metrics
            # The batch's state changes are taken at once, with nothing awaited since the
            # swap: a record of the next batch must not reach this flush's state
            # without its outputs.
            changes = {p: self.state.collect(p) for p in sorted(batch.partitions) if self.state.owns(p)}
            predicted = self.score(batch, release_all)
            await asyncio.sleep(0)
            written = {p: changed for p, changed in changes.items() if changed}
            positions = {TopicPartition(self.topic, p): offset + 1 for p, offset in batch.through.items()}
            throughs = await self.kafka.writer.write(batch.outbox, written, positions)
            timer.sent(predicted)  # metrics: the predictions are acknowledged
            for partition, changed in written.items():
                self.state.applied(partition, changed, throughs[partition])
            timer.commit()  # metrics
            await self.kafka.writer.done(positions)
            timer.done(len(batch.records), written)  # metrics

    def failed_outputs(self, count: int) -> None:
        self.services.metrics.events.labels(self.source.name, "output_error").inc(count)

    def score(self, batch: Batch, release_all: bool = False) -> list[int]:
        """The batch's applied events, scored in one call per model version, with the held
        events released now; returns the Kafka timestamps of those with a prediction (for the
        latency metric)."""
        scoring = self.services.scoring
        to_score = batch.to_score
        if scoring is not None and self.hold is not None:
            if to_score and scoring.holds(self.source.name):
                for message, request in to_score:  # scored now by the other models, later by these
                    self.hold.add(message, request)
            if release_all or self.hold.due():
                released = self.hold.release(everything=release_all)
                self._count_released([request for _, request in released])
                to_score = to_score + released
        if scoring is None or not to_score:
            return []
        records = [record for record, _ in to_score]
        predicted: list[int] = []  # metrics
        refusals = scoring.score_in_stream([request for _, request in to_score],
                                           [record.key for record in records], batch.outbox, predicted)
        for record, errors in zip(records, refusals):
            for error in errors:
                self.reject(record, validation.SCORING_ERROR, error, batch.outbox)
        return [records[i].timestamp for i in predicted]  # metrics

    def _count_released(self, requests: list[ScoreRequest]) -> None:
        metrics, name = self.services.metrics, self.source.name
        for request in requests:  # metrics
            complete = request.cross is not None and request.cross.complete
            metrics.cross_source_released.labels(name, "complete" if complete else "waited_out").inc()
            metrics.cross_source_held.labels(name).observe(request.held_ms / 1000)

    # -- one record ----------------------------------------------------------

    def take(self, message: ConsumerRecord) -> None:
        runtime, metrics = self.runtime, self.services.metrics
        partition = message.partition
        batch = self.batch
        if not batch.records:
            batch.started = time.monotonic()
        batch.records.append(message)
        batch.through[partition] = message.offset
        clock = runtime.clock(partition)
        if clock is not None and clock.offset is not None and message.offset <= clock.offset:
            return  # re-delivered after a restart: the state and outputs already hold it
        if clock is None and message.offset > 0 and partition not in self.warned:
            self.warned.add(partition)
            log.warning("%s partition %s has no state but starts at offset %s: the records before it are not "
                        "in it (a changelog from an older build, or deleted?); `make clean` or a new FS_APP_ID "
                        "rebuilds from the log", self.source.name, partition, message.offset)
        batch.partitions.add(partition)
        stores = self.state.live(partition)
        try:
            self.services.backfill.at_record(runtime, partition, message.offset)
            record = LogRecord.of(partition, message.offset, message.value, message.headers, message.timestamp,
                                  self.services.settings.partitions)
            checked, outcome, rejection = take(runtime.processor, stores, record,
                                               self.services.settings.max_payload_bytes)
            if outcome is None:  # a backfill marker, not an event
                return
            if rejection is not None:
                metrics.events.labels(self.source.name, "invalid").inc()
                self.reject(message, rejection.reason, rejection.detail)
                return
        except Exception as exc:  # never let one record stop the worker
            log.exception("ingest %s failed at %s:%s", self.source.name, partition, message.offset)
            metrics.events.labels(self.source.name, "error").inc()
            self.reject(message, validation.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}")
            return
        metrics.events.labels(self.source.name, outcome.status).inc()
        if outcome.status == LATE:
            self.reject(message, validation.LATE, "older than the allowed lateness behind the newest event time seen")
        elif outcome.status == APPLIED:
            try:
                self.emit(message, checked.record, outcome)
            except Exception as exc:  # applied, but an output failed: say so, keep going
                log.exception("emitting %s %s:%s failed", self.source.name, partition, message.offset)
                self.reject(message, validation.INTERNAL_ERROR, f"outputs failed: {type(exc).__name__}: {exc}")

    def reject(self, message: ConsumerRecord, reason: str, detail: str, outbox: Outbox | None = None) -> None:
        record = dead_letter(reason=reason, detail=detail, source=self.source.name, topic=message.topic,
                             partition=message.partition, offset=message.offset, timestamp_ms=message.timestamp,
                             key=message.key, value=message.value)
        (outbox or self.batch.outbox).add(self.outputs.dlq, message.key, encode_dead_letter(record))
        self.services.metrics.dlq.labels(self.source.name, reason).inc()

    def emit(self, message: ConsumerRecord, record: dict[str, Any], outcome: Outcome) -> None:
        """Feature log, predictions, re-keyed forwards of one applied event."""
        source, outbox = self.source, self.batch.outbox
        served = ServedRecord(
            event_id=record[source.id_field], entity=str(record[source.key]), event_time_ms=outcome.time_ms,
            topic=message.topic, partition=message.partition, offset=message.offset,
            features=outcome.features, versions=self.versions,
        )
        outbox.add(self.outputs.features, message.key, served.encode())
        if self.services.scoring is not None:
            provenance = Provenance(
                event_id=served.event_id, source=source.name, topic=message.topic,
                partition=message.partition, offset=message.offset,
                event_time_ms=outcome.time_ms, event_time=record[source.time_field],
            )
            self.batch.to_score.append((message, ScoreRequest(source.name, record, outcome.features, provenance)))
        # Views by other entities read the applied events re-keyed: the
        # original bytes, so their agent validates and decides the same way,
        # and the partition they came from, the lane they are ordered in, with
        # the schema version the bytes are written in.
        lane_header = lane_headers(message.partition, schema_of(message.headers))
        for derived in outcome.forwards:  # a log whose history is still being written gets nothing yet
            field_name, forward = self.outputs.forwards[derived]
            entity = record.get(field_name)
            if entity is not None:
                outbox.add(forward, str(entity).encode(), message.value, headers=lane_header)

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
flushed in this order, and only then are its offsets acked for commit:
its outputs are sent and acknowledged; each partition's changed state is
written once, as one record batch of the state changelog, then locally with
the changelog offset.  A kill at any moment re-delivers what was not
committed: records the flushed state already holds (offset up to its clock's)
are skipped, so no event is lost or applied twice; outputs of a flush cut
short between its outputs and its state are sent again (at least once, with
the same values and offsets).
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator

import faust
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError
from contextlib import asynccontextmanager
from faust.types import TP, EventT

from tables import validation
from agents.backfill import Backfill
from agents.control_plane import ControlPlane
from agents.dead_letters import dead_letter
from agents.dead_letters import encode as encode_dead_letter
from agents.metrics import Metrics
from agents.outbox import Outbox
from agents.scoring import Provenance, ScoreRequest, ScoringRuntime
from agents.source_runtime import SourceRuntime
from agents.source_state import SourceState
from kafka_plumbing import clients
from kafka_plumbing.clients import start_consumer, stop_consumer
from kafka_plumbing.partition_store import ChangesTooLarge, PartitionStore, write_changes
from kafka_plumbing.settings import Settings
from kafka_plumbing.topics import STATE_BATCH_BYTES
from tables.definitions import Definitions
from tables.processor import APPLIED, LATE, Outcome, SourceProcessor
from tables.log_record import is_control, lane_headers, lane_of

log = logging.getLogger(__name__)

RETRY_S = 1.0
YIELD_EVERY = 32  # events taken between two turns of the event loop
CHUNK_KEYS = 2000  # a flush too large for one record batch is written in pieces of this many keys


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
    app: faust.App, settings: Settings, definitions: Definitions, data_dir: Path, metrics: Metrics,
    plane: ControlPlane, backfill: Backfill, scoring: ScoringRuntime | None = None,
) -> dict[str, SourceRuntime]:
    services = Services(settings, metrics, plane, backfill, scoring)
    store = PartitionStore(data_dir / "partition-state")
    runtimes: dict[str, SourceRuntime] = {}
    agents: list[SourceAgent] = []
    for source in definitions.sources.values():
        views = definitions.views_of(source.name)
        topic_name = settings.topics.events(source.name)
        state = SourceState(store, source.name, views, settings.topics.state_changelog(settings.app_id, source.name))
        derived = definitions.derived_of(source.name)
        processor = SourceProcessor(source, views, tuple(d.name for d in derived))
        runtime = SourceRuntime(source, views, processor, state, topic_name)
        runtimes[source.name] = runtime
        outputs = Outputs(
            dlq=settings.topics.dlq,
            features=settings.topics.features(source.name),
            forwards={d.name: (d.key, settings.topics.events(d.name)) for d in derived},
        )
        agent = SourceAgent(runtime, outputs, services)
        agents.append(agent)
        topic = app.topic(topic_name, key_type=bytes, value_type=bytes)
        app.agent(topic, name=f"ingest.{source.name}")(agent.run)

    # Faust acks nothing of a partition it revokes before our flush acked it
    # (it waits for in-flight events), so a revoked partition has no unflushed state.
    @app.on_partitions_revoked.connect
    async def on_revoked(sender: Any, revoked: set[TP], **kwargs: Any) -> None:
        for agent in agents:
            agent.revoked(revoked)

    @app.on_partitions_assigned.connect
    async def on_assigned(sender: Any, assigned: set[TP], **kwargs: Any) -> None:
        for agent in agents:
            agent.assigned(assigned)

    return runtimes


@dataclass
class AgentClients:
    """The agent's own Kafka clients, from the project's factory."""

    outputs: AIOKafkaProducer
    changelog: AIOKafkaProducer
    restore: AIOKafkaConsumer

    @classmethod
    @asynccontextmanager
    async def started(cls, settings: Settings) -> AsyncIterator["AgentClients"]:
        started = cls(
            outputs=clients.producer(settings, linger_ms=2, max_batch_size=512 * 1024),
            changelog=clients.producer(settings, linger_ms=0, max_batch_size=STATE_BATCH_BYTES // 2,
                                       max_request_size=STATE_BATCH_BYTES),
            restore=clients.consumer(settings, max_partition_fetch_bytes=STATE_BATCH_BYTES),
        )
        await started.outputs.start()
        try:
            await started.changelog.start()
            try:
                await start_consumer(started.restore)
                try:
                    yield started
                finally:
                    await stop_consumer(started.restore)
            finally:
                await started.changelog.stop()
        finally:
            await started.outputs.stop()


@dataclass
class Batch:
    """Events taken and not yet flushed: their outputs and the partitions they changed."""

    events: list[EventT] = field(default_factory=list)
    outbox: Outbox = field(default_factory=Outbox)
    to_score: list[tuple[EventT, ScoreRequest]] = field(default_factory=list)  # applied, scored at the flush
    partitions: set[int] = field(default_factory=set)
    started: float = 0.0


class SourceAgent:
    """One source's agent: parse, look up, apply, emit; flushed in batches."""

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
        self.to_restore: set[int] = set()
        self.stream: faust.StreamT | None = None
        self.flushing: asyncio.Future | None = None
        self.warned: set[int] = set()

    # -- the loop ------------------------------------------------------------

    async def run(self, stream: faust.StreamT) -> None:
        await self.services.plane.loaded.wait()  # never score with a stale deployment
        settings = self.services.settings
        # Acks are ours: an event is acked once the flush it is in is done.
        self.stream = stream = stream.noack()
        async with AgentClients.started(settings) as kafka:
            self.kafka = kafka
            await self.restore_assigned()
            ticker = asyncio.ensure_future(self.tick(settings.flush_ms / 1000))
            try:
                taken = 0
                async for event in stream.events():
                    partition = event.message.partition
                    if not self.state.owns(partition):
                        await self.state.ensure(kafka.restore, partition)
                    self.take(event)
                    taken += 1
                    if taken % YIELD_EVERY == 0:
                        # Faust hands over buffered events without a turn of the
                        # loop: let reads and the flush in flight run.
                        await asyncio.sleep(0)
                    batch = self.batch
                    if len(batch.events) >= settings.flush_events or (
                            time.monotonic() - batch.started >= settings.flush_ms / 1000):
                        await self.flush_behind(settings.flush_events)
            finally:
                ticker.cancel()
                # On shutdown too: what was taken is written and acked.
                if self.flushing is not None:
                    await asyncio.gather(self.flushing, return_exceptions=True)
                await self.flush()
                self.kafka = None

    async def flush_behind(self, flush_events: int) -> None:
        """Flush while the next batch is taken: one flush in flight at a time,
        waited for only when the open batch has grown well past its size."""
        if self.flushing is not None and not self.flushing.done():
            if len(self.batch.events) < 4 * flush_events:
                return
            await asyncio.gather(self.flushing, return_exceptions=True)
        self.flushing = asyncio.ensure_future(self.flush())
        self.flushing.add_done_callback(self._flushed)

    def _flushed(self, future: asyncio.Future) -> None:
        if not future.cancelled() and future.exception() is not None:  # its events stay unacked: taken again
            log.error("flush of %s failed", self.source.name, exc_info=future.exception())

    async def tick(self, every_s: float) -> None:
        """Flush a batch that is due while no event arrives."""
        while True:
            await asyncio.sleep(every_s)
            if self.batch.events and time.monotonic() - self.batch.started >= every_s:
                try:
                    await self.flush()
                except Exception:  # the loop's next flush tries again
                    log.exception("flush of %s failed", self.source.name)

    def assigned(self, assigned: set[TP]) -> None:
        """Restore the partitions now owned, before their first event, so reads answer."""
        self.to_restore = {tp.partition for tp in assigned if tp.topic == self.runtime.topic}
        if self.kafka is not None:
            asyncio.ensure_future(self.restore_assigned())

    def revoked(self, revoked: set[TP]) -> None:
        for tp in revoked:
            if tp.topic == self.runtime.topic:
                self.state.revoke(tp.partition)

    async def restore_assigned(self) -> None:
        kafka = self.kafka
        for partition in sorted(self.to_restore):
            if kafka is None or partition not in self.to_restore:
                return
            try:
                await self.state.ensure(kafka.restore, partition)
            except Exception:  # the partition's first event restores it again
                log.exception("restoring %s partition %s failed", self.source.name, partition)

    async def flush(self) -> None:
        """Outputs acknowledged, then each changed partition's state (changelog, then
        local), then the events acked for commit: an offset never goes before its effects."""
        async with self.flush_lock:
            batch, self.batch = self.batch, Batch()
            if not batch.events or self.kafka is None or self.stream is None:
                return
            # The batch's state changes are taken at once, with nothing awaited since the
            # swap: an event of the next batch must not reach this flush's state
            # without its outputs.
            changes = {p: self.state.collect(p) for p in sorted(batch.partitions) if self.state.owns(p)}
            self.score(batch)
            await asyncio.sleep(0)
            for output, exc in await batch.outbox.send(self.kafka.outputs):
                log.error("output to %s failed: %s: %s", output.topic, type(exc).__name__, exc)
                self.services.metrics.events.labels(self.source.name, "output_error").inc()
            written = {p: changed for p, changed in changes.items() if changed}
            # Each partition's flush is its own record batch: written side by side.
            throughs = await asyncio.gather(*(self.write_state(p, changed) for p, changed in written.items()))
            for (partition, changed), through in zip(written.items(), throughs):
                self.state.applied(partition, changed, through)
            for event in batch.events:
                await self.stream.ack(event)

    def score(self, batch: Batch) -> None:
        """The batch's applied events, scored in one call per model version."""
        scoring = self.services.scoring
        if scoring is None or not batch.to_score:
            return
        events = [event for event, _ in batch.to_score]
        refusals = scoring.score_in_stream([request for _, request in batch.to_score],
                                           [event.message.key for event in events], batch.outbox)
        for event, errors in zip(events, refusals):
            for error in errors:
                self.reject(event, validation.SCORING_ERROR, error, batch.outbox)

    async def write_state(self, partition: int, changes: dict[bytes, bytes | None]) -> int:
        """One record batch in the partition's changelog; retried while the brokers are away."""
        assert self.kafka is not None
        topic = self.state.changelog
        while True:
            try:
                try:
                    return await write_changes(self.kafka.changelog, topic, partition, changes)
                except ChangesTooLarge:
                    log.warning("a state flush of %s partition %s is larger than one record batch (%s keys): "
                                "written in pieces; lower FS_FLUSH_EVENTS", self.source.name, partition, len(changes))
                    items = list(changes.items())
                    through = -1
                    for i in range(0, len(items), CHUNK_KEYS):
                        through = await write_changes(self.kafka.changelog, topic, partition,
                                                      dict(items[i:i + CHUNK_KEYS]))
                    return through
            except KafkaError as exc:
                log.warning("writing %s state to %s:%s failed (%s); retrying", self.source.name, topic, partition, exc)
                await asyncio.sleep(RETRY_S)

    # -- one record ----------------------------------------------------------

    def take(self, event: EventT) -> None:
        runtime, metrics, message = self.runtime, self.services.metrics, event.message
        partition = message.partition
        batch = self.batch
        if not batch.events:
            batch.started = time.monotonic()
        batch.events.append(event)
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
            if is_control(message.headers):  # a backfill marker, not an event
                runtime.processor.touch(stores, partition, message.offset)
                return
            lane = lane_of(message.headers)
            kafka_ms = None if message.timestamp is None else round(message.timestamp * 1000)  # Faust: seconds
            checked = validation.validate(self.source, message.value, self.services.settings.max_payload_bytes, lane,
                                          kafka_ms)
            if isinstance(checked, validation.Rejection):
                runtime.processor.reject(stores, partition, message.offset)
                metrics.events.labels(self.source.name, "invalid").inc()
                self.reject(event, checked.reason, checked.detail)
                return
            outcome = runtime.processor.process(
                stores, partition, checked.record, checked.time_ms, lane, message.offset,
            )
        except Exception as exc:  # never let one record stop the worker
            log.exception("ingest %s failed at %s:%s", self.source.name, partition, message.offset)
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
                log.exception("emitting %s %s:%s failed", self.source.name, partition, message.offset)
                self.reject(event, validation.INTERNAL_ERROR, f"outputs failed: {type(exc).__name__}: {exc}")

    def reject(self, event: EventT, reason: str, detail: str, outbox: Outbox | None = None) -> None:
        message = event.message
        record = dead_letter(reason=reason, detail=detail, source=self.source.name, topic=message.topic,
                             partition=message.partition, offset=message.offset, timestamp_s=message.timestamp,
                             key=message.key, value=message.value)
        (outbox or self.batch.outbox).add(self.outputs.dlq, message.key, encode_dead_letter(record))
        self.services.metrics.dlq.labels(self.source.name, reason).inc()

    def emit(self, event: EventT, record: dict[str, Any], outcome: Outcome) -> None:
        """Feature log, predictions, re-keyed forwards of one applied event."""
        message, source, outbox = event.message, self.source, self.batch.outbox
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
            self.batch.to_score.append((event, ScoreRequest(source.name, record, outcome.features, provenance)))
        # Views by other entities read the applied events re-keyed: the
        # original bytes, so their agent validates and decides the same way,
        # and the partition they came from, the lane they are ordered in.
        lane_header = lane_headers(message.partition)
        for derived in outcome.forwards:  # a log whose history is still being written gets nothing yet
            field_name, forward = self.outputs.forwards[derived]
            entity = record.get(field_name)
            if entity is not None:
                outbox.add(forward, str(entity).encode(), message.value, headers=lane_header)

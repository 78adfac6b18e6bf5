"""Filling a new view, or a new version of a view, from the whole log before it serves.

A view is *live* on a partition from a known offset (``PartitionClock.live``).  A
partition seen for the first time starts every view at once.  When a worker
owns a partition that has history and a view that is not live there (a view or
a version added to the feature module), it fills it:

1. a fill job reads the partition's log from its first offset through the same
   validation and ``SourceProcessor`` as the agent, into in-memory stores
   holding only the views to fill, never past the record the agent last took;
2. once the job has taken exactly what the agent has, the agent installs the
   job's states into the tables at its next record of that partition and
   marks the views live from that offset.  The handover happens inside the
   agent, between two records of one partition, so no event is applied twice
   or missed, and the state equals what a replay of the log computes;
3. on an idle partition the job writes a control marker into the partition so
   the agent reaches that point anyway (agents and replay skip markers).

A re-keyed log added later (a view on an entity its source was never keyed by)
is fed the same way: ``featurestream backfill`` writes the parent's history
into it, merged across partitions by event time, through a recorded offset per
partition; the job then forwards the applied records after that offset, up to
the agent, waits for Kafka to acknowledge them, and hands over, so each
partition's records reach the re-keyed log once and in order.

The job's decision counts must equal the agent's at the handover, since both
took the same records: a mismatch fails the fill rather than serve a state a
replay would not reproduce.  Progress and outcome go to the control plane
(``fill:<state_key>:<partition>``), which ``featurestream backfill`` follows
and a cut-over checks.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import faust
from aiokafka import TopicPartition
from faust.types import TP

from agents.placement import Placement
from agents.readiness import is_ready
from agents.source_runtime import SourceRuntime
from agents.control_plane import ControlPlane
from agents.control_records import FAILED, FILLING, LIVE, FillStatus, now_iso
from kafka_plumbing import clients
from kafka_plumbing.clients import start_consumer, stop_consumer
from kafka_plumbing.settings import Settings
from tables.dsl import FeatureView
from tables.processor import APPLIED, SourceProcessor, Stores, forward_key
from tables.state import PartitionClock
from tables.log_record import LogRecord, control_headers, lane_headers
from tables.replay import take

log = logging.getLogger(__name__)

REPORT_EVERY_S = 1.0
YIELD_EVERY = 500  # records taken between two turns of the event loop, so the agent keeps up


@dataclass
class FillJob:
    runtime: SourceRuntime
    partition: int
    views: list[FeatureView]  # to install at the handover
    forwards: dict[str, int]  # re-keyed log -> offset its written history goes through
    fields: dict[str, str]  # re-keyed log -> the field it is keyed by
    stores: Stores
    processor: SourceProcessor
    through: int | None = None  # last offset taken
    ready: int | None = None  # last offset whose outputs are acknowledged: the handover point
    end: int = 0  # end of the log when the job started, for progress
    status: str = FILLING
    detail: str | None = None
    live_from: int | None = None
    marker_sent: bool = False
    task: asyncio.Task | None = field(default=None, repr=False)

    @classmethod
    def start(cls, runtime: SourceRuntime, partition: int, views: list[FeatureView],
              forwards: dict[str, int], fields: dict[str, str]) -> "FillJob":
        # Late and duplicate decisions depend on the views' history horizon, which
        # every view of a source shares: the views to fill suffice, else any one.
        replayed = views or runtime.views[:1]
        processor = SourceProcessor(runtime.source, replayed, tuple(forwards))
        return cls(runtime, partition, views, forwards, fields, Stores.in_memory(replayed), processor)

    @property
    def clock_key(self) -> str:
        return self.runtime.processor.clock_key(self.partition)

    @property
    def keys(self) -> list[str]:
        """What goes live at the handover: view state keys and re-keyed logs."""
        return [v.state_key for v in self.views] + [forward_key(d) for d in self.forwards]

    def agent_offset(self) -> int | None:
        clock = self.runtime.clock(self.partition)
        return None if clock is None else clock.offset

    def take(self, message: Any, max_payload_bytes: int,
             partitions: int) -> list[tuple[str, bytes, bytes, list[tuple[str, bytes]]]]:
        """One record through the same path the agent took it; returns what it
        forwards to re-keyed logs: (log, key, value, headers), as the agent forwards."""
        record = LogRecord.of(self.partition, message.offset, message.value, message.headers, message.timestamp,
                              partitions)
        checked, outcome, _ = take(self.processor, self.stores, record, max_payload_bytes)
        self.through = message.offset
        if checked is None or outcome is None or outcome.status != APPLIED:
            return []
        out = []
        headers = lane_headers(self.partition, record.schema_version)
        for derived, history_through in self.forwards.items():
            entity = checked.record.get(self.fields[derived])
            if message.offset > history_through and entity is not None:
                out.append((derived, str(entity).encode(), message.value, headers))
        return out


class Backfill:
    """This worker's fill jobs, one per (source, partition) it owns that needs one."""

    def __init__(self, app: faust.App, settings: Settings, plane: ControlPlane, placement: Placement) -> None:
        self.app = app
        self.placement = placement
        self.settings = settings
        self.plane = plane
        self.runtimes: dict[str, SourceRuntime] = {}
        self.topics: dict[str, faust.TopicT] = {}
        self.jobs: dict[tuple[str, int], FillJob] = {}
        self.announced: set[tuple[str, int]] = set()
        self.touched: set[tuple[str, int]] = set()

    def watch(self, runtimes: dict[str, SourceRuntime]) -> None:
        """Fill the views of these sources' partitions, checking every second."""
        self.runtimes = runtimes
        self.topics = {name: self.app.topic(self.settings.topics.events(name), key_type=bytes, value_type=bytes)
                       for name in runtimes}

        @self.app.timer(REPORT_EVERY_S)
        async def reconcile_fills() -> None:
            await self.reconcile()

    # -- in the agent ------------------------------------------------------

    def at_record(self, runtime: SourceRuntime, partition: int, offset: int) -> None:
        """Called by the agent before it takes a record (or a marker) of ``partition``."""
        job = self.jobs.get((runtime.source.name, partition))
        if job is None or job.status != FILLING or job.ready is None or job.ready != job.agent_offset():
            return
        self._install(job, offset)

    def _install(self, job: FillJob, offset: int) -> None:
        stores = job.runtime.state.live(job.partition)
        clock = stores.clocks.get(job.clock_key)
        mine = job.stores.clocks.get(job.clock_key)
        if clock is None or mine is None or mine.counts != clock.counts:
            job.status, job.detail = FAILED, (
                f"replayed counts {mine and mine.counts} differ from the agent's {clock and clock.counts}"
            )
            log.error("fill of %s partition %s failed: %s", job.keys, job.partition, job.detail)
            self._report(job)
            return
        for view in job.views:
            table = stores.views[view.state_key]
            for entity, state in job.stores.views[view.state_key].items():
                table[entity] = state
        for key in job.keys:
            clock.live[key] = offset
        stores.clocks[job.clock_key] = clock
        job.status, job.live_from = LIVE, offset
        log.info("%s live on %s partition %s from offset %s", job.keys, job.runtime.source.name, job.partition, offset)
        self._report(job)

    # -- in the background -------------------------------------------------

    async def reconcile(self) -> None:
        """Start a job for each owned partition with a view to fill or a
        re-keyed log to feed; drop jobs of partitions this worker no longer
        owns; announce what is live."""
        if not self.plane.loaded.is_set() or not is_ready(self.app, self.placement):
            return
        assigned = self.placement.assigned
        for name, runtime in self.runtimes.items():
            topic = self.settings.topics.events(name)
            for partition in range(self.settings.partitions):
                key = (name, partition)
                job = self.jobs.get(key)
                if TP(topic, partition) not in assigned:
                    if job is not None:
                        self._drop(key)
                    continue
                if job is not None:
                    if job.status == LIVE:
                        self._drop(key)
                    continue
                clock = runtime.clock(partition)
                if clock is None:
                    continue
                self._announce(runtime, partition, clock)
                pending = runtime.processor.pending(clock)
                # A re-keyed log is fed once its history is written through a known offset.
                forwards = {d: h.through for d in runtime.processor.pending_forwards(clock)
                            if (h := self.plane.histories.get((d, partition))) is not None}
                if not pending and not forwards:
                    continue
                if clock.offset is None:
                    if key not in self.touched:  # a clock from an older version: a marker gets its offset
                        self.touched.add(key)
                        self._mark(name, partition, "offset")
                    continue
                fields = {d: self.runtimes[d].source.key for d in forwards}
                job = self.jobs[key] = FillJob.start(runtime, partition, pending, forwards, fields)
                job.task = asyncio.ensure_future(self._run(job))
                log.info("filling %s on %s partition %s", job.keys, name, partition)

    def _drop(self, key: tuple[str, int]) -> None:
        job = self.jobs.pop(key)
        if job.task is not None and not job.task.done():
            job.task.cancel()

    def _announce(self, runtime: SourceRuntime, partition: int, clock: PartitionClock) -> None:
        """What a partition has live since its first event is announced once, so
        a cut-over knows which partitions hold events; so is a re-keyed log that
        waits for its history."""
        if (runtime.source.name, partition) in self.announced:
            return
        self.announced.add((runtime.source.name, partition))
        if clock.live is None:
            log.warning("%s partition %s was written by a version that did not record which views are live: "
                        "taking the established version of each view as filled (`make clean` rebuilds from the log)",
                        runtime.source.name, partition)
        live = runtime.processor.live_of(clock)
        for view in runtime.views:
            known = self.plane.fills.get((view.state_key, partition))
            if live.get(view.state_key) is not None and (known is None or known.status != LIVE):
                self._send(self._status(view.state_key, runtime, partition, LIVE, view=view,
                                        live_from=live[view.state_key]))
        for derived in runtime.processor.forwards:
            key = forward_key(derived)
            known = self.plane.fills.get((key, partition))
            if live.get(key) is not None and (known is None or known.status != LIVE):
                self._send(self._status(key, runtime, partition, LIVE, derived=derived, live_from=live[key]))
            elif live.get(key) is None and known is None:
                self._send(self._status(key, runtime, partition, FILLING, derived=derived, detail=(
                    f"waiting for its history: featurestream backfill (a view on {derived})")))

    async def _run(self, job: FillJob) -> None:
        tp = TopicPartition(self.settings.topics.events(job.runtime.source.name), job.partition)
        consumer = clients.consumer(self.settings, max_partition_fetch_bytes=4 * 1024 * 1024)
        producer = clients.producer(self.settings, acks="all", linger_ms=20) if job.forwards else None
        await start_consumer(consumer)
        try:
            if producer is not None:
                await producer.start()
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            job.end = (await consumer.end_offsets([tp]))[tp]
            buffer: deque = deque()
            reported = 0.0
            while job.status == FILLING:
                agent_offset = job.agent_offset()
                taken = 0
                # Never past the agent: the handover is at the agent's next record.
                while buffer and agent_offset is not None and buffer[0].offset <= agent_offset:
                    for derived, key, value, headers in job.take(buffer.popleft(), self.settings.max_payload_bytes,
                                                                 self.settings.partitions):
                        await producer.send(self.settings.topics.events(derived), value, key=key, headers=headers)
                    taken += 1
                    if taken % YIELD_EVERY == 0:
                        await asyncio.sleep(0)
                if job.through != job.ready:
                    if producer is not None:
                        await producer.flush()  # forwarded records are in their logs before the handover
                    job.ready = job.through
                if job.ready is not None and job.ready == agent_offset:
                    if not job.marker_sent:
                        job.marker_sent = True
                        self._mark(job.runtime.source.name, job.partition, "fill", job.keys)
                    await asyncio.sleep(0.1)
                elif not buffer or (agent_offset is not None and buffer[-1].offset < agent_offset):
                    batch = await consumer.getmany(tp, timeout_ms=200, max_records=5000)
                    buffer.extend(batch.get(tp, []))
                else:
                    await asyncio.sleep(0.05)  # the agent has yet to take what is buffered
                if time.monotonic() - reported > REPORT_EVERY_S:
                    reported = time.monotonic()
                    self._report(job)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a fill never takes the worker down
            log.exception("fill of %s partition %s failed", job.runtime.source.name, job.partition)
            job.status, job.detail = FAILED, f"{type(exc).__name__}: {exc}"
            self._report(job)
        finally:
            if producer is not None:
                await producer.stop()
            await stop_consumer(consumer)

    def _mark(self, source: str, partition: int, reason: str, keys: list[str] | None = None) -> None:
        """A record that is not an event, so an idle partition's agent takes one more record."""
        body = {"fs_control": reason, "for": keys or [], "at": now_iso()}
        self.topics[source].send_soon(
            key=None, value=json.dumps(body).encode(), partition=partition,
            headers=control_headers(reason),
        )

    def _report(self, job: FillJob) -> None:
        progress = {"through": job.through, "end": job.end, "live_from": job.live_from, "detail": job.detail}
        for view in job.views:
            self._send(self._status(view.state_key, job.runtime, job.partition, job.status, view=view, **progress))
        for derived in job.forwards:
            self._send(self._status(forward_key(derived), job.runtime, job.partition, job.status, derived=derived,
                                    **progress))

    def _status(self, key: str, runtime: SourceRuntime, partition: int, status: str,
                view: FeatureView | None = None, **fields: Any) -> FillStatus:
        about = {} if view is None else {"view": view.name, "version": view.version, "ref": view.ref}
        return FillStatus(state_key=key, source=runtime.source.name, partition=partition, status=status,
                          worker=str(self.app.conf.canonical_url), at=now_iso(), **about, **fields)

    def _send(self, record: FillStatus) -> None:
        self.plane.publish_soon(record)

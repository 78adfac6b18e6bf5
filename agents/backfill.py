"""Filling a new view, or a new version of a view, from the whole log before it serves.

A view is *live* on a partition from a known offset (``clock["live"]``).  A
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
from typing import TYPE_CHECKING, Any

import faust
from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.types import TP

from agents.control_plane import FAILED, FILLING, LIVE, ControlPlane, fill_key, now_iso
from agents.validation import Valid, validate
from app.log_reader import start_consumer, stop_consumer
from app.settings import Settings
from tables.dsl import FeatureView
from tables.processor import SourceProcessor, Stores
from tables.replay import CONTROL_HEADER, is_control, lane_of

if TYPE_CHECKING:
    from agents.ingest import SourceRuntime

log = logging.getLogger(__name__)

REPORT_EVERY_S = 1.0
YIELD_EVERY = 500  # records taken between two turns of the event loop, so the agent keeps up


@dataclass
class FillJob:
    runtime: "SourceRuntime"
    partition: int
    views: list[FeatureView]
    stores: Stores
    processor: SourceProcessor
    through: int | None = None  # last offset taken
    end: int = 0  # end of the log when the job started, for progress
    status: str = FILLING
    detail: str | None = None
    live_from: int | None = None
    marker_sent: bool = False
    task: asyncio.Task | None = field(default=None, repr=False)

    @classmethod
    def start(cls, runtime: "SourceRuntime", partition: int, views: list[FeatureView]) -> "FillJob":
        return cls(runtime, partition, views, Stores.in_memory(views), SourceProcessor(runtime.source, views))

    @property
    def clock_key(self) -> str:
        return self.runtime.processor.clock_key(self.partition)

    def agent_offset(self) -> int | None:
        clock = self.runtime.stores.clocks.get(self.clock_key) or {}
        return clock.get("offset")

    def take(self, message: Any, max_payload_bytes: int) -> None:
        """One record through the same path the agent took it."""
        if is_control(message.headers):
            self.processor.touch(self.stores, self.partition, message.offset)
        else:
            checked = validate(self.runtime.source, message.value, max_payload_bytes)
            if isinstance(checked, Valid):
                self.processor.process(self.stores, self.partition, checked.record, checked.time_ms,
                                       lane_of(message.headers), message.offset)
            else:
                self.processor.reject(self.stores, self.partition, message.offset)
        self.through = message.offset


class Backfill:
    """This worker's fill jobs, one per (source, partition) it owns that needs one."""

    def __init__(self, app: faust.App, settings: Settings, plane: ControlPlane) -> None:
        self.app = app
        self.settings = settings
        self.plane = plane
        self.runtimes: dict[str, "SourceRuntime"] = {}
        self.topics: dict[str, faust.TopicT] = {}
        self.jobs: dict[tuple[str, int], FillJob] = {}
        self.announced: set[tuple[str, int]] = set()
        self.touched: set[tuple[str, int]] = set()

    def watch(self, runtimes: dict[str, "SourceRuntime"]) -> None:
        """Fill the views of these sources' partitions, checking every second."""
        self.runtimes = runtimes
        self.topics = {name: self.app.topic(self.settings.events_topic(name), key_type=bytes, value_type=bytes)
                       for name in runtimes}

        @self.app.timer(REPORT_EVERY_S)
        async def reconcile_fills() -> None:
            await self.reconcile()

    # -- in the agent ------------------------------------------------------

    def at_record(self, runtime: "SourceRuntime", partition: int, offset: int) -> None:
        """Called by the agent before it takes a record (or a marker) of ``partition``."""
        job = self.jobs.get((runtime.source.name, partition))
        if job is None or job.status != FILLING or job.through is None or job.through != job.agent_offset():
            return
        self._install(job, offset)

    def _install(self, job: FillJob, offset: int) -> None:
        stores = job.runtime.stores
        clock = stores.clocks.get(job.clock_key)
        mine = job.stores.clocks.get(job.clock_key) or {}
        if clock is None or mine.get("counts") != clock.get("counts"):
            job.status, job.detail = FAILED, (
                f"replayed counts {mine.get('counts')} differ from the agent's {clock and clock.get('counts')}"
            )
            log.error("fill of %s partition %s failed: %s", [v.ref for v in job.views], job.partition, job.detail)
            self._report(job)
            return
        for view in job.views:
            table = stores.views[view.state_key]
            for entity, state in job.stores.views[view.state_key].items():
                table[entity] = state
            clock["live"][view.state_key] = offset
        stores.clocks[job.clock_key] = clock
        job.status, job.live_from = LIVE, offset
        log.info("%s live on %s partition %s from offset %s",
                 [v.ref for v in job.views], job.runtime.source.name, job.partition, offset)
        self._report(job)

    # -- in the background -------------------------------------------------

    async def reconcile(self) -> None:
        """Start a job for each owned partition with a view to fill; drop jobs
        of partitions this worker no longer owns; announce live views."""
        from app.web import is_ready

        if not self.plane.loaded.is_set() or not is_ready(self.app):
            return
        assigned = self.app.assignor.assigned_actives()
        for name, runtime in self.runtimes.items():
            topic = self.settings.events_topic(name)
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
                clock = runtime.stores.clocks.get(runtime.processor.clock_key(partition))
                if not clock:
                    continue
                self._announce_live(runtime, partition, clock)
                pending = runtime.processor.pending(clock)
                if pending and clock.get("offset") is None and key not in self.touched:
                    # A clock from an older version has no offset: a marker gets one.
                    self.touched.add(key)
                    self._mark(runtime.source.name, partition, "offset")
                elif pending and clock.get("offset") is not None:
                    job = self.jobs[key] = FillJob.start(runtime, partition, pending)
                    job.task = asyncio.ensure_future(self._run(job))
                    log.info("filling %s on %s partition %s", [v.ref for v in pending], name, partition)

    def _drop(self, key: tuple[str, int]) -> None:
        job = self.jobs.pop(key)
        if job.task is not None and not job.task.done():
            job.task.cancel()

    def _announce_live(self, runtime: "SourceRuntime", partition: int, clock: dict[str, Any]) -> None:
        """Views live since a partition's first event are announced once, so a
        cut-over knows which partitions hold events."""
        if (runtime.source.name, partition) in self.announced:
            return
        self.announced.add((runtime.source.name, partition))
        if "live" not in clock:
            log.warning("%s partition %s was written by a version that did not record which views are live: "
                        "taking the established version of each view as filled (`make clean` rebuilds from the log)",
                        runtime.source.name, partition)
            pending = {v.state_key for v in runtime.processor.pending(clock)}
            clock = {**clock, "live": {v.state_key: 0 for v in runtime.views if v.state_key not in pending}}
        for view in runtime.views:
            live_from = (clock.get("live") or {}).get(view.state_key)
            known = self.plane.fills.get((view.state_key, partition)) or {}
            if live_from is not None and known.get("status") != LIVE:
                self._send(view, runtime, partition, {"status": LIVE, "live_from": live_from})

    async def _run(self, job: FillJob) -> None:
        tp = TopicPartition(self.settings.events_topic(job.runtime.source.name), job.partition)
        consumer = AIOKafkaConsumer(bootstrap_servers=self.settings.bootstrap, enable_auto_commit=False,
                                    max_partition_fetch_bytes=4 * 1024 * 1024, **self.settings.kafka_security())
        await start_consumer(consumer)
        try:
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
                    job.take(buffer.popleft(), self.settings.max_payload_bytes)
                    taken += 1
                    if taken % YIELD_EVERY == 0:
                        await asyncio.sleep(0)
                if job.through is not None and job.through == agent_offset:
                    if not job.marker_sent:
                        job.marker_sent = True
                        self._mark(job.runtime.source.name, job.partition, "fill", [v.ref for v in job.views])
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
            await stop_consumer(consumer)

    def _mark(self, source: str, partition: int, reason: str, views: list[str] | None = None) -> None:
        """A record that is not an event, so an idle partition's agent takes one more record."""
        body = {"fs_control": reason, "views": views or [], "at": now_iso()}
        self.topics[source].send_soon(
            key=None, value=json.dumps(body).encode(), partition=partition,
            headers=[(CONTROL_HEADER, reason.encode())],
        )

    def _report(self, job: FillJob) -> None:
        for view in job.views:
            self._send(view, job.runtime, job.partition, {
                "status": job.status, "through": job.through, "end": job.end,
                "live_from": job.live_from, "detail": job.detail,
            })

    def _send(self, view: FeatureView, runtime: "SourceRuntime", partition: int, status: dict[str, Any]) -> None:
        record = {"kind": "fill", "view": view.name, "version": view.version, "ref": view.ref,
                  "state_key": view.state_key, "source": runtime.source.name, "partition": partition,
                  "worker": str(self.app.conf.canonical_url), "at": now_iso(), **status}
        self.plane.topic.send_soon(key=fill_key(view.state_key, partition).encode(),
                                   value=json.dumps(record).encode())


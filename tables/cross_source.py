"""Cross-source inputs: views of other logs, read as of the scored event's time T.

A model's ``inputs`` (``ModelSpec``) are views computed from logs other than
the scored one.  Their value for an event at time T is the point-in-time
value (DESIGN.md, ``tables.point_in_time``): the entity's applied events of
the view's *published* log with time in ``[floor(T - W, H), T]`` (an event at
exactly T counts), applied in (event time, partition, offset) order.  A view
on a re-keyed log (``arrivals.by_carrier``) reads its parent's log, grouped by
the view's entity: the parent's decisions (late, duplicate) are the ones that
count.

``CrossLog`` is the one implementation, online (the worker's replica of the
logs, ``agents.cross_replica``) and offline (the training set): fed the same
records, it answers the same values, bit for bit.

Watermark of a partition: the earliest event time it may still apply,
``newest applied event time - allowed lateness`` (any later event older than
that is late, never applied), raised by a watermark marker
(``tables.log_record.WATERMARK_HEADER``) whose publisher promises that no
earlier event follows.  A read as of T is *final* when every partition that
may hold the entity's events has a watermark strictly greater than T: no
event at or before T can be applied afterwards.  An applied event that
breaks a marker's promise (older than it) is left out of cross-source reads,
online and offline alike, so reads made final by the marker stay true.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable

from tables.dsl import FeatureView, Source
from tables.log_record import LogRecord
from tables.partitioning import key_partition
from tables.processor import APPLIED, SourceProcessor, Stores
from tables.replay import take
from tables.state import decode_view_state, encode_view_state
from tables.windows import State, ViewWindows

if TYPE_CHECKING:
    from tables.definitions import Definitions


@dataclass(order=True, frozen=True)
class _Event:
    time_ms: int
    partition: int
    offset: int
    record: dict[str, Any] = field(compare=False)


@dataclass
class _Cursor:
    """An entity's state with the first ``applied`` events (in time order) applied, last read at ``at_ms``."""

    state: State
    applied: int
    at_ms: int


@dataclass(frozen=True)
class _Checkpoint:
    """A cursor's state, encoded (the state codec), to go back to without applying from the start."""

    state: bytes
    applied: int
    at_ms: int


# A read earlier than the last one (an out-of-order event) resumes from the latest checkpoint
# before it: one every so many applied events, the newest few kept.
CHECKPOINT_EVERY = 32
CHECKPOINTS_KEPT = 16


def root_of(view: FeatureView) -> str:
    """The published log a view's events come from (a re-keyed log's parent)."""
    return view.source.parent or view.source.name


class CrossLog:
    """One published log's applied events, readable as of any time, and its partitions' watermarks."""

    def __init__(self, source: Source, own_views: list[FeatureView], read_views: list[FeatureView],
                 partitions: int, max_payload_bytes: int) -> None:
        # The log's own views decide as the owner does (a pruned history makes an event late).
        self.source = source
        self.processor = SourceProcessor(source, own_views)
        self.stores = Stores.in_memory(self.processor.views)
        self.partitions = partitions
        self.max_payload_bytes = max_payload_bytes
        self.views = {v.ref: v for v in read_views}
        self.windows = {v.ref: ViewWindows(v, v.source.lateness_ms) for v in read_views}
        self.events: dict[tuple[str, str], list[_Event]] = {}
        self.cursors: dict[tuple[str, str], _Cursor] = {}
        self.checkpoints: dict[tuple[str, str], list[_Checkpoint]] = {}
        self.newest: dict[int, int] = {}  # partition -> newest applied event time
        self.promised: dict[int, int] = {}  # partition -> highest watermark marker
        self.broken = 0  # applied events older than a marker's promise: not read

    def feed(self, record: LogRecord) -> None:
        partition = record.partition
        if record.watermark_ms is not None:
            self.promised[partition] = max(self.promised.get(partition, record.watermark_ms), record.watermark_ms)
        checked, outcome, _ = take(self.processor, self.stores, record, self.max_payload_bytes)
        if checked is None or outcome is None or outcome.status != APPLIED:
            return
        time_ms = outcome.time_ms
        if time_ms > self.newest.get(partition, time_ms - 1):
            self.newest[partition] = time_ms
        if time_ms < self.promised.get(partition, time_ms):
            self.broken += 1
            return
        for ref, view in self.views.items():
            entity = checked.record.get(view.entity)
            if entity is None:
                continue
            key = (ref, str(entity))
            events = self.events.setdefault(key, [])
            event = _Event(time_ms, partition, record.offset, checked.record)
            at = bisect.bisect_right(events, event)
            events.insert(at, event)
            cursor = self.cursors.get(key)
            if cursor is not None and at < cursor.applied:  # only after a read that was not final
                del self.cursors[key]
            kept = self.checkpoints.get(key)
            if kept and at < kept[-1].applied:
                self.checkpoints[key] = [c for c in kept if c.applied <= at]

    def feed_all(self, records: Iterable[LogRecord]) -> "CrossLog":
        for record in records:
            self.feed(record)
        return self

    def watermark(self, partition: int) -> int | None:
        """The earliest event time ``partition`` may still apply (None: nothing known yet)."""
        newest = self.newest.get(partition)
        marks = [m for m in (None if newest is None else newest - self.source.lateness_ms,
                             self.promised.get(partition)) if m is not None]
        return max(marks) if marks else None

    def partitions_of(self, view: FeatureView, entity: str) -> list[int]:
        """The partitions that may hold ``entity``'s events for ``view``: its own when the
        log is keyed by the view's entity, every one otherwise."""
        if view.entity == self.source.key:
            return [key_partition(entity, self.partitions)]
        return list(range(self.partitions))

    def bound(self, ref: str, entity: str) -> int | None:
        """The lowest watermark of the partitions that may hold ``entity``'s events (None: one is unknown)."""
        marks = [self.watermark(p) for p in self.partitions_of(self.views[ref], entity)]
        return None if None in marks else min(m for m in marks if m is not None)

    def final(self, ref: str, entity: str, at_ms: int) -> bool:
        """No event at or before ``at_ms`` can still be applied for ``entity``."""
        bound = self.bound(ref, entity)
        return bound is not None and bound > at_ms

    def read(self, ref: str, entity: str, at_ms: int) -> dict[str, Any]:
        """The view's values for ``entity`` as of ``at_ms`` by the point-in-time rule."""
        key = (ref, entity)
        windows = self.windows[ref]
        events = self.events.get(key, [])
        cursor = self.cursors.get(key)
        if cursor is None or at_ms < cursor.at_ms:  # reads mostly move forward: rebuilt only when one goes back
            cursor = self.cursors[key] = self._resume(key, at_ms)
        kept = self.checkpoints.setdefault(key, [])
        while cursor.applied < len(events) and events[cursor.applied].time_ms <= at_ms:
            if cursor.applied % CHECKPOINT_EVERY == 0 and (not kept or kept[-1].applied < cursor.applied):
                # taken between two events of different times only: then every event at or
                # before the checkpoint's time is in it, so any read from that time on may resume here
                if cursor.applied == 0 or events[cursor.applied - 1].time_ms < events[cursor.applied].time_ms:
                    kept.append(_Checkpoint(encode_view_state(cursor.state), cursor.applied,
                                            events[cursor.applied - 1].time_ms if cursor.applied else -1))
                    del kept[:-CHECKPOINTS_KEPT]
            event = events[cursor.applied]
            windows.apply(cursor.state, event.record, event.time_ms)
            cursor.applied += 1
        cursor.at_ms = at_ms
        return windows.values(cursor.state, at_ms)

    def _resume(self, key: tuple[str, str], at_ms: int) -> _Cursor:
        """A cursor at the latest checkpoint not after ``at_ms`` (a new state when there is none)."""
        for checkpoint in reversed(self.checkpoints.get(key, [])):
            if checkpoint.at_ms <= at_ms:
                return _Cursor(decode_view_state(checkpoint.state), checkpoint.applied, checkpoint.at_ms)
        return _Cursor(self.windows[key[0]].new_state(), 0, at_ms)


@dataclass(frozen=True)
class CrossRead:
    """What a model's cross-source inputs read for one event: values and whether they are final."""

    values: dict[str, dict[str, Any]]  # view ref -> feature values
    complete: bool


def read_inputs(logs: dict[str, CrossLog], views: list[FeatureView], record: dict[str, Any],
                at_ms: int) -> CrossRead:
    """The inputs ``views`` for the event ``record`` at ``at_ms``, from the logs by root name."""
    values: dict[str, dict[str, Any]] = {}
    complete = True
    for view in views:
        log = logs[root_of(view)]
        entity = record.get(view.entity)
        if entity is None:
            values[view.ref] = log.windows[view.ref].values(None, at_ms)
            continue
        complete = complete and log.final(view.ref, str(entity), at_ms)
        values[view.ref] = log.read(view.ref, str(entity), at_ms)
    return CrossRead(values, complete)


def inputs_final(logs: dict[str, CrossLog], views: list[FeatureView], record: dict[str, Any], at_ms: int,
                 bounds: dict[tuple[str, str], int | None]) -> bool:
    """Every input of the event is final at ``at_ms`` (the hold's release test); ``bounds``:
    the entities' bounds found so far, reused while the logs stay as they are."""
    for view in views:
        entity = record.get(view.entity)
        if entity is None:
            continue
        key = (view.ref, str(entity))
        if key not in bounds:
            bounds[key] = logs[root_of(view)].bound(view.ref, str(entity))
        bound = bounds[key]
        if bound is None or bound <= at_ms:
            return False
    return True


def empty_logs(definitions: "Definitions", views: list[FeatureView], partitions: int,
               max_payload_bytes: int) -> dict[str, CrossLog]:
    """One empty ``CrossLog`` per published log ``views`` read, by its name."""
    logs: dict[str, CrossLog] = {}
    for root in dict.fromkeys(root_of(v) for v in views):
        source = definitions.source(root)
        logs[root] = CrossLog(source, definitions.views_of(root), [v for v in views if root_of(v) == root],
                              partitions, max_payload_bytes)
    return logs

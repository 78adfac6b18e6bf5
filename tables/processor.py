"""Applies one partition's log, in order, to the views of a source.

This is the single implementation of "what happens to an event": the online
agent calls it with the partition store (through write-behind) as stores, the offline replay with plain
dicts.  Every decision (late, duplicate, applied) depends only on log order
and on what the stores hold, so replay reproduces the online decisions.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, MutableMapping

from tables.dsl import FeatureView, Source
from tables.encoded_mapping import EncodedMapping
from tables.state import (
    APPLIED, DUPLICATE, INVALID, LATE, LaneClock, PartitionClock, ViewState, decode_clock, decode_ids,
    decode_view_state, encode_clock, encode_ids, encode_view_state,
)
from tables.windows import ViewWindows, floor_to

# Duplicate detection looks up the event id in a per-minute bucket of its own
# event time: a re-sent event carries the same time, and buckets older than
# the lateness are dropped as the watermark passes them.
DEDUP_BUCKET_MS = 60_000

__all__ = ["APPLIED", "DUPLICATE", "INVALID", "LATE", "EntityRead", "Outcome", "SourceProcessor", "Stores", "forward_key",
           "stream_time"]


@dataclass
class Outcome:
    status: str
    time_ms: int
    # view ref -> feature values served for this event (before it is applied);
    # only views live on the partition (a view still being filled is absent)
    features: dict[str, dict[str, Any]] = field(default_factory=dict)
    # re-keyed logs this applied event goes to (those live on the partition)
    forwards: list[str] = field(default_factory=list)


@dataclass
class EntityRead:
    """What the views serve for one entity at one time: see ``SourceProcessor.read``."""

    entity: str
    time_ms: int
    values: dict[str, dict[str, Any]]  # view ref -> feature values, servable views only
    states: dict[str, ViewState | None]  # view ref -> the state they were read from (None: no history)
    filling: list[FeatureView]  # asked-for views not servable on the partition yet

    def filling_refs(self) -> list[str]:
        return [v.ref for v in self.filling]


@dataclass
class Stores:
    """Where state lives: the partition store online, dicts offline."""

    views: dict[str, MutableMapping[str, ViewState]]  # view.state_key -> entity -> state
    clocks: MutableMapping[str, PartitionClock]  # "<source>:<partition>" -> clock
    seen: MutableMapping[str, list[Any]]  # "<source>:<partition>:<lane>:<bucket>" -> event ids

    @classmethod
    def in_memory(cls, views: list[FeatureView]) -> "Stores":
        return cls(views={v.state_key: {} for v in views}, clocks={}, seen={})

    @classmethod
    def encoded(cls, views: dict[str, MutableMapping[str, bytes]], clocks: MutableMapping[str, bytes],
                seen: MutableMapping[str, bytes]) -> "Stores":
        """Stores over mappings of bytes (the partition store), through the state codec."""
        return cls(
            views={key: EncodedMapping(table, encode_view_state, decode_view_state) for key, table in views.items()},
            clocks=EncodedMapping(clocks, encode_clock, decode_clock),
            seen=EncodedMapping(seen, encode_ids, decode_ids),
        )


class SourceProcessor:
    """Decides and applies, one record at a time, in log order.

    A partition's clock keeps one *lane* per upstream partition: a source's
    own topic has a single lane; a re-keyed log interleaves the partitions of
    its parent, each in order, so lateness and duplicates are judged per lane
    (never against a faster lane) and tiles are kept back to the slowest lane.
    """

    def __init__(self, source: Source, views: list[FeatureView], forwards: tuple[str, ...] = ()) -> None:
        self.source = source
        self.views = [v for v in views if v.source.name == source.name]
        # Re-keyed logs fed from this source: like views, each is live on a
        # partition from an offset, and one added later needs its history.
        self.forwards = forwards
        self.windows = {v.state_key: ViewWindows(v, source.history_ms) for v in self.views}

    def process(
        self, stores: Stores, partition: int, record: dict[str, Any], time_ms: int, lane: int | None = None,
        offset: int | None = None,
    ) -> Outcome:
        clock_key = self.clock_key(partition)
        clock = self._clock(stores, clock_key, offset)
        lane_key = "-" if lane is None else str(lane)
        lane_clock = clock.lanes.setdefault(lane_key, LaneClock())
        outcome = self._decide(stores, f"{clock_key}:{lane_key}", clock, lane_clock, record, time_ms)
        clock.counts.add(outcome.status)
        clock.offset = offset
        if outcome.status == APPLIED and (lane_clock.max is None or time_ms > lane_clock.max):
            self._advance(stores, f"{clock_key}:{lane_key}", lane_clock, time_ms)
        stores.clocks[clock_key] = clock
        return outcome

    def reject(self, stores: Stores, partition: int, offset: int | None = None) -> None:
        """Count a record that failed validation, so ``in = applied + rejected``."""
        clock_key = self.clock_key(partition)
        clock = self._clock(stores, clock_key, offset)
        clock.counts.add(INVALID)
        clock.offset = offset
        stores.clocks[clock_key] = clock

    def read(
        self, stores: Stores, clock: PartitionClock | None, entity: str, time_ms: int,
        views: list[FeatureView] | None = None,
    ) -> EntityRead:
        """The feature values of ``views`` (default: all) for ``entity`` at ``time_ms``.

        History only: an event at ``time_ms`` is not applied, so this is what
        that event is served (tiles in ``[floor(t - W, H), tile(t)]``).  The one
        read behind the stream, ``GET /features`` and ``POST /score``.  ``clock``
        is the entity's partition clock; a view not live on it (still being
        filled) gets no values and is listed in ``filling``."""
        pending = {v.state_key for v in self.pending(clock)}
        read = EntityRead(entity, time_ms, {}, {}, [])
        for view in self.views if views is None else views:
            if view.state_key in pending:
                read.filling.append(view)
                continue
            state = stores.views[view.state_key].get(entity)
            read.states[view.ref] = state
            read.values[view.ref] = self.windows[view.state_key].values(state, time_ms)
        return read

    def clock_key(self, partition: int) -> str:
        return f"{self.source.name}:{partition}"

    def pending(self, clock: PartitionClock | None) -> list[FeatureView]:
        """Views defined but not yet filled on a partition that has history.

        A partition seen for the first time starts every view at once; a view
        added later must be filled from the log before it is applied (backfill).
        A clock from before live views were recorded has its established
        (bare-named) versions live."""
        if clock is None:
            return []
        live = self.live_of(clock)
        return [v for v in self.views if v.state_key not in live]

    def pending_forwards(self, clock: PartitionClock | None) -> list[str]:
        """Re-keyed logs this partition does not feed yet (their history is still to be written)."""
        if clock is None:
            return []
        live = self.live_of(clock)
        return [d for d in self.forwards if forward_key(d) not in live]

    def live_of(self, clock: PartitionClock) -> dict[str, int]:
        """What is live on a partition, and from which offset."""
        live = clock.live
        if live is None:
            # Written before live views were recorded, when a view had one
            # version and every re-keyed log was fed from the start: the
            # established versions are live, newer ones are to be filled.
            live = {v.state_key: 0 for v in self.views if v.ref == v.name}
            live.update({forward_key(d): 0 for d in self.forwards})
        return live

    def touch(self, stores: Stores, partition: int, offset: int) -> None:
        """Take a record that is not an event (a backfill marker): only its offset counts."""
        clock_key = self.clock_key(partition)
        if stores.clocks.get(clock_key) is not None:
            clock = self._clock(stores, clock_key, offset)
            clock.offset = offset
            stores.clocks[clock_key] = clock

    def _clock(self, stores: Stores, clock_key: str, offset: int | None) -> PartitionClock:
        clock = stores.clocks.get(clock_key)
        if clock is None:
            return PartitionClock(live={key: offset or 0 for key in self._live_keys()})
        clock.live = self.live_of(clock)
        return clock

    def _live_keys(self) -> list[str]:
        return [v.state_key for v in self.views] + [forward_key(d) for d in self.forwards]

    def _decide(
        self, stores: Stores, lane_key: str, clock: PartitionClock, lane_clock: LaneClock,
        record: dict[str, Any], time_ms: int,
    ) -> Outcome:
        if lane_clock.max is not None and time_ms < lane_clock.max - self.source.lateness_ms:
            return Outcome(LATE, time_ms)

        bucket_key = f"{lane_key}:{floor_to(time_ms, DEDUP_BUCKET_MS)}"
        ids = stores.seen.get(bucket_key) or []
        event_id = record[self.source.id_field]
        if event_id in ids:
            return Outcome(DUPLICATE, time_ms)

        read = self.read(stores, clock, str(record[self.source.key]), time_ms)
        if any(not self.windows[v.state_key].can_apply(read.states[v.ref], time_ms) for v in self.views
               if v.ref in read.states):
            # Older than the history the entity still keeps (only possible when a
            # lane first shows up far behind the others): applying it would
            # serve values from pruned tiles.
            return Outcome(LATE, time_ms)
        stores.seen[bucket_key] = [*ids, event_id]

        # Tiles a future record can need reach back to the slowest lane.  A lane
        # whose first record was rejected (late for the entity's history) has
        # applied nothing and holds no tiles back.
        low_watermark = min(
            time_ms if c is lane_clock and (c.max is None or time_ms > c.max) else c.max
            for c in clock.lanes.values() if c is lane_clock or c.max is not None
        )
        live = self.live_of(clock)
        outcome = Outcome(APPLIED, time_ms, read.values, [d for d in self.forwards if forward_key(d) in live])
        for view in self.views:
            if view.ref not in read.states:
                continue  # still being filled
            windows = self.windows[view.state_key]
            state = read.states[view.ref]
            stores.views[view.state_key][read.entity] = windows.apply(
                state or windows.new_state(), record, time_ms, low_watermark
            )
        return outcome

    def _advance(self, stores: Stores, lane_key: str, lane_clock: LaneClock, time_ms: int) -> None:
        """Move the lane's clock forward and drop the dedup buckets it passed."""
        horizon = floor_to(time_ms - self.source.lateness_ms, DEDUP_BUCKET_MS)
        if lane_clock.pruned is not None:
            # No bucket lies past the previous maximum, so the sweep is bounded
            # by the lateness even when event time jumps ahead by days.
            end = min(horizon, floor_to(lane_clock.max, DEDUP_BUCKET_MS) + DEDUP_BUCKET_MS)
            for bucket in range(lane_clock.pruned, end, DEDUP_BUCKET_MS):
                stores.seen.pop(f"{lane_key}:{bucket}", None)
        lane_clock.max = time_ms
        lane_clock.pruned = horizon


def forward_key(derived: str) -> str:
    """A re-keyed log's entry in a clock's ``live`` map (view entries are state keys)."""
    return f"fwd:{derived}"


def stream_time(clock: PartitionClock | None) -> int | None:
    """The newest event time a partition has applied (over all its lanes)."""
    if clock is None:
        return None
    return max((c.max for c in clock.lanes.values() if c.max is not None), default=None)

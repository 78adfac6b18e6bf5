"""Applies one partition's log, in order, to the views of a source.

This is the single implementation of "what happens to an event": the online
agent calls it with Faust tables as stores, the offline replay with plain
dicts.  Every decision (late, duplicate, applied) depends only on log order
and on what the stores hold, so replay reproduces the online decisions.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, MutableMapping

from tables.dsl import FeatureView, Source
from tables.windows import ViewWindows, floor_to

# Duplicate detection looks up the event id in a per-minute bucket of its own
# event time: a re-sent event carries the same time, and buckets older than
# the lateness are dropped as the watermark passes them.
DEDUP_BUCKET_MS = 60_000

APPLIED, LATE, DUPLICATE, INVALID = "applied", "late", "duplicate", "invalid"


@dataclass
class Outcome:
    status: str
    time_ms: int
    # view name -> feature values served for this event (before it is applied)
    features: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class Stores:
    """Where state lives: Faust tables online, dicts offline."""

    views: dict[str, MutableMapping[str, Any]]  # view.state_key -> entity -> state
    # "<source>:<partition>" -> {"max": ms, "pruned": ms, "counts": {status: n}}
    clocks: MutableMapping[str, Any]
    seen: MutableMapping[str, Any]  # "<source>:<partition>:<bucket>" -> [event ids]

    @classmethod
    def in_memory(cls, views: list[FeatureView]) -> "Stores":
        return cls(views={v.state_key: {} for v in views}, clocks={}, seen={})


class SourceProcessor:
    def __init__(self, source: Source, views: list[FeatureView]) -> None:
        self.source = source
        self.views = [v for v in views if v.source.name == source.name]
        self.windows = {v.state_key: ViewWindows(v, source.lateness_ms) for v in self.views}

    def process(self, stores: Stores, partition: int, record: dict[str, Any], time_ms: int) -> Outcome:
        clock_key = self.clock_key(partition)
        clock = self._clock(stores, clock_key)
        outcome = self._decide(stores, clock_key, clock, record, time_ms)
        clock["counts"][outcome.status] += 1
        if outcome.status == APPLIED and (clock["max"] is None or time_ms > clock["max"]):
            self._advance(stores, clock_key, clock, time_ms)
        stores.clocks[clock_key] = clock
        return outcome

    def reject(self, stores: Stores, partition: int) -> None:
        """Count a record that failed validation, so ``in = applied + rejected``."""
        clock_key = self.clock_key(partition)
        clock = self._clock(stores, clock_key)
        clock["counts"][INVALID] += 1
        stores.clocks[clock_key] = clock

    def clock_key(self, partition: int) -> str:
        return f"{self.source.name}:{partition}"

    @staticmethod
    def _clock(stores: Stores, clock_key: str) -> dict[str, Any]:
        return stores.clocks.get(clock_key) or {
            "max": None,
            "pruned": None,
            "counts": {APPLIED: 0, LATE: 0, DUPLICATE: 0, INVALID: 0},
        }

    def _decide(
        self, stores: Stores, clock_key: str, clock: dict[str, Any], record: dict[str, Any], time_ms: int
    ) -> Outcome:
        if clock["max"] is not None and time_ms < clock["max"] - self.source.lateness_ms:
            return Outcome(LATE, time_ms)

        bucket_key = f"{clock_key}:{floor_to(time_ms, DEDUP_BUCKET_MS)}"
        ids = stores.seen.get(bucket_key) or []
        event_id = record[self.source.id_field]
        if event_id in ids:
            return Outcome(DUPLICATE, time_ms)
        stores.seen[bucket_key] = [*ids, event_id]

        entity = str(record[self.source.key])
        outcome = Outcome(APPLIED, time_ms)
        for view in self.views:
            table = stores.views[view.state_key]
            windows = self.windows[view.state_key]
            state = table.get(entity)
            outcome.features[view.name] = windows.values(state, time_ms)
            table[entity] = windows.apply(state or windows.new_state(), record, time_ms)
        return outcome

    def _advance(self, stores: Stores, clock_key: str, clock: dict[str, Any], time_ms: int) -> None:
        """Move the partition clock forward and drop the dedup buckets it passed."""
        horizon = floor_to(time_ms - self.source.lateness_ms, DEDUP_BUCKET_MS)
        if clock["pruned"] is not None:
            # No bucket lies past the previous maximum, so the sweep is bounded
            # by the lateness even when event time jumps ahead by days.
            end = min(horizon, floor_to(clock["max"], DEDUP_BUCKET_MS) + DEDUP_BUCKET_MS)
            for bucket in range(clock["pruned"], end, DEDUP_BUCKET_MS):
                stores.seen.pop(f"{clock_key}:{bucket}", None)
        clock["max"] = time_ms
        clock["pruned"] = horizon

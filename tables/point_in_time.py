"""Point-in-time values: what a view held for an entity at an arbitrary time T.

Used for training sets and as-of reads.  The rule (DESIGN.md) aggregates the
entity's applied events with time in ``[floor(T - W, H), T]``.  Applying the
applied events in (event time, log order) and reading after every event up
to T gives exactly that with the same tile code: tile(T) then holds nothing
later than T, and the log-order tie-break for ``last`` is preserved.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any, Iterable

from tables.dsl import FeatureView
from tables.windows import State, ViewWindows


def as_of_values(
    view: FeatureView,
    applied: Iterable[tuple[dict[str, Any], int]],
    queries: list[tuple[str, int]],
) -> list[dict[str, Any]]:
    """``applied``: (record, time_ms) in log order, late and duplicate events
    already removed.  Returns one value dict per query, in query order."""
    windows = ViewWindows(view, view.source.lateness_ms)
    by_entity: dict[str, list[tuple[int, int, dict[str, Any]]]] = defaultdict(list)
    for position, (record, time_ms) in enumerate(applied):
        by_entity[str(record[view.entity])].append((time_ms, position, record))

    wanted: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for index, (entity, time_ms) in enumerate(queries):
        wanted[str(entity)].append((time_ms, index))

    results: list[dict[str, Any]] = [{} for _ in queries]
    for entity, asks in wanted.items():
        events = sorted(by_entity.get(entity, []), key=lambda e: (e[0], e[1]))
        state: State = windows.new_state()
        next_event = 0
        for time_ms, index in sorted(asks):
            while next_event < len(events) and events[next_event][0] <= time_ms:
                event_time, _, record = events[next_event]
                windows.apply(state, record, event_time)
                next_event += 1
            results[index] = windows.values(state, time_ms)
    return results

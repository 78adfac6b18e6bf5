"""Lanes of a re-keyed log (one per upstream partition) in the processor's clock."""
from __future__ import annotations

from tables.definitions import load
from tables.processor import APPLIED, SourceProcessor, Stores
from tables.state import LaneClock

T0 = 1_357_030_800_000  # 2013-01-01 09:00 UTC


def arrival(n: int, minutes: int) -> dict:
    return {"event_id": f"e{n}", "carrier": "UA", "dest": "ORD", "origin": "EWR", "arr_delay": 5.0 + n,
            "tailnum": "N1", "flight": n, "time_hour": "2013-01-01T09:00:00Z",
            "event_time": T0 + minutes * 60_000}


def test_a_lane_that_applied_nothing_does_not_stop_the_others() -> None:
    # 12 upstream partitions make 12 lanes: one whose first record was rejected keeps
    # a clock with no time, and the next record of any lane must still apply.
    definitions = load("tables.flights")
    source = definitions.source("arrivals.by_carrier")
    views = definitions.views_of(source.name)
    processor, stores = SourceProcessor(source, views), Stores.in_memory(views)
    first = processor.process(stores, 0, arrival(1, 0), T0, lane=0, offset=0)
    assert first.status == APPLIED
    stores.clocks[processor.clock_key(0)].lanes["7"] = LaneClock()  # what a rejected first record leaves
    second = processor.process(stores, 0, arrival(2, 5), T0 + 5 * 60_000, lane=0, offset=1)
    assert second.status == APPLIED

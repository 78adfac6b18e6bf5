"""Write-behind: applying a partition's events in memory and flushing each
changed key once per batch serves exactly what per-event writes serve, and
leaves exactly the state a replay leaves, wherever the flushes fall."""
from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tables.processor import SourceProcessor, Stores
from tables.state import decode_clock, decode_view_state
from tables.write_behind import DELETED, Overlay, WriteBehind
from tests.test_aggregations_property import SOURCE, VIEW, streams


@st.composite
def batched_streams(draw: st.DrawFn) -> tuple[list[dict], set[int]]:
    events = draw(streams())
    # re-sent events: the same id and time again, later in the log
    for _ in range(draw(st.integers(0, 5))):
        events.insert(draw(st.integers(0, len(events))), dict(draw(st.sampled_from(events))))
    flush_after = set(draw(st.lists(st.integers(0, len(events) - 1), max_size=len(events))))
    return events, flush_after


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batched_streams())
def test_flushing_anywhere_serves_and_stores_what_per_event_writes_do(case) -> None:
    events, flush_after = case
    processor = SourceProcessor(SOURCE, [VIEW])
    per_event = Stores.encoded(views={VIEW.state_key: {}}, clocks={}, seen={})
    tables = {"views": {VIEW.state_key: {}}, "clocks": {}, "seen": {}}
    batched = WriteBehind(Stores.encoded(views=tables["views"], clocks=tables["clocks"], seen=tables["seen"]))
    every_event = WriteBehind(Stores.in_memory([VIEW]))
    writes = per_event_writes = 0
    for offset, event in enumerate(events):
        expected = processor.process(per_event, 0, event, event["t"], offset=offset)
        assert processor.process(batched.stores, 0, event, event["t"], offset=offset) == expected
        processor.process(every_event.stores, 0, event, event["t"], offset=offset)
        per_event_writes += every_event.flush().keys
        if offset in flush_after:
            writes += batched.flush().keys
    writes += batched.flush().keys
    # each key at most once per flush: never more writes than flushing after every event
    assert writes <= per_event_writes
    raw = tables["views"][VIEW.state_key]
    assert {e: decode_view_state(b) for e, b in raw.items()} == dict(per_event.views[VIEW.state_key].items())
    assert {k: decode_clock(b) for k, b in tables["clocks"].items()} == dict(per_event.clocks.items())
    assert set(tables["seen"]) == set(per_event.seen)


def test_overlay_reads_its_own_writes_and_deletes() -> None:
    backing = {"a": 1, "b": 2}
    overlay: Overlay[int] = Overlay(backing)
    overlay["a"] = 10
    overlay["c"] = 3
    assert overlay.pop("b") == 2 and overlay.pop("b") is None and "b" not in overlay
    assert overlay["a"] == 10 and overlay.get("c") == 3 and sorted(overlay) == ["a", "c"]
    assert backing == {"a": 1, "b": 2}  # nothing written before the flush
    assert overlay.flush() == {"a": 10, "c": 3, "b": DELETED}
    assert backing == {"a": 10, "c": 3} and overlay.dirty == {}


class CountingReads(dict):
    def __init__(self, *args: object) -> None:
        super().__init__(*args)
        self.reads = 0

    def get(self, key, default=None):  # type: ignore[no-untyped-def, override]
        self.reads += 1
        return super().get(key, default)


def test_a_flushed_or_read_value_is_kept_live_and_never_read_back() -> None:
    backing = CountingReads({"a": [1]})
    overlay: Overlay[list] = Overlay(backing, keep=2)
    first = overlay.get("a")
    assert overlay.get("a") is first and backing.reads == 1  # read once, then kept
    overlay["b"] = [2]
    overlay.flush()
    assert overlay.get("b") == [2] and backing.reads == 1  # flushed: kept as the object
    del overlay["a"]
    overlay.flush()
    assert "a" not in overlay and overlay.get("a") is None and "a" not in backing
    overlay["c"], overlay["d"] = [3], [4]
    overlay.flush()
    assert len(overlay.clean) <= 2 and overlay.get("b") == [2]  # bounded: older values read back

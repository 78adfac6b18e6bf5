"""The state codec is lossless, so when a state is written (every event, or
once per flush) never changes a value served; and it reads what earlier
builds wrote."""
from __future__ import annotations

import json
import math

import msgspec

from hypothesis import HealthCheck, given, settings

from tables.processor import SourceProcessor, Stores
from tables.state import (
    Counts, LaneClock, PartitionClock, Tile, ViewState, decode_clock, decode_ids, decode_view_state, encode_clock,
    encode_ids, encode_view_state,
)
from tests.test_aggregations_property import SOURCE, VIEW, streams


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams())
def test_every_state_a_stream_leaves_round_trips_exactly(events) -> None:
    processor = SourceProcessor(SOURCE, [VIEW])
    plain = Stores.in_memory([VIEW])
    encoded = Stores.encoded(views={VIEW.state_key: {}}, clocks={}, seen={})
    windows = processor.windows[VIEW.state_key]
    for offset, event in enumerate(events):
        a = processor.process(plain, 0, event, event["t"], offset=offset)
        b = processor.process(encoded, 0, event, event["t"], offset=offset)
        assert a == b
    for entity, state in plain.views[VIEW.state_key].items():
        assert decode_view_state(encode_view_state(state)) == state
        assert encoded.views[VIEW.state_key][entity] == state
        assert windows.values(encoded.views[VIEW.state_key][entity], events[-1]["t"]) == windows.values(state, events[-1]["t"])
    clock = plain.clocks[processor.clock_key(0)]
    assert decode_clock(encode_clock(clock)) == clock == encoded.clocks[processor.clock_key(0)]


def test_infinities_and_nan_survive() -> None:
    state = ViewState(seq=3, max_time=5, horizon=-10, life=[math.inf, [-math.inf, 2]],
                      tiles={60_000: {0: Tile([1e308, 7], 5)}})
    back = decode_view_state(encode_view_state(state))
    assert back.life[0] == math.inf and back.life[1][0] == -math.inf and back.tiles == state.tiles
    nan = decode_view_state(encode_view_state(ViewState(life=[math.nan])))
    assert math.isnan(nan.life[0])


def test_reads_the_shapes_earlier_builds_wrote() -> None:
    old_state = {"seq": 2, "max_time": 120_000, "horizon": 0, "life": [2],
                 "tiles": {"60000": {"60000": [1, 3.5, 120_000]}}}
    state = decode_view_state(json.dumps(old_state).encode())
    assert state == ViewState(2, 120_000, 0, [2], {60_000: {60_000: Tile([1, 3.5], 120_000)}})
    assert msgspec.msgpack.decode(encode_view_state(state)) == old_state
    old_clock = {"lanes": {"-": {"max": 9, "pruned": 1}}, "counts": {"applied": 4, "late": 1, "duplicate": 0, "invalid": 2}}
    clock = decode_clock(json.dumps(old_clock).encode())
    assert clock == PartitionClock({"-": LaneClock(9, 1)}, Counts(4, 1, 0, 2), None, None)
    assert msgspec.msgpack.decode(encode_clock(clock)) == {**old_clock, "offset": None}


def test_an_integer_beyond_64_bits_is_kept_as_json() -> None:
    ids = [2**70, "a"]
    raw = encode_ids(ids)
    assert raw.startswith(b"[") and decode_ids(raw) == ids
    assert decode_ids(encode_ids(["a", 1.5])) == ["a", 1.5]

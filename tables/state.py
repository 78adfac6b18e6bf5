"""The typed state the engine keeps, and its one codec.

Online the state sits in the partition store and its changelog as bytes,
offline in plain dicts as these objects.  The codec is lossless
(``decode(encode(x)) == x``): MessagePack (msgspec) keeps every float,
``inf`` and ``nan`` included, which JSON encoders other than the standard
module's turn into null, and is several times faster than the json module.
A value MessagePack cannot hold (an integer beyond 64 bits, in an event id)
is written as JSON, which decoding tells apart by its first byte, as it does
the JSON earlier builds wrote; the shapes are the same either way.

- ``PartitionClock`` per ``<source>:<partition>``: the lanes' newest and
  pruned event times, outcome counts, the last offset taken, and from which
  offset each view version (and re-keyed log) is live;
- ``ViewState`` per (view version, entity): the hop-aligned tiles of partial
  aggregates (see ``tables.windows``);
- seen ids per ``<source>:<partition>:<lane>:<minute bucket>``: a list of event ids.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import msgspec

APPLIED, LATE, DUPLICATE, INVALID = "applied", "late", "duplicate", "invalid"
STATUSES = (APPLIED, LATE, DUPLICATE, INVALID)


_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder()
_JSON_START = (b"{", b"[")  # a MessagePack map or array never starts with these bytes


def _dumps(value: Any) -> bytes:
    try:
        return _ENCODER.encode(value)
    except (OverflowError, TypeError):
        return json.dumps(value, separators=(",", ":")).encode()


def _loads(raw: bytes) -> Any:
    if raw[:1] in _JSON_START:
        return json.loads(raw)
    return _DECODER.decode(raw)


@dataclass(slots=True)
class LaneClock:
    max: int | None = None  # newest event time applied on the lane
    pruned: int | None = None  # dedup buckets before this are dropped


@dataclass(slots=True)
class Counts:
    applied: int = 0
    late: int = 0
    duplicate: int = 0
    invalid: int = 0

    def add(self, status: str) -> None:
        setattr(self, status, getattr(self, status) + 1)

    def as_dict(self) -> dict[str, int]:
        return {status: getattr(self, status) for status in STATUSES}


@dataclass(slots=True)
class PartitionClock:
    lanes: dict[str, LaneClock] = field(default_factory=dict)  # "-" is a source's own topic
    counts: Counts = field(default_factory=Counts)
    offset: int | None = None  # last offset taken (None offline from files, or written by an old build)
    # state key (or ``fwd:<log>``) -> first offset applied; None: written before this was recorded
    live: dict[str, int] | None = None


def encode_clock(clock: PartitionClock) -> bytes:
    body: dict[str, Any] = {
        "lanes": {lane: {"max": c.max, "pruned": c.pruned} for lane, c in clock.lanes.items()},
        "counts": clock.counts.as_dict(),
        "offset": clock.offset,
    }
    if clock.live is not None:
        body["live"] = clock.live
    return _dumps(body)


def decode_clock(raw: bytes) -> PartitionClock:
    body = _loads(raw)
    return PartitionClock(
        lanes={lane: LaneClock(c.get("max"), c.get("pruned")) for lane, c in body.get("lanes", {}).items()},
        counts=Counts(**{s: body.get("counts", {}).get(s, 0) for s in STATUSES}),
        offset=body.get("offset"),
        live=body.get("live"),
    )


@dataclass(slots=True)
class Tile:
    irs: list[Any]  # one intermediate representation per feature of the hop, in view order
    newest: int  # newest event time in the tile: as-of reads check it


@dataclass(slots=True)
class ViewState:
    seq: int = 0  # events applied so far: the log-order tie-breaker of ``last``
    max_time: int | None = None  # newest event time applied
    horizon: int | None = None  # oldest event time still applicable: tiles before it are pruned
    life: list[Any] = field(default_factory=list)  # lifetime features' IRs, in view order
    tiles: dict[int, dict[int, Tile]] = field(default_factory=dict)  # hop ms -> tile start ms -> tile


def encode_view_state(state: ViewState) -> bytes:
    return _dumps({
        "seq": state.seq, "max_time": state.max_time, "horizon": state.horizon, "life": state.life,
        "tiles": {str(hop): {str(start): [*tile.irs, tile.newest] for start, tile in tiles.items()}
                  for hop, tiles in state.tiles.items()},
    })


def decode_view_state(raw: bytes) -> ViewState:
    body = _loads(raw)
    return ViewState(
        seq=body["seq"], max_time=body.get("max_time"), horizon=body.get("horizon"), life=body.get("life", []),
        tiles={int(hop): {int(start): Tile(irs[:-1], irs[-1]) for start, irs in tiles.items()}
               for hop, tiles in body.get("tiles", {}).items()},
    )


def encode_ids(ids: list[Any]) -> bytes:
    return _dumps(ids)


def decode_ids(raw: bytes) -> list[Any]:
    return _loads(raw)

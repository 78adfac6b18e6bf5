"""What a worker's read process must know besides the state itself, written
by the worker into its partition store for that process to read.

A read of ``GET /features`` needs, beyond the partitions' flushed state:
whether the worker is ready, who owns each partition (routing), which
partitions this worker has restored, and the control state that decides the
serving version of a view and whether it is still filling.  The worker
writes all of it as one record (``ServingSnapshot``) into the same RocksDB
the state is flushed to, whenever it changes and at least every second;
the read process (``app.reader``) follows that store as a RocksDB secondary
instance, so it sees a snapshot and the state through one mechanism.
"""
from __future__ import annotations

import time
from typing import Union

import msgspec

from agents.control_plane import ControlState
from agents.control_records import FillStatus, HistoryWritten, ViewCutover
from agents.placement import Placement
from agents.source_runtime import SourceRuntime
from kafka_plumbing.partition_store import PartitionStore
from tables.definitions import Definitions

META_KEY = "serving"
STALE_MS = 15_000  # a snapshot this old: the worker is hung or gone, its reads are not answered
REFRESH_MS = 1_000

ControlRecord = Union[ViewCutover, FillStatus, HistoryWritten]


class ServingSnapshot(msgspec.Struct, kw_only=True):
    written_ms: int  # wall clock: only to tell a live worker from a hung one
    ready: bool
    url: str  # this worker's public URL
    owners: dict[str, dict[int, str]]  # topic -> partition -> owner's URL
    owned: dict[str, list[int]]  # source -> partitions restored here (reads answer)
    control: list[ControlRecord]  # view cut-overs, fill statuses, histories written

    def control_state(self, definitions: Definitions) -> ControlState:
        state = ControlState(definitions)
        for record in self.control:
            state.follow(record)
        return state

    def owner(self, topic: str, partition: int) -> str | None:
        return self.owners.get(topic, {}).get(partition)

    def fresh(self, now_ms: int) -> bool:
        return now_ms - self.written_ms < STALE_MS


_decoder = msgspec.json.Decoder(ServingSnapshot)


def decode(raw: bytes) -> ServingSnapshot:
    return _decoder.decode(raw)


def take(ready: bool, placement: Placement, sources: dict[str, SourceRuntime], control: ControlState) -> ServingSnapshot:
    records: list[ControlRecord] = [*control.views.values(), *control.fills.values(), *control.histories.values()]
    return ServingSnapshot(
        written_ms=int(time.time() * 1000), ready=ready, url=placement.url, owners=placement.owners,
        owned={name: sorted(source.state.partitions) for name, source in sources.items()}, control=records,
    )


class SnapshotWriter:
    """Writes the snapshot when it changes, and every ``REFRESH_MS`` so the reader knows the worker lives."""

    def __init__(self, store: PartitionStore) -> None:
        self.store = store
        self.last: bytes = b""
        self.last_ms = 0

    def write(self, snapshot: ServingSnapshot) -> None:
        body = msgspec.json.encode(msgspec.structs.replace(snapshot, written_ms=0))
        if body == self.last and snapshot.written_ms - self.last_ms < REFRESH_MS:
            return
        self.store.put_meta(META_KEY, msgspec.json.encode(snapshot))
        self.last, self.last_ms = body, snapshot.written_ms

"""A worker's local state, per log partition, backed by a changelog in Kafka.

The state of one partition of a log (a source's views, clock and seen ids)
lives under its own key prefix in one local RocksDB (rocksdict, raw bytes),
with the changelog offset it is applied through.  A flush of a partition is
written twice, each time atomically:

1. to the partition's changelog as ONE record batch (``write_changes``): a
   Kafka record batch is appended whole or not at all, so a changelog never
   holds half a flush, and compaction keeps the newest value of each key;
2. then locally as ONE RocksDB write batch, together with the changelog
   offset it goes through (``PartitionStore.apply``).

A worker killed between the two finds its local state one flush behind the
changelog; ``restore`` reads the changelog from the offset the local state is
applied through to its end, so a restart on the same data directory reads
only what it missed, an empty one reads everything, and a worker that gets a
partition back after another owned it reads what that one wrote.

It holds bytes and knows nothing of what they mean: encoding is the
engine's (``tables.state``).  Clients are passed in (built by the project's
client factory).
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Iterator, Mapping, MutableMapping

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from rocksdict import AccessType, Options, Rdict, WriteBatch

_SEP = b"\x1f"
_APPLIED = b"\x00applied" + _SEP
_META = b"\x00meta" + _SEP
_UNSET = object()


def store_path(data_dir: Path) -> Path:
    """Where a worker's partition store lives in its data directory."""
    return data_dir / "partition-state"


class ChangesTooLarge(ValueError):
    """A flush whose changes do not fit one record batch: flush smaller batches."""


def _prefix(log: str, partition: int) -> bytes:
    return log.encode() + _SEP + str(partition).encode() + _SEP


def _applied_key(log: str, partition: int) -> bytes:
    return _APPLIED + _prefix(log, partition)


class PartitionStore:
    def __init__(self, path: Path, secondary: Path | None = None) -> None:
        """The worker's store; with ``secondary``, a read-only follower of it in
        another process (RocksDB's secondary instance, its own files there),
        brought up to date by ``catch_up``."""
        options = Options(raw_mode=True)
        if secondary is None:
            path.mkdir(parents=True, exist_ok=True)
            options.create_if_missing(True)
            self.db = Rdict(str(path), options=options)
        else:
            options.set_max_open_files(-1)  # a secondary instance must keep every file open
            secondary.mkdir(parents=True, exist_ok=True)
            self.db = Rdict(str(path), options=options, access_type=AccessType.secondary(str(secondary)))
        # Called after every write: the worker's read process is told there is something to catch up with.
        self.on_write: Callable[[], None] | None = None

    def close(self) -> None:
        self.db.close()

    def _written(self) -> None:
        if self.on_write is not None:
            self.on_write()

    def catch_up(self) -> None:
        """A secondary instance: see every write the worker has made so far (about 1 ms)."""
        self.db.try_catch_up_with_primary()

    def put_meta(self, name: str, value: bytes) -> None:
        """A small value about the worker (not partition state), for its read process."""
        self.db[_META + name.encode()] = value
        self._written()

    def get_meta(self, name: str) -> bytes | None:
        return self.db.get(_META + name.encode())

    def get(self, log: str, partition: int, key: bytes) -> bytes | None:
        return self.db.get(_prefix(log, partition) + key)

    def applied(self, log: str, partition: int) -> int | None:
        """The last changelog offset this partition's local state includes."""
        raw = self.db.get(_applied_key(log, partition))
        return None if raw is None else int(raw)

    def apply(self, log: str, partition: int, changes: Mapping[bytes, bytes | None], through: int) -> None:
        """Write a flush (None deletes a key) and the changelog offset it goes through, atomically."""
        prefix = _prefix(log, partition)
        batch = WriteBatch(raw_mode=True)
        for key, value in changes.items():
            if value is None:
                batch.delete(prefix + key)
            else:
                batch.put(prefix + key, value)
        batch.put(_applied_key(log, partition), str(through).encode())
        self.db.write(batch)
        self._written()

    def keys(self, log: str, partition: int) -> Iterator[bytes]:
        prefix = _prefix(log, partition)
        for key in self.db.keys(from_key=prefix):
            if not key.startswith(prefix):
                break
            yield key[len(prefix):]

    def drop(self, log: str, partition: int) -> None:
        """Forget a partition's local state (it is rebuilt from the changelog)."""
        prefix = _prefix(log, partition)
        batch = WriteBatch(raw_mode=True)
        for key in list(self.keys(log, partition)):
            batch.delete(prefix + key)
        batch.delete(_applied_key(log, partition))
        self.db.write(batch)


class Namespace(MutableMapping[str, bytes]):
    """One table's keys in a partition's state, as a mapping of str to bytes.

    Writes are not applied here: they collect in ``changes`` (shared by the
    partition's namespaces, so one flush is one changelog batch and one local
    write), and reads see them until they are applied."""

    def __init__(self, store: PartitionStore, log: str, partition: int, name: str,
                 changes: dict[bytes, bytes | None]) -> None:
        self.store, self.log, self.partition = store, log, partition
        self.prefix = name.encode() + _SEP
        self.changes = changes

    def get(self, key: str, default: bytes | None = None) -> bytes | None:  # type: ignore[override]
        full = self.prefix + key.encode()
        # One lookup: the changes are cleared once applied, and the store has them by then.
        value = self.changes.get(full, _UNSET)
        if value is _UNSET:
            value = self.store.get(self.log, self.partition, full)
        return default if value is None else value  # type: ignore[return-value]

    def __getitem__(self, key: str) -> bytes:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def __setitem__(self, key: str, value: bytes) -> None:
        self.changes[self.prefix + key.encode()] = value

    def __delitem__(self, key: str) -> None:
        if key not in self:
            raise KeyError(key)
        self.changes[self.prefix + key.encode()] = None

    def __iter__(self) -> Iterator[str]:
        stored = set()
        for full in self.store.keys(self.log, self.partition):
            if full.startswith(self.prefix):
                stored.add(full)
                if self.changes.get(full, b"") is not None:
                    yield full[len(self.prefix):].decode()
        for full, value in list(self.changes.items()):
            if full.startswith(self.prefix) and full not in stored and value is not None:
                yield full[len(self.prefix):].decode()

    def __len__(self) -> int:
        return sum(1 for _ in self)


async def write_changes(producer: AIOKafkaProducer, topic: str, partition: int,
                        changes: Mapping[bytes, bytes | None]) -> int:
    """Append a flush to a changelog partition as one record batch; returns its last offset."""
    batch = producer.create_batch()
    for key, value in changes.items():
        if batch.append(key=key, value=value, timestamp=None) is None:
            raise ChangesTooLarge(f"{len(changes)} changes for {topic}:{partition} do not fit one record batch")
    count = batch.record_count()
    if count == 0:
        raise ValueError("no changes to write")
    future = await producer.send_batch(batch, topic, partition=partition)
    metadata = await future
    return metadata.offset + count - 1


async def restore(consumer: AIOKafkaConsumer, store: PartitionStore, log: str, topic: str, partition: int,
                  chunk: int = 5000, settle_s: float = 0.0) -> int:
    """Bring a partition's local state up to the end of its changelog; returns the records read.

    ``consumer`` has no group; it is assigned the changelog partition here,
    and nothing once done: an assigned consumer keeps a fetch waiting at the
    partition's end on the broker (``fetch_max_wait_ms``), and the next
    restore's requests queue behind it on the same connection: up to 0.5 s
    a partition at the default (a worker taking over 9 partitions took
    1.6 s to restore 492 records; 0.35 s with this and a short wait).

    ``settle_s``: with transactions, the end a read_committed consumer sees
    stops at the first open transaction, which can lie before the flushes
    this copy holds (a dead owner's, aborted when its transaction times
    out): wait this long for it to end before taking the copy for another
    history."""
    tp = TopicPartition(topic, partition)
    consumer.assign([tp])
    try:
        end = (await consumer.end_offsets([tp]))[tp]
        applied = store.applied(log, partition)
        deadline = time.monotonic() + settle_s
        while applied is not None and applied >= end and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            end = (await consumer.end_offsets([tp]))[tp]
        if applied is not None and applied >= end:
            # Ahead of its changelog: the topic was recreated, so this copy describes another history.
            store.drop(log, partition)
            applied = None
        start = 0 if applied is None else applied + 1
        if start >= end:
            return 0
        consumer.seek(tp, start)
        read = 0
        while True:
            batch = await consumer.getmany(tp, timeout_ms=1000, max_records=chunk)
            messages = batch.get(tp, [])
            if messages:
                store.apply(log, partition, {m.key: m.value for m in messages}, messages[-1].offset)
                read += len(messages)
            if await consumer.position(tp) >= end:
                return read
    finally:
        consumer.unsubscribe()

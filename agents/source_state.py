"""One source's state in a worker, per partition it owns: the agent's batch
in memory (write-behind) over the last flush in the local partition store.

All of a partition's state (every view of the source, its clock, its seen
ids) is one log in the partition store and one partition of one changelog
topic, so a flush is one Kafka record batch and one local write batch: a
kill at any moment leaves either all of a flush or none of it, and the
clock in it (with the offset of the last record it took) says exactly which
events the state holds.  Why not Faust tables: see docs/architecture.md.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer

from kafka_plumbing.partition_store import Namespace, PartitionStore, restore
from tables.dsl import FeatureView
from tables.processor import Stores
from tables.state import PartitionClock
from tables.write_behind import WriteBehind

log = logging.getLogger(__name__)


def state_log(source: str) -> str:
    """A source's state in the partition store (its key prefix)."""
    return f"state.{source}"


def partition_stores(store: PartitionStore, source: str, views: list[FeatureView], partition: int,
                     changes: dict[bytes, bytes | None] | None = None) -> Stores:
    """A partition's flushed state as the engine's ``Stores``: the store's
    values, with ``changes`` (a flush on its way into the store) over them."""
    pending: dict[bytes, bytes | None] = {} if changes is None else changes

    def namespace(name: str) -> Namespace:
        return Namespace(store, state_log(source), partition, name, pending)

    return Stores.encoded(
        views={v.state_key: namespace(f"view.{v.state_key}") for v in views},
        clocks=namespace("clock"), seen=namespace("seen"),
    )


@dataclass
class PartitionState:
    changes: dict[bytes, bytes | None]  # encoded by the last flush, not yet in the local store
    live: WriteBehind  # the agent's batch, over the store with ``changes`` on top
    written: Stores  # what reads see: flushes once written locally, as the read process sees them


class SourceState:
    def __init__(self, store: PartitionStore, source: str, views: list[FeatureView], changelog: str,
                 settle_s: float = 0.0) -> None:
        self.store = store
        self.log = state_log(source)
        self.source = source
        self.views = views
        self.changelog = changelog
        self.settle_s = settle_s  # how long a restore waits out an open transaction (exactly once)
        self.partitions: dict[int, PartitionState] = {}
        self.lock = asyncio.Lock()  # one restore at a time: they share the consumer

    def _open(self, partition: int) -> PartitionState:
        changes: dict[bytes, bytes | None] = {}
        backing = partition_stores(self.store, self.source, self.views, partition, changes)
        # Reads skip ``changes``: the worker's own reads and its read process's
        # (which follows the store) then answer alike, and /stats never counts
        # a flush a read cannot see yet.
        written = partition_stores(self.store, self.source, self.views, partition)
        return PartitionState(changes, WriteBehind(backing), written)

    def owns(self, partition: int) -> bool:
        """Restored and not revoked since: its state is this worker's to read and write."""
        return partition in self.partitions

    def live(self, partition: int) -> Stores:
        return self.partitions[partition].live.stores

    def flushed(self, partition: int) -> Stores:
        """The partition's flushes written locally: what reads see."""
        return self.partitions[partition].written

    def clock(self, partition: int, clock_key: str) -> PartitionClock | None:
        """The agent's clock of a partition (None when not owned or no event yet)."""
        state = self.partitions.get(partition)
        return None if state is None else state.live.stores.clocks.get(clock_key)

    async def ensure(self, consumer: AIOKafkaConsumer, partition: int) -> None:
        """Restore a newly owned partition from its changelog (what the local copy lacks)."""
        if partition in self.partitions:
            return
        async with self.lock:
            if partition in self.partitions:
                return
            started = time.perf_counter()
            read = await restore(consumer, self.store, self.log, self.changelog, partition,
                                 settle_s=self.settle_s)
            if read:
                log.info("%s partition %s: %s changelog records restored in %.0f ms", self.source, partition, read,
                         (time.perf_counter() - started) * 1000)
            self.partitions[partition] = self._open(partition)

    def revoke(self, partition: int) -> None:
        """Another worker owns it now; what was not flushed is processed again there."""
        self.partitions.pop(partition, None)

    def collect(self, partition: int) -> dict[bytes, bytes | None]:
        """Move the batch's changes out of memory into the encoded changes of a flush.

        Reads see them from here on; the next batch's changes stay in memory."""
        state = self.partitions[partition]
        state.live.flush()
        return state.changes

    def applied(self, partition: int, changes: dict[bytes, bytes | None], through: int) -> None:
        """The changes are in the changelog through ``through``: write them locally, atomically."""
        self.store.apply(self.log, partition, changes, through)
        changes.clear()

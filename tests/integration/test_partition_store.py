"""The local state of a partition and its changelog agree after any stop:
each flush is one record batch in Kafka and one write batch in RocksDB, and
a restore reads exactly what the local copy lacks."""
from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest
from aiokafka.admin import NewTopic

from kafka_plumbing import clients
from kafka_plumbing.partition_store import ChangesTooLarge, PartitionStore, restore, write_changes
from kafka_plumbing.settings import Settings

LOG = "departures"


async def _topic(settings: Settings, name: str) -> None:
    admin = clients.admin(settings)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, 2, 1, topic_configs={"cleanup.policy": "compact"})])
    finally:
        await admin.close()


def _flushes(seed: int, n: int) -> list[dict[bytes, bytes | None]]:
    rng = random.Random(seed)
    keys = [f"k{i}".encode() for i in range(40)]
    return [{k: (None if rng.random() < 0.1 else f"{k.decode()}@{f}:{rng.random()}".encode())
             for k in rng.sample(keys, rng.randint(1, 15))} for f in range(n)]


def _expected(flushes: list[dict[bytes, bytes | None]]) -> dict[bytes, bytes]:
    state: dict[bytes, bytes] = {}
    for changes in flushes:
        for key, value in changes.items():
            if value is None:
                state.pop(key, None)
            else:
                state[key] = value
    return state


def _state(store: PartitionStore, partition: int) -> dict[bytes, bytes]:
    return {k: store.get(LOG, partition, k) for k in store.keys(LOG, partition)}


async def _run(settings: Settings, tmp: Path) -> None:
    topic = f"{settings.topic_prefix}.changelog-test"
    await _topic(settings, topic)
    producer = clients.producer(settings, acks="all", enable_idempotence=True)
    consumer = clients.consumer(settings)
    await producer.start()
    await consumer.start()
    try:
        flushes = _flushes(7, 30)
        live = PartitionStore(tmp / "live")
        # The live worker: changelog first, then the local write batch.
        throughs = []
        for changes in flushes:
            throughs.append(await write_changes(producer, topic, 1, changes))
            live.apply(LOG, 1, changes, throughs[-1])
        assert _state(live, 1) == _expected(flushes)
        live.close()

        # Killed after flush 19 reached the changelog and before its local write:
        # the data dir holds flushes 0..18; a restart reads 19.. only.
        behind = PartitionStore(tmp / "behind")
        for changes, through in zip(flushes[:19], throughs):
            behind.apply(LOG, 1, changes, through)
        read = await restore(consumer, behind, LOG, topic, 1)
        assert read == sum(len(c) for c in flushes[19:])  # only what it lacked
        assert _state(behind, 1) == _expected(flushes)
        assert await restore(consumer, behind, LOG, topic, 1) == 0  # up to date: nothing to read
        behind.close()

        # An empty data dir reads everything; other partitions stay apart.
        empty = PartitionStore(tmp / "empty")
        empty.apply(LOG, 0, {b"k1": b"partition 0"}, 0)
        await restore(consumer, empty, LOG, topic, 1)
        assert _state(empty, 1) == _expected(flushes)
        assert _state(empty, 0) == {b"k1": b"partition 0"}
        assert empty.applied(LOG, 1) == throughs[-1]

        # A copy ahead of its changelog (the topic was recreated) is dropped and rebuilt.
        empty.apply(LOG, 1, {b"ghost": b"from another history"}, 10**9)
        await restore(consumer, empty, LOG, topic, 1)
        assert _state(empty, 1) == _expected(flushes)
        empty.close()

        # A flush is one record batch: too big for one fails whole, nothing is written.
        huge = {f"h{i}".encode(): b"x" * 4096 for i in range(1000)}
        with pytest.raises(ChangesTooLarge):
            await write_changes(producer, topic, 1, huge)
    finally:
        await consumer.stop()
        await producer.stop()


def test_local_state_and_changelog_agree_after_any_stop(isolated: Settings, tmp_path: Path) -> None:
    asyncio.run(_run(isolated, tmp_path))

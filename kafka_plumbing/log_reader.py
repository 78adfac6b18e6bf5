"""Reads topics for the offline engine and the command line: a whole topic
as of now, a topic's bounds, or a topic partition by partition up to bounds
taken at start (the records as the client returns them; the engine turns
them into ``tables.log_record.LogRecord``)."""
from __future__ import annotations

import asyncio
import queue
import threading
import time
from typing import Iterator

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from kafka_plumbing import clients
# Re-exported: the agents stop the consumers they build through these.
from kafka_plumbing.clients import start_consumer, stop_consumer
from kafka_plumbing.settings import Settings

__all__ = ["read_all", "read_topic", "topic_partitions", "topic_size"]

_END = object()


async def read_all(settings: Settings, topic: str, timeout: float = 60) -> list:
    """Every record of ``topic``, all partitions, from the start to the end as of now."""
    consumer = clients.consumer(settings, topic, auto_offset_reset="earliest")
    await start_consumer(consumer)
    try:
        # Subscribing without a group assigns every partition once metadata is in.
        partitions = sorted(consumer.assignment())
        if not partitions:
            raise LookupError(f"topic {topic!r} has no partitions")
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        records = []
        deadline = time.monotonic() + timeout
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out reading {topic}")
            for messages in (await consumer.getmany(timeout_ms=500)).values():
                records.extend(messages)
        return records
    finally:
        await stop_consumer(consumer)


async def topic_size(settings: Settings, topic: str) -> dict[int, tuple[int, int]]:
    """partition -> (first offset, end offset) as of now."""
    consumer = clients.consumer(settings)
    await start_consumer(consumer)
    try:
        partitions = await topic_partitions(consumer, topic)
        begin = await consumer.beginning_offsets(partitions)
        end = await consumer.end_offsets(partitions)
        return {tp.partition: (begin[tp], end[tp]) for tp in partitions}
    finally:
        await stop_consumer(consumer)


async def topic_partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    await consumer._client.force_metadata_update()  # no public call refreshes metadata for one topic
    found = consumer.partitions_for_topic(topic)
    if not found:
        raise LookupError(f"topic {topic!r} does not exist")
    return [TopicPartition(topic, p) for p in sorted(found)]


def read_topic(settings: Settings, topic: str, bounds: dict[int, tuple[int, int]]) -> Iterator[ConsumerRecord]:
    """Partition by partition, in offset order, up to the bounds taken at start.

    The consumer runs in a thread with its own event loop so callers can
    iterate synchronously (the replay engine is plain Python)."""
    out: queue.Queue = queue.Queue(maxsize=10_000)

    async def pump() -> None:
        consumer = clients.consumer(settings, max_partition_fetch_bytes=4 * 1024 * 1024)
        await start_consumer(consumer)
        try:
            for partition, (first, end) in sorted(bounds.items()):
                if first >= end:
                    continue
                tp = TopicPartition(topic, partition)
                consumer.assign([tp])
                consumer.seek(tp, first)
                position = first
                while position < end:
                    batch = await consumer.getmany(tp, timeout_ms=1000, max_records=5000)
                    for message in batch.get(tp, []):
                        if message.offset >= end:
                            break
                        out.put(message)
                        position = message.offset + 1
                    if not batch:
                        position = await consumer.position(tp)
        finally:
            await stop_consumer(consumer)

    errors: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(pump())
        except BaseException as exc:  # surfaced to the reader below
            errors.append(exc)
        finally:
            out.put(_END)

    thread = threading.Thread(target=run, name="log-reader", daemon=True)
    thread.start()
    while True:
        item = out.get()
        if item is _END:
            break
        yield item
    thread.join()
    if errors:
        raise errors[0]

"""Publishes events to their source topics, in the order given, with progress.

Keys are the source's partition key (raw UTF-8), the same bytes the tables
use, so an entity's events and its table entry live in the same partition.
"""
from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from aiokafka.structs import RecordMetadata

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from kafka_plumbing import clients
from kafka_plumbing.settings import Settings


@dataclass
class ProduceReport:
    sent: dict[str, int]
    seconds: float

    @property
    def total(self) -> int:
        return sum(self.sent.values())


def encode(event: dict) -> bytes:
    return json.dumps(event, separators=(",", ":"), allow_nan=False).encode()


async def produce(
    settings: Settings,
    key_fields: Mapping[str, str],
    events: Iterable[tuple[str, dict]],
    total: int,
    rate: float | None = None,
    progress: bool = True,
    headers: Mapping[str, list[tuple[str, bytes]]] | None = None,
) -> ProduceReport:
    """``headers``: source -> headers every event of it carries (its schema
    version, from the definitions; a source not named gets none)."""
    # As fast as possible: linger to fill batches.  At a fixed rate the next
    # event is due later anyway; lingering would only delay this one.
    producer = clients.producer(settings, linger_ms=0 if rate else 20, max_batch_size=512 * 1024, acks="all",
                                enable_idempotence=True)
    await producer.start()
    sent: dict[str, int] = {name: 0 for name in key_fields}
    headers = headers or {}
    started = time.perf_counter()
    bar = Progress(
        TextColumn("[bold]publishing"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:>8.0f} ev/s"), TimeRemainingColumn(),
        disable=not progress,
    )
    try:
        with bar:
            task = bar.add_task("publish", total=total, rate=0.0)
            pending = []
            for i, (source_name, event) in enumerate(events, start=1):
                key = event.get(key_fields[source_name])
                pending.append(
                    await producer.send(
                        settings.topics.events(source_name),
                        value=encode(event),
                        key=None if key is None else str(key).encode(),
                        headers=headers.get(source_name),
                    )
                )
                sent[source_name] += 1
                if rate:
                    # Pace against the schedule, not per message, so sleeps stay coarse.
                    ahead = i / rate - (time.perf_counter() - started)
                    if ahead > 0.01:
                        await asyncio.sleep(ahead)
                if i % 2000 == 0:
                    await asyncio.gather(*pending)
                    pending.clear()
                    bar.update(task, completed=i, rate=i / (time.perf_counter() - started))
            await asyncio.gather(*pending)
            await producer.flush()
            done = sum(sent.values())
            bar.update(task, completed=done, rate=done / max(time.perf_counter() - started, 1e-9))
    finally:
        await producer.stop()
    return ProduceReport(sent, time.perf_counter() - started)


async def produce_raw(settings: Settings, topic: str, records: list[tuple[bytes | None, bytes | None]],
                      partition: int | None = None, headers: list[tuple[str, bytes]] | None = None,
                      **producer_options: Any) -> list[RecordMetadata]:
    """Send records byte for byte, each with ``headers`` (tests and tooling use it
    for malformed input and forged control records); ``partition``: into that
    partition, whatever their keys; ``producer_options``: aiokafka's (compression,
    request size).  Returns where each record was written, in order."""
    producer = clients.producer(settings, acks="all", **producer_options)
    await producer.start()
    try:
        futures = [await producer.send(topic, value=value, key=key, partition=partition, headers=headers)
                   for key, value in records]
        return list(await asyncio.gather(*futures))
    finally:
        await producer.stop()


async def produce_markers(settings: Settings, topic: str, headers: list[tuple[str, bytes]],
                          partitions: Iterable[int]) -> None:
    """One marker record (no key, an empty value, ``headers``) into each of ``partitions`` of ``topic``."""
    producer = clients.producer(settings, acks="all")
    await producer.start()
    try:
        futures = [await producer.send(topic, value=b"", partition=p, headers=headers) for p in partitions]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()

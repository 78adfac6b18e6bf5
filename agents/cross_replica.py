"""The worker's replica of the logs its models' cross-source inputs read.

A model scored on departures (keyed by origin) that reads ``carrier_arrivals``
needs arrivals of every partition, owned by any worker.  Like Kafka Streams'
GlobalKTable, every worker that scores such a model reads every partition of
those logs itself, from the beginning, with a consumer of its own (no group,
nothing committed), into ``tables.cross_source.CrossLog``s: reads are local and
exact, and the replica's watermarks are what the hold waits on.

Cost: each such worker reads those logs whole at start and keeps their
applied events in memory (``docs/models.md``).
"""
from __future__ import annotations

import asyncio
import logging
import time

from aiokafka import TopicPartition

from kafka_plumbing import clients
from kafka_plumbing.clients import start_consumer, stop_consumer
from kafka_plumbing.settings import Settings
from tables.cross_source import CrossLog, empty_logs
from tables.definitions import Definitions
from tables.dsl import FeatureView
from tables.log_record import LogRecord

log = logging.getLogger(__name__)

FETCH_RECORDS = 5000
REPORT_EVERY_S = 10.0


class CrossReplica:
    """Every partition of the logs ``views`` read, fed to their ``CrossLog``s as it arrives."""

    def __init__(self, settings: Settings, definitions: Definitions, views: list[FeatureView]) -> None:
        self.settings = settings
        self.logs: dict[str, CrossLog] = empty_logs(definitions, views, settings.partitions,
                                                    settings.max_payload_bytes)
        self.topics = {settings.topics.events(root): root for root in self.logs}
        self.advanced = asyncio.Event()  # set on every fetch: the hold looks again

    async def run(self) -> None:
        settings = self.settings
        consumer = clients.consumer(settings, auto_offset_reset="earliest", max_partition_fetch_bytes=4 * 1024 * 1024)
        await start_consumer(consumer)
        try:
            partitions = [TopicPartition(topic, p) for topic in self.topics for p in range(settings.partitions)]
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            fed, reported = 0, time.monotonic()
            while True:
                if time.monotonic() - reported >= REPORT_EVERY_S:
                    reported = time.monotonic()
                    log.info("cross-source replica: %d records read; watermarks %s", fed,
                             {root: [x.watermark(p) for p in range(x.partitions)] for root, x in self.logs.items()})
                fetched = await consumer.getmany(timeout_ms=max(int(settings.flush_ms), 10),
                                                 max_records=FETCH_RECORDS)
                for tp, records in fetched.items():
                    target = self.logs[self.topics[tp.topic]]
                    fed += len(records)
                    for record in records:
                        target.feed(LogRecord.of(record.partition, record.offset, record.value, record.headers,
                                                 record.timestamp, settings.partitions))
                    await asyncio.sleep(0)  # a large catch-up never starves the ingest loop
                if fetched:
                    self.advanced.set()
        finally:
            log.info("cross-source replica stops")
            await stop_consumer(consumer)

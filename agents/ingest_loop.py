"""The worker's one consumer of the source logs, feeding every source's agent.

Why not Faust's stream: it costs about 100 µs a record here (its consumer
thread, the hand-over to the loop, an Event and its bookkeeping per record),
half the time of a departure with its re-keyed copy.  One aiokafka consumer
in the worker's loop, polled with ``getmany``, hands the agents plain records
at a few µs each.  Faust still runs the control plane and the web server.

- The consumer is a member of the ingest group (``<app id>-ingest``); the
  group's assignor (``agents.placement``) tells every worker who owns which
  partition, for routing.
- Positions: a flush commits the offsets after the outputs and the state it
  covers are written, or with them in one transaction under exactly once
  (``agents.flush_writer``); the state's clock says which records it holds,
  so a record delivered again after a crash is skipped (``SourceAgent.take``).
- Rebalance: before partitions are revoked, every agent flushes and commits
  what it took; newly assigned partitions are restored before the first
  fetch.  A batch fetched before a rebalance is not taken past it: the new
  owner fetches those records again from the committed positions.
"""
from __future__ import annotations

import asyncio
import heapq
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Protocol

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from agents.flush_writer import TRANSACTION_TIMEOUT_MS, AtLeastOnce, Commit, ExactlyOnce, FlushWriter
from agents.placement import IngestAssignor, Placement
from kafka_plumbing import clients
from kafka_plumbing.clients import start_consumer, stop_consumer
from kafka_plumbing.settings import Settings
from kafka_plumbing.topics import STATE_BATCH_BYTES

log = logging.getLogger(__name__)

YIELD_EVERY = 32  # records taken between two turns of the event loop: reads and flushes go on
SESSION_TIMEOUT_MS = 15_000  # a worker that died without leaving gives its partitions up this soon
HEARTBEAT_MS = 3_000


def _published(record: ConsumerRecord) -> int:
    return record.timestamp


def ingest_group(app_id: str) -> str:
    """The consumer group of the workers' ingest consumers."""
    return f"{app_id}-ingest"


def transactional_id(app_id: str, source_topic: str, worker_url: str) -> str:
    """A source agent's transactional id: its worker's, so a restart at the same address fences the last one."""
    return f"{app_id}.{source_topic}.{worker_url}"


@dataclass
class AgentClients:
    """The agent's own Kafka clients, from the project's factory: how its flushes are written, and its restores read."""

    writer: FlushWriter
    restore: AIOKafkaConsumer

    @classmethod
    @asynccontextmanager
    async def started(cls, settings: Settings, agent: "Agent", commit: Commit,
                      worker_url: str) -> AsyncIterator["AgentClients"]:
        # A restore reads to the end and stops: a fetch at the end need not wait for more.
        restore = clients.consumer(settings, max_partition_fetch_bytes=STATE_BATCH_BYTES, fetch_max_wait_ms=10)
        async with AsyncExitStack() as stack:
            writer: FlushWriter
            if settings.exactly_once:
                tid = transactional_id(settings.app_id, agent.topic, worker_url)
                exactly = ExactlyOnce(
                    lambda: clients.producer(settings, transactional_id=tid, linger_ms=2,
                                             max_batch_size=512 * 1024, max_request_size=STATE_BATCH_BYTES,
                                             transaction_timeout_ms=TRANSACTION_TIMEOUT_MS),
                    agent.state_topic, ingest_group(settings.app_id), agent.failed_outputs,
                )
                await exactly.start()
                stack.push_async_callback(exactly.stop)
                writer = exactly
            else:
                outputs = clients.producer(settings, linger_ms=2, max_batch_size=512 * 1024)
                changelog = clients.producer(settings, linger_ms=0, max_batch_size=STATE_BATCH_BYTES // 2,
                                             max_request_size=STATE_BATCH_BYTES)
                for producer in (outputs, changelog):
                    await producer.start()
                    stack.push_async_callback(producer.stop)
                writer = AtLeastOnce(outputs, changelog, agent.state_topic, commit, agent.failed_outputs)
            await start_consumer(restore)
            stack.push_async_callback(stop_consumer, restore)
            yield cls(writer, restore)


class Agent(Protocol):
    """What the loop needs of a source's agent (``agents.ingest.SourceAgent``)."""

    topic: str
    state_topic: str  # its changelog
    kafka: AgentClients | None

    def failed_outputs(self, count: int) -> None: ...

    def owns(self, partition: int) -> bool: ...
    def take(self, record: ConsumerRecord) -> None: ...
    def due(self, flush_events: int, flush_s: float) -> bool: ...
    async def flush_behind(self, flush_events: int) -> None: ...
    async def drain(self) -> None: ...
    async def tick(self, every_s: float) -> None: ...
    async def assigned(self, assigned: set[TopicPartition]) -> None: ...
    def revoked(self, revoked: set[TopicPartition]) -> None: ...


class Rebalance(ConsumerRebalanceListener):
    def __init__(self, loop: "IngestLoop") -> None:
        self.loop = loop

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.loop.revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self.loop.assigned(set(assigned))


class IngestLoop:
    def __init__(self, settings: Settings, agents: list[Agent], placement: Placement) -> None:
        self.settings = settings
        self.agents = {agent.topic: agent for agent in agents}
        self.placement = placement
        self.consumer: AIOKafkaConsumer | None = None
        self.generation = 0  # counts rebalances: a fetched batch is not taken past one

    async def run(self, ready: asyncio.Event) -> None:
        """Consume until cancelled (the worker stopping); ``ready``: the control
        state is read, so no event is scored with a stale deployment."""
        settings = self.settings
        async with AsyncExitStack() as stack:
            for agent in self.agents.values():
                agent.kafka = await stack.enter_async_context(
                    AgentClients.started(settings, agent, self.commit, self.placement.url))
            await ready.wait()
            consumer = self.consumer = clients.consumer(
                settings, group_id=ingest_group(settings.app_id), auto_offset_reset="earliest",
                partition_assignment_strategy=(IngestAssignor(self.placement),),
                session_timeout_ms=SESSION_TIMEOUT_MS, heartbeat_interval_ms=HEARTBEAT_MS,
            )
            consumer.subscribe(sorted(self.agents), listener=Rebalance(self))
            await start_consumer(consumer)
            tickers = [asyncio.ensure_future(agent.tick(settings.flush_ms / 1000)) for agent in self.agents.values()]
            try:
                await self.poll(consumer)
            finally:
                for ticker in tickers:
                    ticker.cancel()
                # On shutdown too: what was taken is written and committed, then the group is left.
                for agent in self.agents.values():
                    await agent.drain()
                await stop_consumer(consumer)
                self.consumer = None
                for agent in self.agents.values():
                    agent.kafka = None

    async def poll(self, consumer: AIOKafkaConsumer) -> None:
        settings = self.settings
        flush_s = settings.flush_ms / 1000
        while True:
            fetched = await consumer.getmany(timeout_ms=settings.flush_ms, max_records=settings.flush_events)
            generation = self.generation
            for tp in fetched:
                agent = self.agents[tp.topic]
                if not agent.owns(tp.partition):  # its restore at assignment failed: again
                    await agent.assigned({tp})
            if self.generation == generation:
                await self.take(fetched, generation)
            for agent in self.agents.values():
                if agent.due(settings.flush_events, flush_s):
                    await agent.flush_behind(settings.flush_events)

    async def take(self, fetched: dict[TopicPartition, list[ConsumerRecord]], generation: int) -> None:
        """A fetch's records in the order they were published (their Kafka
        timestamps), not partition after partition: a worker forwards applied
        events to the re-keyed logs as it takes them, and a re-keyed log
        whose lanes (upstream partitions) arrive far apart in event time
        turns the laggards' first events late for its entities."""
        batches = list(fetched.values())
        records = batches[0] if len(batches) == 1 else heapq.merge(*batches, key=_published)
        for i, record in enumerate(records, start=1):
            self.agents[record.topic].take(record)
            if i % YIELD_EVERY == 0:
                await asyncio.sleep(0)
                if self.generation != generation:
                    return  # revoked meanwhile: the rest is fetched again by its owner

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        """Positions past a flush; a failed commit (a rebalance under way) is
        made good by the clocks: what is delivered again is skipped."""
        consumer = self.consumer
        owned = {tp: offset for tp, offset in offsets.items() if tp in self.placement.assigned}
        if consumer is None or not owned:
            return
        try:
            await consumer.commit(owned)
        except KafkaError as exc:
            log.info("commit of %s deferred: %s: %s", sorted(owned), type(exc).__name__, exc)

    async def revoked(self, revoked: set[TopicPartition]) -> None:
        self.generation += 1
        self.placement.ready = False
        self.placement.changed()  # the read process stops answering for these partitions now
        for agent in self.agents.values():
            await agent.drain()  # written and committed while still ours
        for agent in self.agents.values():
            agent.revoked(revoked)

    async def assigned(self, assigned: set[TopicPartition]) -> None:
        for agent in self.agents.values():
            await agent.assigned(assigned)
        self.placement.assigned = frozenset(assigned)
        self.placement.ready = True
        self.placement.changed()
        log.info("ingest: assigned %s", ", ".join(f"{tp.topic}:{tp.partition}" for tp in sorted(assigned)) or "nothing")

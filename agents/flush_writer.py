"""How a flush reaches Kafka: at least once (the default) or exactly once.

A flush is a batch's outputs, each changed partition's state (one changelog
record batch per partition) and the positions past the batch.  Both writers
return the changelog offset each partition's state goes through; the agent
then writes the state locally and calls ``done``.

- ``AtLeastOnce``: outputs acknowledged, then the state, then (after the
  local write) the positions committed.  A kill between the outputs and the
  state sends those outputs again on restart: same values, same offsets.
- ``ExactlyOnce`` (``FS_PROCESSING_GUARANTEE=exactly_once``): outputs, state
  and positions in one Kafka transaction.  A kill before its commit aborts
  it: ``read_committed`` readers (every consumer of the project) never see
  its outputs, and the restart re-takes the batch from the committed
  positions over the state of the last committed flush.

Fencing: the transactional id is the worker's (its URL) per source, so a
worker restarted at its address fences its previous incarnation and aborts
its open transaction at once.  A worker that lost its partitions while
paused past the session timeout is not fenced by the new owner: aiokafka
0.14 sends offsets with TxnOffsetCommit v0, without the group generation
that would let the broker refuse it (KIP-447).  Its open transaction ends
when it resumes (its rebalance drains and commits first) or after
``TRANSACTION_TIMEOUT_MS``.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from agents.outbox import Outbox, Output
from kafka_plumbing.partition_store import ChangesTooLarge, write_changes

log = logging.getLogger(__name__)

RETRY_S = 1.0
CHUNK_KEYS = 2000  # a flush too large for one record batch is written in pieces of this many keys
TRANSACTION_TIMEOUT_MS = 20_000  # an abandoned transaction blocks read_committed readers this long at most
Changes = dict[bytes, bytes | None]
Commit = Callable[[dict[TopicPartition, int]], Awaitable[None]]


class RefusedOutputs(KafkaError):
    """Outputs the producer refused: the transaction they tainted is begun again without them."""

    retriable = True


class FlushWriter(Protocol):
    async def write(self, outbox: Outbox, changes: dict[int, Changes],
                    positions: dict[TopicPartition, int]) -> dict[int, int]: ...

    async def done(self, positions: dict[TopicPartition, int]) -> None: ...


def report(failed: list[tuple[Output, BaseException]]) -> int:
    for output, exc in failed:
        log.error("output to %s failed: %s: %s", output.topic, type(exc).__name__, exc)
    return len(failed)


async def write_state(producer: AIOKafkaProducer, topic: str, partition: int, changes: Changes) -> int:
    """A partition's flush as one changelog record batch (in pieces if too large); its last offset."""
    try:
        return await write_changes(producer, topic, partition, changes)
    except ChangesTooLarge:
        log.warning("a state flush of %s:%s is larger than one record batch (%s keys): written in pieces; "
                    "lower FS_FLUSH_EVENTS", topic, partition, len(changes))
        items = list(changes.items())
        through = -1
        for i in range(0, len(items), CHUNK_KEYS):
            through = await write_changes(producer, topic, partition, dict(items[i:i + CHUNK_KEYS]))
        return through


class AtLeastOnce:
    def __init__(self, outputs: AIOKafkaProducer, changelog: AIOKafkaProducer, topic: str,
                 commit: Commit, on_failed_output: Callable[[int], None]) -> None:
        self.outputs, self.changelog, self.topic = outputs, changelog, topic
        self.commit = commit
        self.on_failed_output = on_failed_output

    async def write(self, outbox: Outbox, changes: dict[int, Changes],
                    positions: dict[TopicPartition, int]) -> dict[int, int]:
        failed = report(await outbox.send(self.outputs))
        if failed:  # one refused output fails alone: the flush goes on
            self.on_failed_output(failed)
        # Each partition's flush is its own record batch: written side by side.
        partitions = list(changes)
        throughs = await asyncio.gather(*(self._state(p, changes[p]) for p in partitions))
        return dict(zip(partitions, throughs))

    async def _state(self, partition: int, changes: Changes) -> int:
        while True:  # retried while the brokers are away
            try:
                return await write_state(self.changelog, self.topic, partition, changes)
            except KafkaError as exc:
                log.warning("writing state to %s:%s failed (%s); retrying", self.topic, partition, exc)
                await asyncio.sleep(RETRY_S)

    async def done(self, positions: dict[TopicPartition, int]) -> None:
        await self.commit(positions)


class ExactlyOnce:
    """One transaction per flush; ``producer`` builds the transactional producer
    (again after a failure: a fenced or timed-out producer cannot go on)."""

    def __init__(self, producer: Callable[[], AIOKafkaProducer], topic: str, group_id: str,
                 on_failed_output: Callable[[int], None]) -> None:
        self.new_producer = producer
        self.producer: AIOKafkaProducer | None = None
        self.topic = topic
        self.group_id = group_id
        self.on_failed_output = on_failed_output

    async def start(self) -> None:
        producer = self.new_producer()
        await producer.start()
        self.producer = producer

    async def stop(self) -> None:
        if self.producer is not None:
            producer, self.producer = self.producer, None
            await producer.stop()

    async def write(self, outbox: Outbox, changes: dict[int, Changes],
                    positions: dict[TopicPartition, int]) -> dict[int, int]:
        outputs = list(outbox.pending)
        while True:
            try:
                return await self._transaction(outputs, changes, positions)
            except KafkaError as exc:
                # Nothing of it is visible: begin again, with a new producer (the same id).
                log.warning("a flush transaction of %s failed (%s: %s); retrying", self.topic,
                            type(exc).__name__, exc)
                await self._restart()
                await asyncio.sleep(RETRY_S)

    async def _transaction(self, outputs: list[Output], changes: dict[int, Changes],
                           positions: dict[TopicPartition, int]) -> dict[int, int]:
        producer = self.producer
        assert producer is not None
        await producer.begin_transaction()
        # On any failure the transaction is left open: the next producer (same id) aborts it.
        failed = await Outbox(list(outputs)).send(producer)
        retriable = [e for _, e in failed if isinstance(e, KafkaError) and e.retriable]
        if retriable:
            raise retriable[0]
        if failed:  # refused (too large): reported, and the flush goes on without them, as at least once
            self.on_failed_output(report(failed))
            refused = {id(o) for o, _ in failed}
            outputs[:] = [o for o in outputs if id(o) not in refused]
            raise RefusedOutputs(len(refused))
        partitions = list(changes)
        throughs = await asyncio.gather(*(write_state(producer, self.topic, p, changes[p]) for p in partitions))
        if positions:
            await producer.send_offsets_to_transaction(positions, self.group_id)
        await producer.commit_transaction()
        return dict(zip(partitions, throughs))

    async def _restart(self) -> None:
        try:
            await self.stop()
        except Exception:
            log.exception("stopping a failed transactional producer")
        while True:
            try:
                await self.start()
                return
            except KafkaError as exc:
                log.warning("a transactional producer for %s did not start (%s); retrying", self.topic, exc)
                await asyncio.sleep(RETRY_S)

    async def done(self, positions: dict[TopicPartition, int]) -> None:
        """The positions went with the transaction."""

"""Writing a source's history into a re-keyed log that was created after the
source had events (a view on an entity the source was never keyed by).

Workers feed a re-keyed log only from partitions whose history is in it.  For
each partition of the parent that waits for its history (its worker says so
in the control plane), this replays the parent's log through the same
validation and processor up to the end as of now, so exactly the applied
events are kept, merges the partitions by event time (the re-keyed log's
agent keeps tiles back to its slowest lane, so lanes must advance together),
writes them byte for byte with their lane header, and records, per partition,
the offset the history goes through.  The partition's worker then forwards
what came after that offset and hands over to live forwarding
(``agents.backfill``).

Rerunning after a crash resends records; the re-keyed log's agent rejects
them as duplicates or late, so state is unaffected (the DLQ shows them).
"""
from __future__ import annotations

import asyncio
import heapq
import time
from dataclasses import dataclass
from typing import Any

from aiokafka import TopicPartition
from rich.console import Console
from rich.progress import Progress

from agents.control_plane import ControlState
from agents.control_records import LIVE, HistoryWritten, encode, now_iso
from agents.control_client import control_state
from agents.ingest_loop import ingest_group
from kafka_plumbing import clients, signing
from kafka_plumbing.log_reader import read_topic, topic_size
from kafka_plumbing.settings import Settings
from tables.definitions import Definitions
from tables.dsl import Source
from tables.processor import forward_key
from tables.log_record import from_messages, lane_headers
from tables.replay import replay


@dataclass
class RekeyPlan:
    derived: Source
    parent: Source
    ends: dict[int, int]  # parent partition -> end offset (exclusive) to write the history through
    waiting: list[int]  # partitions with events whose worker has not said what it needs yet


def plan(state: ControlState, sizes: dict[int, tuple[int, int]], derived: Source, parent: Source) -> RekeyPlan:
    """Which parent partitions need their history written, from what workers announced."""
    ends: dict[int, int] = {}
    waiting: list[int] = []
    for partition, (first, end) in sorted(sizes.items()):
        if end <= first:
            continue  # no events: its first one is forwarded live
        status = state.fills.get((forward_key(derived.name), partition))
        if status is None:
            waiting.append(partition)
        elif status.status != LIVE and (derived.name, partition) not in state.histories:
            ends[partition] = end
    return RekeyPlan(derived, parent, ends, waiting)


def merged_by_time(partitions: dict[int, list[dict[str, Any]]]) -> list[tuple[int, dict[str, Any]]]:
    """(lane, row) of every partition's applied rows, by event time; each
    partition's own order is kept (a merge never reorders within an input)."""
    streams = [[(row["event_time_ms"], lane, i, row) for i, row in enumerate(rows)] for lane, rows in partitions.items()]
    return [(lane, row) for _, lane, _, row in heapq.merge(*streams)]


async def write_history(settings: Settings, definitions: Definitions, rekey: RekeyPlan, console: Console) -> int:
    """Replay, merge and write; returns the number of records written."""
    signer = signing.signer(settings, settings.admin_name)  # before the work: a missing key fails now
    parent_topic = settings.topics.events(rekey.parent.name)
    applied: dict[int, list[dict[str, Any]]] = {}
    with Progress(console=console) as bar:
        for partition, end in rekey.ends.items():
            task = bar.add_task(f"replaying {rekey.parent.name} partition {partition}", total=end)
            records = from_messages(read_topic(settings, parent_topic, {partition: (0, end)}), settings.partitions)
            rows = []
            for row in replay(rekey.parent, definitions.views_of(rekey.parent.name), records,
                              settings.max_payload_bytes, include_record=True, include_value=True):
                rows.append(row)
                bar.update(task, completed=row["offset"] + 1)
            bar.update(task, completed=end)
            applied[partition] = rows
        merged = merged_by_time(applied)
        task = bar.add_task(f"writing into {rekey.derived.name}", total=len(merged))
        producer = clients.producer(settings, acks="all", enable_idempotence=True, linger_ms=20)
        await producer.start()
        try:
            written = 0
            target = settings.topics.events(rekey.derived.name)
            for lane, row in merged:
                entity = row["record"].get(rekey.derived.key)
                if entity is not None:  # as the agent forwards: events without the entity go nowhere
                    await producer.send(target, row["value"], key=str(entity).encode(),
                                        headers=lane_headers(lane, row["schema_version"]))
                    written += 1
                if written % 2000 == 0:
                    bar.update(task, completed=written)
            await producer.flush()
            bar.update(task, completed=len(merged))
            # Only once every record is acknowledged: workers forward what follows.
            for partition, end in rekey.ends.items():
                record = HistoryWritten(derived=rekey.derived.name, parent=rekey.parent.name, partition=partition,
                                        through=end - 1, records=len(applied[partition]), at=now_iso())
                key, value = record.key.encode(), encode(record)
                await producer.send_and_wait(settings.topics.deployments, value, key=key,
                                             headers=signer.headers(signing.DEPLOYMENTS, key, value))
        finally:
            await producer.stop()
    return written


async def rekey_history(settings: Settings, definitions: Definitions, derived: Source, console: Console,
                        stall_seconds: float) -> tuple[bool, str]:
    """Write the history a new re-keyed log lacks; (done, what happened)."""
    parent = definitions.source(derived.parent or "")
    deadline = time.monotonic() + stall_seconds
    while True:
        state = await control_state(settings, definitions)
        sizes = await topic_size(settings, settings.topics.events(parent.name))
        rekey = plan(state, sizes, derived, parent)
        if not rekey.waiting:
            break
        if time.monotonic() > deadline:
            return False, (f"the workers owning {parent.name} partitions {rekey.waiting} have not said whether "
                           f"they feed {derived.name}: is a worker running with a module that defines it?")
        await asyncio.sleep(1.0)
    if not rekey.ends:
        return True, f"{derived.name} needs no history written"
    written = await write_history(settings, definitions, rekey, console)
    ends = {p: end for p, (_, end) in (await topic_size(settings, settings.topics.events(derived.name))).items()}
    if not await wait_consumed(settings, settings.topics.events(derived.name), ends, console, stall_seconds):
        return False, f"the workers did not take the history written into {derived.name} within {stall_seconds:.0f}s"
    return True, (f"wrote {written:,} records of {parent.name} partitions {sorted(rekey.ends)} into {derived.name}, "
                  "merged by event time, and the workers have applied them")


async def wait_consumed(settings: Settings, topic: str, ends: dict[int, int], console: Console,
                        stall_seconds: float) -> bool:
    """Until the workers' consumer group has committed ``ends`` of ``topic``:
    a view is not filled before its agent has taken the history."""
    admin = clients.admin(settings)
    await admin.start()
    try:
        partitions = [TopicPartition(topic, p) for p in ends]
        last, changed = -1, time.monotonic()
        with Progress(console=console) as bar:
            task = bar.add_task(f"workers applying {topic}", total=sum(ends.values()))
            while True:
                committed = await admin.list_consumer_group_offsets(ingest_group(settings.app_id), partitions=partitions)
                done = sum(min(max(committed[tp].offset, 0) if tp in committed else 0, ends[tp.partition]) for tp in partitions)
                bar.update(task, completed=done)
                if done >= sum(ends.values()):
                    return True
                if done != last:
                    last, changed = done, time.monotonic()
                elif time.monotonic() - changed > stall_seconds:
                    return False
                await asyncio.sleep(1.0)
    finally:
        await admin.close()

"""A topic's partitions replayed side by side, and put back in the order the
single-process replay yields them.

A partition's outcome depends only on its own records: clocks, duplicate ids
and lanes are kept per partition, and an entity's state lives in the one
partition its key hashes to (validation rejects a record found elsewhere).
So each partition is replayed alone by the same engine (``tables.replay``)
over the same reader (``kafka_plumbing.log_reader``), with bounds taken once
at the start, and the rows are concatenated by partition number: exactly
what one process reading partition after partition yields.  A re-keyed log
(``<source>.by_<entity>``) is no exception: its partition interleaves the
parent's partitions as lanes, and the job takes them in offset order, as the
single-process run does.
"""
from __future__ import annotations

import asyncio
from concurrent.futures import Executor, as_completed
from dataclasses import dataclass, field
from typing import Any, Callable

from kafka_plumbing import log_reader
from kafka_plumbing.settings import Settings
from tables.definitions import load
from tables.log_record import from_messages
from tables.replay import ReplayCounts, replay

__all__ = ["PartitionJob", "PartitionRows", "plan", "replay_partition", "run"]


@dataclass(frozen=True)
class PartitionJob:
    """One partition of a source's log, up to the end taken at the start; plain
    data so it pickles to a pool process or a Dask worker."""

    settings: Settings
    features: str  # the feature module: a worker imports it rather than receive the views
    source: str
    partition: int
    first: int
    end: int
    include_record: bool = False

    @property
    def size(self) -> int:
        return self.end - self.first


@dataclass
class PartitionRows:
    partition: int
    rows: list[dict[str, Any]]
    counts: ReplayCounts = field(default_factory=ReplayCounts)


def plan(settings: Settings, features: str, source: str, include_record: bool = False) -> list[PartitionJob]:
    """One job per non-empty partition of ``source``'s topic, as of now."""
    bounds = asyncio.run(log_reader.topic_size(settings, settings.topics.events(source)))
    return [PartitionJob(settings, features, source, partition, first, end, include_record)
            for partition, (first, end) in sorted(bounds.items()) if end > first]


def replay_partition(job: PartitionJob) -> PartitionRows:
    """Runs where the pool puts it: read the partition, replay it, return its rows."""
    definitions = load(job.features)
    settings = job.settings
    messages = log_reader.read_topic(settings, settings.topics.events(job.source), {job.partition: (job.first, job.end)})
    counts = ReplayCounts()
    rows = list(replay(definitions.source(job.source), definitions.views_of(job.source),
                       from_messages(messages, settings.partitions), settings.max_payload_bytes, counts,
                       include_record=job.include_record))
    return PartitionRows(job.partition, rows, counts)


def run(
    pool: Executor, jobs: list[PartitionJob], counts: ReplayCounts | None = None,
    on_done: Callable[[PartitionJob], None] | None = None,
) -> list[dict[str, Any]]:
    """Every job on ``pool``; the rows in partition order (the single-process
    order), whichever finishes first.  ``counts`` gets the sum of the partitions'."""
    # Largest first: a big partition started last would run alone at the end.
    futures = {pool.submit(replay_partition, job): job for job in sorted(jobs, key=lambda j: -j.size)}
    finished: dict[int, PartitionRows] = {}
    for future in as_completed(futures):
        part = future.result()
        finished[part.partition] = part
        if counts is not None:
            for name in ("applied", "late", "duplicate", "invalid"):
                setattr(counts, name, getattr(counts, name) + getattr(part.counts, name))
        if on_done is not None:
            on_done(futures[future])
    return [row for partition in sorted(finished) for row in finished[partition].rows]

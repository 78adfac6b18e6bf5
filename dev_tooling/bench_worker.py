"""The full worker in the bench: a real ``featurestream worker`` process on
the bench topics, driven and observed from outside as a user would.

- ``ingest``: departures published as fast as the CLI producer goes, timed
  until they and their re-keyed copies (``departures.by_tailnum``) are all
  decided (``/stats``); the Kafka records the worker wrote meanwhile, counted
  from end offsets of every topic with the bench prefix or its app id
  (changelogs included), per departure;
- ``paced``: departures published at a fixed rate, optionally under an
  open-loop read load on ``GET /features``; the ingest rate achieved (timed
  like ``ingest``, so each phase starts with no backlog), the
  read latencies, freshness (event's Kafka timestamp until the view's
  ``events_applied`` for its origin counts it, from polling every origin) and,
  with a model deployed, event-to-prediction latency (event's Kafka
  timestamp to the prediction record's).
"""
from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiokafka import TopicPartition
from kafka_plumbing import clients

from agents.control_client import issue
from dev_tooling import kafka_local
from dev_tooling.bench_latency import LoadResult, finish_load, percentile, start_load
from dev_tooling.processes import WorkerHandle, http_json, start_monitor, start_worker, stop_pid, wait_ready
from kafka_plumbing.clients import start_consumer, stop_consumer
from kafka_plumbing.log_reader import read_all
from kafka_plumbing.producer import produce
from kafka_plumbing.settings import Settings
from models.registry import Registry

SOURCE = "departures"
REKEYED = "departures.by_tailnum"
VIEW = "origin_traffic"
MODEL = "flight_delay"
STALL_S = 60.0
POLL_S = 0.025  # freshness polling of the (three) origins: its resolution, and a light read load


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {}
    return {"p50_ms": percentile(ordered, 0.5), "p99_ms": percentile(ordered, 0.99), "max_ms": ordered[-1]}


def decided(url: str, source: str) -> int:
    """Events of ``source`` with an outcome (applied, late, duplicate, invalid)."""
    _, body = http_json(url + "/stats")
    parts = body["sources"].get(source, {}).values()
    return sum(p["applied"] + p["late"] + p["duplicate"] + p["invalid"] for p in parts)


async def records_in(settings: Settings) -> int:
    """Records in every topic of the bench prefix and app id (Faust's changelogs too)."""
    admin = clients.admin(settings)
    await admin.start()
    try:
        names = [t for t in await admin.list_topics()
                 if t.startswith(settings.topic_prefix + ".") or t.startswith(settings.app_id + "-")]
    finally:
        await admin.close()
    consumer = clients.consumer(settings)
    await start_consumer(consumer)
    try:
        await consumer._client.force_metadata_update()  # no public call refreshes metadata for new topics
        partitions = [TopicPartition(t, p) for t in names for p in (consumer.partitions_for_topic(t) or ())]
        ends = await consumer.end_offsets(partitions) if partitions else {}
        return sum(ends.values())
    finally:
        await stop_consumer(consumer)


@dataclass
class Ingest:
    departures: int
    seconds: float
    events_per_s: float
    messages_per_departure: float


@dataclass
class Paced:
    target_rate: float
    events: int
    ingest_per_s: float
    reads: LoadResult | None = None
    freshness: dict[str, float] = field(default_factory=dict)
    event_to_prediction: dict[str, float] = field(default_factory=dict)


class BenchWorker:
    """One worker process on one round's topics."""

    def __init__(self, settings: Settings, key_fields: dict[str, str]) -> None:
        self.settings = settings
        self.key_fields = key_fields
        self.work = Path(tempfile.mkdtemp(prefix="fs-bench-worker-"))
        self.handle: WorkerHandle | None = None
        self.model: str | None = None

    @property
    def url(self) -> str:
        assert self.handle is not None
        return self.handle.url

    def start(self) -> None:
        self.handle = start_worker(kafka_local.free_port(), self.work / "data", self.work / "worker.log",
                                   env=self.settings.as_env())
        wait_ready(self.handle)

    def deploy_latest(self, model: str = MODEL) -> str | None:
        """Deploy the newest version of ``model`` in the registry; None when there is none."""
        versions = Registry(self.settings.registry_dir).list_models().get(model) or []
        if not versions:
            return None
        version = max(v.version for v in versions)
        verdict = asyncio.run(issue(self.settings, model, "deploy", version, by="bench"))
        if verdict.result != "applied":
            raise RuntimeError(f"deploying {model} v{version} for the bench: {verdict}")
        self.model = f"{model} v{version}"
        return self.model

    @contextmanager
    def monitor(self) -> Iterator[WorkerHandle]:
        """``featurestream monitor`` on this worker's topics while the block runs."""
        handle = start_monitor(kafka_local.free_port(), self.work / "monitor.log", env=self.settings.as_env())
        try:
            wait_ready(handle)
            yield handle
        finally:
            stop_pid(handle.pid)

    def stop(self) -> None:
        if self.handle is not None:
            stop_pid(self.handle.pid)
            if self.handle.process is not None:
                self.handle.process.wait(timeout=30)
        shutil.rmtree(self.work, ignore_errors=True)

    def _publish(self, events: list[dict], rate: float | None = None) -> Any:
        return produce(self.settings, self.key_fields, ((SOURCE, e) for e in events), len(events),
                       rate=rate, progress=False)

    def _wait_decided(self, source: str, total: int, stall_s: float = STALL_S) -> float:
        """perf_counter time of the last change once ``total`` are decided (or
        progress stalled: then the last change, when the count fell short)."""
        last, changed = -1, time.perf_counter()
        while True:
            now = decided(self.url, source)
            if now != last:
                last, changed = now, time.perf_counter()
            if now >= total:
                return changed
            if time.perf_counter() - changed > stall_s:
                if source == SOURCE:
                    raise TimeoutError(f"worker decided {now} of {total} {source}; see {self.handle.log_path}")
                return changed  # fewer re-keyed copies than expected (late or invalid parents)
            time.sleep(0.02)

    def _counts(self) -> tuple[int, int]:
        return decided(self.url, SOURCE), decided(self.url, REKEYED)

    def _wait_all(self, before: tuple[int, int], events: list[dict]) -> float:
        """When ``events`` and their re-keyed copies have all been decided (perf_counter)."""
        self._wait_decided(SOURCE, before[0] + len(events))
        with_tail = sum(1 for e in events if e.get("tailnum") is not None)
        return self._wait_decided(REKEYED, before[1] + with_tail, stall_s=3.0)

    def ingest(self, events: list[dict]) -> Ingest:
        before = asyncio.run(records_in(self.settings))
        counts = self._counts()
        started = time.perf_counter()
        asyncio.run(self._publish(events))
        seconds = self._wait_all(counts, events) - started
        written = self._settled_records() - before - len(events)
        return Ingest(len(events), seconds, len(events) / seconds, written / len(events))

    def _settled_records(self, quiet_s: float = 4.0) -> int:
        """Records in the round's topics once no more arrive for ``quiet_s``:
        changelog records wait in Faust's producer buffer until its next flush
        (at the latest its commit, every 2.8 s), outputs are sent without waiting."""
        count, since = asyncio.run(records_in(self.settings)), time.monotonic()
        deadline = since + STALL_S
        while time.monotonic() - since < quiet_s and time.monotonic() < deadline:
            time.sleep(0.5)
            now = asyncio.run(records_in(self.settings))
            if now != count:
                count, since = now, time.monotonic()
        return count

    def read_urls(self, origins: list[str]) -> list[str]:
        return [f"{self.url}/features/{VIEW}/{origin}" for origin in origins]

    def paced(self, events: list[dict], rate: float, reads: tuple[list[str], float] | None = None,
              observe: bool = False) -> Paced:
        """Publish ``events`` at ``rate``; with ``reads`` (URLs, requests/s) under
        that read load for the publishing time; with ``observe``, freshness and
        event-to-prediction latency."""
        counts = self._counts()
        origins = sorted({str(e["origin"]) for e in events})
        seen_before = {o: self._applied(o) for o in origins} if observe else {}
        load = start_load(reads[0], reads[1], len(events) / rate) if reads else None
        started = time.perf_counter()
        observations = asyncio.run(self._publish_observing(events, rate, seen_before))
        # The re-keyed copies too: the next phase starts with no backlog.
        done = self._wait_all(counts, events)
        result = Paced(rate, len(events), len(events) / (done - started))
        if load is not None:
            result.reads = finish_load(load)
        if observe:
            stamps = self._kafka_times(events)
            result.freshness = percentiles(freshness(events, stamps, seen_before, observations))
            if self.model is not None:
                result.event_to_prediction = percentiles(self._prediction_latencies(stamps))
        return result

    def _applied(self, origin: str) -> int:
        status, body = http_json(f"{self.url}/features/{VIEW}/{origin}")
        return int(body["events_applied"]) if status == 200 else 0

    async def _publish_observing(self, events: list[dict], rate: float,
                                 seen_before: dict[str, int]) -> list[tuple[float, str, int]]:
        """(epoch ms, origin, events_applied) seen while publishing, polling every
        origin until the view counts all of ``events``."""
        observations: list[tuple[float, str, int]] = []
        publishing = asyncio.create_task(self._publish(events, rate))
        if not seen_before:
            await publishing
            return observations
        target = dict(seen_before)
        for event in events:
            target[str(event["origin"])] += 1
        latest = dict(seen_before)
        async with aiohttp.ClientSession() as session:
            deadline = time.monotonic() + len(events) / rate + STALL_S
            while time.monotonic() < deadline:
                for origin in target:
                    async with session.get(f"{self.url}/features/{VIEW}/{origin}") as response:
                        if response.status != 200:
                            continue
                        latest[origin] = int((await response.json())["events_applied"])
                    observations.append((time.time() * 1000, origin, latest[origin]))
                if publishing.done() and all(latest[o] >= target[o] for o in target):
                    break
                await asyncio.sleep(POLL_S)
        await publishing
        return observations

    def _kafka_times(self, events: list[dict]) -> dict[str, int]:
        """event_id -> the Kafka (producer) timestamp of its record."""
        wanted = {str(e["event_id"]) for e in events}
        stamps: dict[str, int] = {}
        for message in asyncio.run(read_all(self.settings, self.settings.topics.events(SOURCE))):
            event_id = _event_id(message.value)
            if event_id in wanted:
                stamps[event_id] = message.timestamp
        return stamps

    def _prediction_latencies(self, stamps: dict[str, int]) -> list[float]:
        deadline = time.monotonic() + 30.0
        while True:
            latencies = [message.timestamp - stamps[event_id]
                         for message in asyncio.run(read_all(self.settings, self.settings.topics.predictions))
                         if (event_id := _event_id(message.value)) in stamps]
            if len(latencies) >= len(stamps) or time.monotonic() > deadline:
                return [float(x) for x in latencies]
            time.sleep(0.5)  # predictions are sent without waiting: they trail the counters


def _event_id(value: bytes) -> str | None:
    try:
        found = json.loads(value).get("event_id")
    except (ValueError, AttributeError):
        return None
    return None if found is None else str(found)


def freshness(events: list[dict], stamps: dict[str, int], seen_before: dict[str, int],
              observations: list[tuple[float, str, int]]) -> list[float]:
    """For each event: the first observation whose count for its origin
    includes it, minus the event's Kafka timestamp (ms)."""
    by_origin: dict[str, list[tuple[float, int]]] = {}
    for at, origin, applied in observations:
        by_origin.setdefault(origin, []).append((at, applied))
    rank: dict[str, int] = dict(seen_before)
    out = []
    for event in events:  # published in this order, applied per origin in this order
        origin = str(event["origin"])
        rank[origin] = rank.get(origin, 0) + 1
        stamp = stamps.get(str(event["event_id"]))
        if stamp is None:
            continue
        seen = next((at for at, applied in by_origin.get(origin, []) if applied >= rank[origin]), None)
        if seen is not None:
            out.append(max(0.0, seen - stamp))
    return out

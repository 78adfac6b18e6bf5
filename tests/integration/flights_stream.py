"""Workers on the real flights stream that tests can kill, restart and
compare with the replay: shared by the crash, broker-restart and rebalance
tests.  Counts and comparisons take one worker or several in one group
(each owns some partitions; together they own all)."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.row_files import read_rows
from dev_tooling import flights_data
from dev_tooling import kafka_local
from dev_tooling.processes import start_worker, wait_ready
from kafka_plumbing import log_reader
from kafka_plumbing.producer import produce
from kafka_plumbing.settings import Settings
from models.registry import Registry
from tables.definitions import load as load_definitions
from tables.dsl import FeatureView
from tables.log_record import from_messages
from tables.partitioning import key_partition
from tables.processor import SourceProcessor, Stores, stream_time
from tables.replay import ReplayCounts, replay
from tests.integration.conftest import Worker, consume_all, decode

LIMIT = 2500
TAILNUMS_PER_PARTITION = 10
SOURCES = ("departures", "arrivals", "weather", "departures.by_tailnum", "arrivals.by_carrier")
REKEYED = (("departures.by_tailnum", "departures"), ("arrivals.by_carrier", "arrivals"))

Key = tuple[str, str]  # (view, entity)


def produce_flights(settings: Settings, limit: int = LIMIT, skip: int = 0, rate: float | None = None) -> dict[str, int]:
    """``limit`` departures after the first ``skip`` with their arrivals and weather; ``rate``: events per second."""
    definitions = load_definitions(settings.features_module)
    by_source = flights_data.load_events(limit=limit, skip=skip, progress=False)
    interleaved = list(flights_data.iter_interleaved(by_source))
    asyncio.run(produce(settings, definitions.key_fields(), iter(interleaved), len(interleaved), rate=rate,
                        progress=False))
    return {name: len(events) for name, events in by_source.items()}


class Restartable:
    """One worker identity (port, data directory) that can be killed and started again."""

    def __init__(self, settings: Settings, work: Path) -> None:
        self.settings = settings
        self.work = work
        self.port = kafka_local.free_port()
        self.worker: Worker | None = None

    def start(self) -> Worker:
        handle = start_worker(self.port, self.work / "data", self.work / "worker.log", env=self.settings.as_env())
        wait_ready(handle)
        self.worker = Worker(self.settings, handle)
        return self.worker

    def signal(self, signum: int) -> None:
        assert self.worker is not None and self.worker.handle.process is not None
        os.kill(self.worker.handle.pid, signum)
        self.worker.handle.process.wait(timeout=60)
        self.worker = None

    def stop(self) -> None:
        if self.worker is not None:
            self.signal(signal.SIGTERM)


def applied_total(worker: Worker) -> int:
    try:
        return worker.counts("departures")["applied"] + worker.counts("arrivals")["applied"]
    except (OSError, KeyError, TypeError):
        return 0


def total_counts(workers: tuple[Worker, ...], source: str) -> dict[str, int]:
    """Outcome counts of ``source`` over the partitions each worker owns."""
    per_worker = [worker.counts(source) for worker in workers]
    return {k: sum(counts[k] for counts in per_worker) for k in ("applied", "late", "duplicate", "invalid")}


def wait_all(worker: Worker, sent: dict[str, int], *others: Worker, timeout: float = 400) -> None:
    """Until every record sent has an outcome, and every applied one its re-keyed copy's, on the workers together."""
    workers = (worker, *others)
    deadline = time.monotonic() + timeout
    while True:
        goals = dict(sent)
        goals.update({derived: total_counts(workers, parent)["applied"] for derived, parent in REKEYED})
        done = {source: sum(total_counts(workers, source).values()) for source in goals}
        if all(done[source] >= n for source, n in goals.items()):
            return
        assert time.monotonic() < deadline, (f"only {done} of {goals} after {timeout}s; "
                                             f"logs {[w.handle.log_path for w in workers]}")
        time.sleep(0.5)


def positions(records: list[dict[str, Any]]) -> Counter:
    """How many records name each source position (topic, partition, offset)."""
    return Counter((r["topic"], r["partition"], r["offset"]) for r in records)


@dataclass(frozen=True)
class Outputs:
    """What the outputs hold after a run, read as read_committed consumers read them."""

    rejected: int  # late and invalid decisions, over the 5 logs
    dead_letters: int  # distinct source positions in the DLQ
    copies: dict[str, int]  # output -> records naming a position already named (at least once)

    def line(self) -> str:
        return (f"{self.rejected} rejected = {self.dead_letters} dead letters; records sent twice: "
                + ", ".join(f"{name} {n}" for name, n in self.copies.items()))


def count_outputs(worker: Worker, *, predictions: bool = False) -> Outputs:
    """Every applied event is in its feature log and forwarded once; one dead
    letter per rejected event; what is there twice is counted, not failed."""
    settings, topics = worker.settings, worker.settings.topics
    counts = {s: worker.counts(s) for s in SOURCES}
    letters = positions(decode(consume_all(settings, topics.dlq)))
    rejected = sum(c["late"] + c["invalid"] for c in counts.values())
    # No applied event is judged late on its re-delivery: one dead letter per rejection.
    assert len(letters) == rejected, (len(letters), rejected)
    served = {s: positions(decode(consume_all(settings, topics.features(s)))) for s in SOURCES}
    for source in SOURCES:
        assert len(served[source]) == counts[source]["applied"], source
    copies = {
        "feature log": sum(n - 1 for log in served.values() for n in log.values()),
        "re-keyed forwards": sum(len(consume_all(settings, topics.events(derived))) - counts[parent]["applied"]
                                 for derived, parent in REKEYED),
        "dead letters": sum(n - 1 for n in letters.values()),
    }
    if predictions:
        scored = positions(decode(consume_all(settings, topics.predictions)))
        copies["predictions"] = sum(n - 1 for n in scored.values())
    return Outputs(rejected, len(letters), copies)


def by_position(settings: Settings, topic: str) -> dict[tuple[int, int], dict[str, Any]]:
    """Feature-log records by the (partition, offset) they were served for; a
    record sent again after a kill must be identical to the first."""
    out: dict[tuple[int, int], dict[str, Any]] = {}
    for record in decode(consume_all(settings, topic)):
        key = (record["partition"], record["offset"])
        assert out.setdefault(key, record) == record, key
    return out


def assert_equals_replay(worker: Worker, source: str, tmp_path: Path, *others: Worker) -> None:
    """The feature log (what was served for each applied event) equals ``featurestream replay --from-topic``;
    ``others``: the rest of the group, whose applied counts add up with ``worker``'s."""
    out = tmp_path / f"{source}.parquet"
    result = worker.cli("replay", "--source", source, "--from-topic", "--out", str(out))
    assert result.returncode == 0, result.stderr
    replayed = {(row["partition"], row["offset"]): row for row in read_rows(out)}
    counts = total_counts((worker, *others), source)
    served = by_position(worker.settings, worker.settings.topics.features(source))
    assert counts["applied"] == len(replayed) == len(served), (source, counts, len(replayed), len(served))
    differences = []
    for position, record in served.items():
        row = replayed[position]
        for view, values in record["features"].items():
            for name, value in values.items():
                got = row[f"{view}.{name}"]
                if got != value or type(got) is not type(value):
                    differences.append((position, f"{view}.{name}", value, got))
    assert differences == [], differences[:5]


@dataclass
class Replayed:
    """A source's log replayed in this process by the offline engine (``tables.replay``):
    its outcome counts, and the state it leaves, read as ``GET /features`` reads it."""

    counts: ReplayCounts
    processor: SourceProcessor
    stores: Stores
    partitions: int

    def current(self, view: FeatureView, entity: str) -> dict[str, Any] | None:
        """The values at the partition's stream time (``app.feature_read``); None: no such entity."""
        partition = key_partition(entity, self.partitions)
        clock = self.stores.clocks.get(self.processor.clock_key(partition))
        read = self.processor.read(self.stores, clock, entity, stream_time(clock) or 0, [view])
        return None if read.states[view.ref] is None else read.values[view.ref]


def replay_log(settings: Settings, source: str) -> Replayed:
    definitions = load_definitions(settings.features_module)
    views = definitions.views_of(source)
    stores = Stores.in_memory(views)
    counts = ReplayCounts()
    topic = settings.topics.events(source)
    bounds = asyncio.run(log_reader.topic_size(settings, topic))
    records = from_messages(log_reader.read_topic(settings, topic, bounds), settings.partitions)
    for _ in replay(definitions.source(source), views, records, settings.max_payload_bytes, counts, stores=stores):
        pass
    return Replayed(counts, SourceProcessor(definitions.source(source), views), stores, settings.partitions)


def keys_of(events: dict[str, list[dict]], partitions: int) -> list[Key]:
    """Entities with at least two valid events, every one for the views with few, a sample of planes per partition."""
    departures = [e for e in events["departures"] if e.get("dep_delay") is not None]
    arrivals = [e for e in events["arrivals"] if e.get("arr_delay") is not None]

    def twice(rows: list[dict], name: str) -> list[str]:
        return sorted(k for k, n in Counter(r.get(name) for r in rows).items() if k and n >= 2)

    planes: dict[int, list[str]] = {}
    for tailnum in twice(departures, "tailnum"):
        planes.setdefault(key_partition(tailnum, partitions), []).append(tailnum)
    keys = [("origin_traffic", o) for o in twice(departures, "origin")]
    keys += [("origin_weather", o) for o in twice(events["weather"], "origin")]
    keys += [("dest_arrivals", d) for d in twice(arrivals, "dest")]
    keys += [("carrier_arrivals", c) for c in twice(arrivals, "carrier")]
    keys += [("plane_recent", t) for sample in planes.values() for t in sample[:TAILNUMS_PER_PARTITION]]
    return keys


def replayed_values(settings: Settings, keys: list[Key]) -> tuple[dict[Key, str], dict[str, Replayed]]:
    """What ``GET /features`` must answer for each key (JSON, so 1 and 1.0 differ), from the replay of every log."""
    definitions = load_definitions(settings.features_module)
    replays = {source: replay_log(settings, source) for source in SOURCES}
    expected = {}
    for view, entity in keys:
        definition = definitions.views[view]
        values = replays[definition.source.name].current(definition, entity)
        assert values is not None, (view, entity, "not in the replay")
        expected[(view, entity)] = json.dumps(values, sort_keys=True)
    return expected, replays


def answers(worker: Worker, keys: list[Key]) -> dict[Key, tuple[int, str | None]]:
    out = {}
    for view, entity in keys:
        status, body = worker.get(f"/features/{view}/{entity}")
        # 503 while a partition has no owner or is being restored, 404 while an entity's first event is not applied:
        # anything else (a 5xx above all) is a bug.
        assert status in (200, 404, 503), (view, entity, status, body)
        out[(view, entity)] = (status, json.dumps(body["features"], sort_keys=True) if status == 200 else None)
    return out


def wait_answers(worker: Worker, keys: list[Key], expected: dict[Key, str] | None = None,
                 timeout: float = 120) -> float:
    """Seconds until every key answers 200 (with ``expected``: with those values)."""
    started = time.monotonic()
    while True:
        got = answers(worker, keys)
        wrong = {k: v for k, v in got.items() if v[0] != 200 or (expected is not None and v[1] != expected[k])}
        if not wrong:
            return time.monotonic() - started
        assert time.monotonic() - started < timeout, (
            f"{len(wrong)} of {len(keys)} keys wrong on {worker.url} after {timeout}s, e.g. "
            f"{[(k, v, expected and expected[k]) for k, v in list(wrong.items())[:3]]}; log {worker.handle.log_path}")
        time.sleep(0.2)


def owned(worker: Worker) -> set[tuple[str, int]]:
    """(source, partition) this worker owns and has applied events of (its /stats)."""
    _, body = worker.get("/stats")
    return {(source, int(p)) for source, parts in body["sources"].items() for p in parts}


def both_ready(workers: list[Worker], timeout: float = 120) -> None:
    """All ready at once: each one's joining rebalanced the others."""
    deadline = time.monotonic() + timeout
    while not all(w.get("/healthz")[0] == 200 for w in workers):
        assert time.monotonic() < deadline, "the workers never were ready together"
        time.sleep(0.5)


def deploy_model(worker: Worker, name: str = "flight_delay") -> int:
    """``name`` trained on what the worker applied so far (once per session), deployed."""
    registry = Registry(worker.settings.registry_dir)
    if not registry.versions(name):
        trained = worker.cli("train", "--name", name, "--ntrees", "5")
        assert trained.returncode == 0, trained.stdout + trained.stderr
    version = max(registry.versions(name))
    deployed = worker.cli("models", "deploy", name, str(version))
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    deadline = time.monotonic() + 30
    while True:  # every departure from here on is scored
        model = next(m for m in worker.get("/models")[1]["models"] if m["name"] == name)
        if model["deployed"] and model["deployed"]["primary"] == version:
            return version
        assert time.monotonic() < deadline, model
        time.sleep(0.2)


def predictions_published(worker: Worker) -> int:
    """Primary predictions this worker process published since it started (its /metrics): a prediction
    record names the event it scored, not the worker that scored it."""
    from urllib.request import urlopen

    from prometheus_client.parser import text_string_to_metric_families

    with urlopen(worker.url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    return int(sum(sample.value for family in text_string_to_metric_families(text)
                   for sample in family.samples
                   if sample.name == "featurestream_predictions_total" and sample.labels.get("role") == "primary"))

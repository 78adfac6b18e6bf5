"""``featurestream bench``: throughput measured in one run, reported as ratios.

Three numbers over the same real departures:

- ``engine``: the shared processor alone (validation + late/dedup + views)
  with dict stores and the JSON round trip a table does: the CPU ceiling;
- ``publish``: the CLI producer into the event topic;
- ``worker``: a real worker process applying them from Kafka (time from the
  first record published to the last one applied, read from ``/stats``).

The machine is shared and noisy: compare ratios from one run, not absolutes.
"""
from __future__ import annotations

import asyncio
import tempfile
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path

from rich.console import Console
from rich.table import Table

from tables.validation import Valid, validate
from dev_tooling import flights_data, kafka_local
from dev_tooling.processes import http_json, start_worker, stop_pid, wait_ready
from kafka_plumbing.producer import encode, produce
from kafka_plumbing.settings import Settings
from kafka_plumbing.topics import ensure_topics_sync
from tables.definitions import Definitions
from tables.processor import SourceProcessor, Stores

console = Console()


@dataclass
class BenchResult:
    events: int
    engine_eps: float
    publish_eps: float | None = None
    worker_eps: float | None = None


def bench_engine(definitions: Definitions, payloads: list[bytes], max_bytes: int) -> float:
    source = definitions.source("departures")
    views = definitions.views_of("departures")
    processor = SourceProcessor(source, views)
    # the JSON round trip every table read and write does online
    stores = Stores.encoded(views={v.state_key: {} for v in views}, clocks={}, seen={})
    started = time.perf_counter()
    for payload in payloads:
        checked = validate(source, payload, max_bytes)
        assert isinstance(checked, Valid)
        processor.process(stores, 0, checked.record, checked.time_ms)
    return len(payloads) / (time.perf_counter() - started)


def bench_worker(settings: Settings, definitions: Definitions, events: list[dict]) -> tuple[float, float]:
    tag = uuid.uuid4().hex[:8]
    isolated = replace(settings, topic_prefix=f"bench{tag}", app_id=f"fs-bench-{tag}")
    ensure_topics_sync(isolated, list(definitions.sources))
    work = Path(tempfile.mkdtemp(prefix="fs-bench-"))
    handle = start_worker(kafka_local.free_port(), work / "data", work / "worker.log", env=isolated.as_env())
    try:
        with console.status("starting a worker for the benchmark"):
            wait_ready(handle)
        started = time.perf_counter()
        report = asyncio.run(
            produce(isolated, definitions.key_fields(), (("departures", e) for e in events), len(events), progress=False)
        )
        publish_eps = report.total / report.seconds
        with console.status(f"worker applying {len(events)} events"):
            while True:
                _, body = http_json(handle.url + "/stats")
                parts = body["sources"].get("departures", {}).values()
                if sum(p["applied"] for p in parts) >= len(events):
                    break
                time.sleep(0.05)
        worker_eps = len(events) / (time.perf_counter() - started)
    finally:
        stop_pid(handle.pid)
    return publish_eps, worker_eps


def run_bench(settings: Settings, definitions: Definitions, events_n: int, engine_only: bool) -> BenchResult:
    events = flights_data.load_events(limit=events_n, sources=("departures",))["departures"]
    payloads = [encode(e) for e in events]
    result = BenchResult(len(events), bench_engine(definitions, payloads, settings.max_payload_bytes))
    if not engine_only:
        kafka_local.start(settings)
        result.publish_eps, result.worker_eps = bench_worker(settings, definitions, events)
    table = Table(title=f"featurestream bench: {result.events} real departures, 1 worker, {settings.partitions} partitions")
    table.add_column("stage")
    table.add_column("events/s", justify="right")
    table.add_column("vs engine", justify="right")
    for name, value in (("engine (processor, no Kafka)", result.engine_eps),
                        ("publish (CLI producer)", result.publish_eps),
                        ("worker (Kafka -> tables -> feature log)", result.worker_eps)):
        if value is not None:
            table.add_row(name, f"{value:,.0f}", f"{value / result.engine_eps:.2f}")
    console.print(table)
    return result

"""The stack's own limits on the bench topic: what the worker is compared to.

- raw aiokafka consume + ``json.loads`` of every record;
- the same + one produce per event (the product's encoding and producer settings);
- a bare Faust agent that only consumes (``dev_tooling.bench_faust``, its own process);
- the same + one RocksDB table write per event, whose web page (one table
  value) is then measured with the same load generator as the worker's.

Every one is timed from its first record to the ``n``-th: start-up, group
join and rebalance are left out.
"""
from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from kafka_plumbing import clients

from dev_tooling import kafka_local
from dev_tooling.bench_faust import FaustReport
from dev_tooling.bench_latency import LoadResult, measure
from dev_tooling.processes import stop_pid
from kafka_plumbing.clients import start_consumer, stop_consumer
from kafka_plumbing.producer import encode
from kafka_plumbing.settings import Settings
from kafka_plumbing.topics import TopicSpec, ensure_topics

STALL_S = 120.0


@dataclass
class Rate:
    records: int
    seconds: float
    per_second: float = field(init=False)

    def __post_init__(self) -> None:
        self.per_second = self.records / self.seconds if self.seconds > 0 else 0.0


async def raw_consume(settings: Settings, topic: str, n: int, sink: str | None = None) -> Rate:
    """Consume ``n`` records of ``topic`` (no group) and parse each; with
    ``sink``, re-encode and produce each one to it, acknowledged before the clock stops."""
    consumer = clients.consumer(settings, topic, auto_offset_reset="earliest",
                                max_partition_fetch_bytes=4 * 1024 * 1024)
    # The CLI producer's settings (kafka_plumbing.producer.produce).
    producer = None if sink is None else clients.producer(
        settings, linger_ms=20, max_batch_size=512 * 1024, acks="all", enable_idempotence=True)
    await start_consumer(consumer)
    if producer is not None:
        await producer.start()
    try:
        count, first, pending = 0, None, []
        deadline = time.monotonic() + STALL_S
        while count < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"raw consumer: {count} of {n} records of {topic} in {STALL_S:.0f}s")
            batch = await consumer.getmany(timeout_ms=500, max_records=5000)
            for messages in batch.values():
                if messages and first is None:
                    first = time.perf_counter()
                for message in messages[: n - count]:
                    event = json.loads(message.value)
                    if producer is not None:
                        pending.append(await producer.send(sink, value=encode(event), key=message.key))
                    count += 1
                if len(pending) >= 2000:
                    await asyncio.gather(*pending)
                    pending.clear()
        await asyncio.gather(*pending)
        return Rate(count, time.perf_counter() - (first or time.perf_counter()))
    finally:
        await stop_consumer(consumer)
        if producer is not None:
            await producer.stop()


@dataclass
class BareFaust:
    """A running ``bench_faust`` process."""
    process: subprocess.Popen[bytes]
    report: Path
    url: str
    work: Path
    log: Path

    def wait_report(self) -> Rate:
        deadline = time.monotonic() + STALL_S
        while not self.report.exists():
            if self.process.poll() is not None:
                raise RuntimeError(f"bare Faust app exited with {self.process.returncode}; see {self.log}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"bare Faust app: no report after {STALL_S:.0f}s; see {self.log}")
            time.sleep(0.05)
        done = FaustReport(**json.loads(self.report.read_text()))
        return Rate(done.records, done.seconds)

    def stop(self) -> None:
        stop_pid(self.process.pid)
        self.process.wait(timeout=30)


def start_bare_faust(settings: Settings, topic: str, app_id: str, n: int, table: bool) -> BareFaust:
    work = Path(tempfile.mkdtemp(prefix="fs-bench-faust-"))
    port = kafka_local.free_port()
    cmd = [sys.executable, "-m", "dev_tooling.bench_faust", "--topic", topic, "--bootstrap", settings.bootstrap,
           "--app-id", app_id, "--expect", str(n), "--report", str(work / "report.json"),
           "--data-dir", str(work / "data"), "--web-port", str(port), "--partitions", str(settings.partitions)]
    if table:
        cmd.append("--table")
    log = work / "faust.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                   cwd=Path(__file__).resolve().parent.parent)
    return BareFaust(process, work / "report.json", f"http://127.0.0.1:{port}", work, log)


@dataclass
class Baselines:
    raw_consume: Rate
    raw_consume_produce: Rate
    faust_consume: Rate
    faust_table: Rate
    faust_web: dict[str, LoadResult]  # by request rate


def run_baselines(settings: Settings, sink_settings: Settings, n: int, keys: list[str],
                  read_rates: list[int], read_seconds: float) -> Baselines:
    """All four on ``settings``' departures topic (already holding at least ``n``
    records); the produce baseline writes to ``sink_settings``' copy of it."""
    topic = settings.topics.events("departures")
    sink = sink_settings.topics.events("departures")
    asyncio.run(ensure_topics(sink_settings, [TopicSpec(sink, settings.partitions, {})]))
    consumed = asyncio.run(raw_consume(settings, topic, n))
    produced = asyncio.run(raw_consume(settings, topic, n, sink=sink))
    bare = start_bare_faust(settings, topic, f"bare-{settings.app_id}", n, table=False)
    try:
        faust_consume = bare.wait_report()
    finally:
        bare.stop()
        shutil.rmtree(bare.work, ignore_errors=True)
    bare = start_bare_faust(settings, topic, f"bare-table-{settings.app_id}", n, table=True)
    try:
        faust_table = bare.wait_report()
        urls = [f"{bare.url}/value/{key}" for key in keys]
        web = {str(rate): measure(urls, rate, read_seconds) for rate in read_rates}
    finally:
        bare.stop()
        shutil.rmtree(bare.work, ignore_errors=True)
    return Baselines(consumed, produced, faust_consume, faust_table, web)


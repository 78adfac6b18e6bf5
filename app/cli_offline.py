"""Offline commands: replay a log, build a training set, train a model."""
from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

from app.cli_common import console, deployment_settings, feature_definitions


def cmd_replay(args: argparse.Namespace) -> int:
    from rich.progress import Progress

    from kafka_plumbing import log_reader
    from app.row_files import check_path, write_rows
    from tables.log_record import from_messages, read_file
    from tables.replay import ReplayCounts, feature_columns, replay

    settings = deployment_settings(args, on_kafka=not args.events)
    definitions = feature_definitions(args)
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
        records = from_messages(log_reader.read_topic(settings, topic, bounds), settings.partitions)
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

    settings = deployment_settings(args, on_kafka=not args.events_dir)
    definitions = feature_definitions(args)
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
            deployment_settings(args, on_kafka=not args.events_dir), feature_definitions(args), args.name,
            args.ntrees, args.nfolds, Path(args.events_dir) if args.events_dir else None,
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

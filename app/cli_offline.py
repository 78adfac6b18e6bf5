"""Offline commands: replay a log, build a training set, train a model."""
from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from app.cli_common import console, deployment_settings, feature_definitions

if TYPE_CHECKING:
    from rich.progress import Progress

    from kafka_plumbing.settings import Settings
    from tables.definitions import Definitions
    from tables.dsl import Source
    from tables.replay import ReplayCounts


def cmd_replay(args: argparse.Namespace) -> int:
    from rich.progress import Progress

    from app.row_files import check_path, write_rows
    from models.replay_pool import replay_pool
    from tables.replay import ReplayCounts, feature_columns

    settings = deployment_settings(args, on_kafka=not args.events)
    definitions = feature_definitions(args)
    source = definitions.source(args.source)
    out = Path(args.out)
    check_path(out)
    workers, dask = _parallelism(args, one_partition=bool(args.events))
    counts = ReplayCounts()
    columns = ["event_id", "entity", "event_time_ms", "partition", "offset",
               *feature_columns(definitions.views_of(source.name))]
    with replay_pool(workers, dask) as pool, Progress(console=console) as bar:
        if pool is None:
            written = write_rows(out, _replay_here(args, settings, definitions, source, counts, bar), columns)
        else:
            from models import parallel_replay
            from models.replay_pool import describe

            topic = settings.topics.events(source.name)
            jobs = parallel_replay.plan(settings, definitions.module, source.name)
            # Printed, not in the bar's description, which rich cuts to the terminal's width.
            console.print(f"{topic}: {len(jobs)} partitions with records, on {describe(workers, dask)}", highlight=False)
            task = bar.add_task(f"replaying {topic}", total=sum(job.size for job in jobs))
            rows = parallel_replay.run(pool, jobs, counts, on_done=lambda job: bar.advance(task, job.size))
            written = write_rows(out, rows, columns)
    console.print(
        f"{written} feature rows -> {out}  (applied {counts.applied}, late {counts.late}, "
        f"duplicate {counts.duplicate}, invalid {counts.invalid})"
    )
    return 0


def _replay_here(
    args: argparse.Namespace, settings: Settings, definitions: Definitions, source: Source,
    counts: ReplayCounts, bar: Progress,
) -> Iterator[dict[str, Any]]:
    """The whole log in this process, streamed: the topic partition after partition, or an exported file."""
    from kafka_plumbing import log_reader
    from tables.log_record import from_messages, read_file
    from tables.replay import replay

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
    task = bar.add_task(f"replaying {origin}", total=total)
    rows = replay(source, definitions.views_of(source.name), records, settings.max_payload_bytes, counts)
    for i, row in enumerate(rows, start=1):
        if i % 1000 == 0:
            bar.update(task, completed=counts.applied + counts.late + counts.duplicate + counts.invalid)
        yield row
    bar.update(task, completed=total)


def _parallelism(args: argparse.Namespace, one_partition: bool) -> tuple[int, str | None]:
    """``--workers`` and ``--dask`` as given, or (1, None) for an exported file,
    which is one partition and gains nothing from more processes."""
    if one_partition and (args.workers > 1 or args.dask):
        console.print("[yellow]an exported file is one partition: replayed in this process")
        return 1, None
    return args.workers, args.dask


def cmd_training_set(args: argparse.Namespace) -> int:
    import pandas as pd

    from app.row_files import check_path, read_rows, write_rows
    from models.replay_pool import replay_pool
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
    workers, dask = _parallelism(args, one_partition=events_dir is not None)
    started = time.perf_counter()
    try:
        with replay_pool(workers, dask) as pool:
            frame = point_in_time(settings, definitions, labels, args.views, args.time_column, events_dir, pool)
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
            args.ntrees, args.nfolds, Path(args.events_dir) if args.events_dir else None, args.max_depth,
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

"""Point-in-time training sets, built by replaying the logs.

Two shapes:

- ``model_frame``: one row per event of a model's scored source, with the
  event's fields and the view values the online path served for it (the
  replay of the same log, so exactly the same numbers), joined to its label.
- ``point_in_time``: arbitrary label rows ``(entity keys..., time, label)``
  joined to any views by the T-based rule: for a label at time T, a view's
  value aggregates the entity's applied events with time in
  ``[floor(T - W, H), T]``, never anything later.
"""
from __future__ import annotations

import asyncio
from concurrent.futures import Executor
from pathlib import Path
from typing import Any, Iterator

import pandas as pd
from rich.console import Console
from rich.progress import Progress

from tables.validation import parse_time_ms
from kafka_plumbing import log_reader
from kafka_plumbing.settings import Settings
from tables.labels import label_of
from tables.cross_source import CrossLog, empty_logs, read_inputs
from tables.model_spec import ModelSpec, input_views
from tables.definitions import Definitions
from tables.point_in_time import as_of_values
from tables.log_record import LogRecord, from_messages, read_file
from tables.replay import ReplayCounts, replay
from models import parallel_replay

console = Console(stderr=True)


def _log(settings: Settings, source: str, events_dir: Path | None) -> tuple[Iterator[LogRecord], int | None]:
    if events_dir is not None:
        path = events_dir / f"{source}.jsonl"
        if not path.exists() and "." in source:
            # a re-keyed log holds its parent's events: offline, read the parent's export
            path = events_dir / f"{source.split('.', 1)[0]}.jsonl"
        if not path.exists():
            raise FileNotFoundError(f"{path}: no exported log for source {source}")
        return read_file(path), None
    topic = settings.topics.events(source)
    bounds = asyncio.run(log_reader.topic_size(settings, topic))
    return from_messages(log_reader.read_topic(settings, topic, bounds), settings.partitions), sum(e - f for f, e in bounds.values())


def replayed(
    settings: Settings, definitions: Definitions, source: str, events_dir: Path | None, bar: Progress,
    pool: Executor | None = None,
) -> list[dict[str, Any]]:
    """Every applied event of ``source`` with its served features and fields;
    with ``pool``, the topic's partitions side by side (an exported file is one
    partition: it is replayed here)."""
    if pool is not None and events_dir is None:
        jobs = parallel_replay.plan(settings, definitions.module, source, include_record=True)
        task = bar.add_task(f"replaying {source}, {len(jobs)} partitions", total=sum(j.size for j in jobs))
        return parallel_replay.run(pool, jobs, on_done=lambda job: bar.advance(task, job.size))
    records, total = _log(settings, source, events_dir)
    task = bar.add_task(f"replaying {source}", total=total)
    counts = ReplayCounts()
    rows = []
    for row in replay(definitions.source(source), definitions.views_of(source), records,
                      settings.max_payload_bytes, counts, include_record=True):
        rows.append(row)
        if len(rows) % 2000 == 0:
            bar.update(task, completed=counts.applied + counts.late + counts.duplicate + counts.invalid)
    bar.update(task, completed=total or len(rows), total=total or len(rows))
    return rows


def model_frame(
    settings: Settings, definitions: Definitions, spec: ModelSpec, events_dir: Path | None = None
) -> pd.DataFrame:
    frame = pd.DataFrame(model_rows(settings, definitions, spec, events_dir))
    frame["event_time"] = pd.to_datetime(frame["event_time_ms"], unit="ms", utc=True)
    return frame


def model_rows(
    settings: Settings, definitions: Definitions, spec: ModelSpec, events_dir: Path | None = None
) -> list[dict[str, Any]]:
    """One training row per applied event of the model's source, as plain values: the
    event's identity and position, every model input, its label."""
    numeric, categorical, _ = spec.feature_columns(definitions)
    with Progress(console=console) as bar:
        scored = replayed(settings, definitions, spec.source, events_dir, bar)
        labelled = replayed(settings, definitions, spec.label_source, events_dir, bar)
        inputs = cross_inputs(settings, definitions, spec, scored, events_dir)
    # The last applied label event per key wins (log order); live quality uses the same label_of.
    labels = {found.key: found.value for row in labelled if (found := label_of(spec, row["record"])) is not None}
    rows = []
    for row in scored:
        record = row["record"]
        out: dict[str, Any] = {
            "event_id": row["event_id"],
            "event_time_ms": row["event_time_ms"],
            "partition": row["partition"],
            "offset": row["offset"],
            spec.join_key: record.get(spec.join_key),
        }
        cross = inputs.get((row["partition"], row["offset"]), {})
        for column in numeric + categorical:
            if "." not in column:
                out[column] = record.get(column)
            elif column in row:
                out[column] = row[column]
            else:
                view, name = column.split(".", 1)
                out[column] = cross[view][name]
        key = record.get(spec.join_key)
        out["label"] = labels.get(str(key)) if key is not None else None
        rows.append(out)
    return rows


def cross_inputs(
    settings: Settings, definitions: Definitions, spec: ModelSpec, scored: list[dict[str, Any]],
    events_dir: Path | None = None,
) -> dict[tuple[int, int], dict[str, dict[str, Any]]]:
    """(partition, offset) of each scored event -> its cross-source inputs as of its time, read from
    the other logs with the same ``CrossLog`` the worker serves them from."""
    views = input_views(spec, definitions)
    if not views:
        return {}
    logs: dict[str, CrossLog] = empty_logs(definitions, views, settings.partitions, settings.max_payload_bytes)
    for root, log in logs.items():
        log.feed_all(_log(settings, root, events_dir)[0])
    out: dict[tuple[int, int], dict[str, dict[str, Any]]] = {}
    # In time order: each entity's read then only moves forward (the values do not depend on it).
    for row in sorted(scored, key=lambda r: r["event_time_ms"]):
        out[(row["partition"], row["offset"])] = read_inputs(logs, views, row["record"], row["event_time_ms"]).values
    return out


def _time_ms(value: Any) -> int:
    """ISO-8601 text, epoch milliseconds, or a zone-aware timestamp (Parquet)."""
    if hasattr(value, "timestamp") and not isinstance(value, str):
        if getattr(value, "tzinfo", None) is None:
            raise ValueError(f"label time {value} has no time zone")
        return int(value.timestamp() * 1000)
    return parse_time_ms(value)


def point_in_time(
    settings: Settings,
    definitions: Definitions,
    labels: pd.DataFrame,
    views: list[str],
    time_column: str = "time",
    events_dir: Path | None = None,
    pool: Executor | None = None,
) -> pd.DataFrame:
    """``labels`` plus one column per feature of each view, by the T-based rule;
    ``pool``: where the logs' partitions are replayed (None: in this process)."""
    if time_column not in labels.columns:
        raise ValueError(f"labels need a {time_column!r} column (ISO-8601 or epoch ms)")
    times = [_time_ms(t) for t in labels[time_column].tolist()]
    for name in views:  # fail before minutes of replay, not after
        view = definitions.views.get(name)
        if view is None:
            raise ValueError(f"unknown view {name!r}; known: {', '.join(definitions.views)}")
        if view.entity not in labels.columns:
            raise ValueError(f"labels need a {view.entity!r} column for view {name}")
    out = labels.copy()
    logs: dict[str, list[tuple[dict[str, Any], int]]] = {}  # views sharing a source replay it once
    with Progress(console=console) as bar:
        for name in views:
            view = definitions.views[name]
            if view.source.name not in logs:
                rows = replayed(settings, definitions, view.source.name, events_dir, bar, pool)
                logs[view.source.name] = [(row["record"], row["event_time_ms"]) for row in rows]
            applied = logs[view.source.name]
            entities = [None if pd.isna(e) else str(e) for e in labels[view.entity].tolist()]
            queries = [(e or "", t) for e, t in zip(entities, times)]
            task = bar.add_task(f"joining {name} point-in-time", total=None)
            values = as_of_values(view, applied, queries)
            for feat in view.features:
                out[f"{name}.{feat.name}"] = [
                    v[feat.name] if e is not None else None for v, e in zip(values, entities)
                ]
            bar.update(task, completed=1, total=1)
    return out

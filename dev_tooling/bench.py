"""``featurestream bench``: the worker measured against its own stack's limits, in one run.

On the local broker, with real departures, in alternating rounds (each round
on fresh topics, medians reported), every stage on the same topic:

1. baselines (``bench_baselines``): raw aiokafka consume + parse, + one
   produce per event, a bare Faust agent, + one RocksDB write per event;
2. the full worker (``bench_worker``), with ``flight_delay`` deployed when
   the registry has one (``--train`` trains it first), and the Kafka records
   it writes per departure; the same under exactly once, and with
   ``featurestream monitor`` running beside it;
3. ``GET /features`` latency from an open-loop generator in its own process
   (``bench_latency``): worker idle, worker ingesting at a fixed rate, and a
   bare Faust page returning one table value; the ingest rate with and
   without that read load;
4. event-to-prediction latency and freshness at fixed input rates;
   departures scored with and without inputs held for other logs
   (``bench_cross``);
5. replay and training-set rates (``bench_offline``).

One table (stage, value, unit, ratio to its baseline) and a JSON file. The
machine is shared and noisy: compare ratios from one run, not absolutes.
"""
from __future__ import annotations

import asyncio
import json
import math
import statistics
import uuid
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from kafka_plumbing import clients
from rich.console import Console
from rich.table import Table

from dev_tooling import flights_data, kafka_local
from dev_tooling.bench_baselines import run_baselines
from dev_tooling.bench_config import BenchConfig
from dev_tooling.bench_cross import HELD_MODEL, PLAIN_MODEL, run_cross, slice_of
from dev_tooling.bench_latency import measure
from dev_tooling.bench_offline import run_offline
from dev_tooling.bench_report import rows_of
from dev_tooling.bench_worker import BenchWorker
from kafka_plumbing.producer import produce
from kafka_plumbing.settings import Settings
from kafka_plumbing.topics import ensure_topics_sync
from tables.definitions import Definitions, load as load_definitions

FEATURES = "tables.flights"

console = Console(stderr=True)


@dataclass
class Slices:
    """The departures each phase publishes: consecutive, so never late or duplicate."""
    ingest: list[dict]
    quiet: list[dict]
    loaded: list[dict]
    paced: dict[int, list[dict]] = field(default_factory=dict)
    # The first departures again with their arrivals and weather (each stage has its own topics).
    cross: dict[str, list[dict]] = field(default_factory=dict)


def slices_for(config: BenchConfig) -> Slices:
    per_phase = int(config.ingest_rate * config.phase_seconds)
    paced_sizes = [int(rate * config.phase_seconds) for rate in config.latency_rates]
    total = config.events + 2 * per_phase + sum(paced_sizes)
    events = flights_data.load_events(limit=total, sources=("departures",), progress=False)["departures"]
    at = config.events
    out = Slices(events[:at], events[at:at + per_phase], events[at + per_phase:at + 2 * per_phase])
    if config.runs("cross_source"):
        out.cross = slice_of(config.events)
    at += 2 * per_phase
    for rate, size in zip(config.latency_rates, paced_sizes):
        out.paced[rate] = events[at:at + size]
        at += size
    return out


def _flatten(prefix: str, value: Any, out: dict[str, float]) -> None:
    """Nested results as ``a.b.c`` keys; a value nothing measured (NaN) is left out."""
    if isinstance(value, dict):
        for key, item in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), item, out)
    elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        out[prefix] = float(value)


def run_round(index: int, tag: str, base: Settings, definitions: Definitions, config: BenchConfig,
              slices: Slices) -> dict[str, float]:
    settings = replace(base, topic_prefix=f"bench{tag}r{index}", app_id=f"fs-bench{tag}r{index}", partitions=4)
    ensure_topics_sync(settings, list(definitions.sources))
    origins = sorted({str(e["origin"]) for e in slices.ingest})
    found: dict[str, Any] = {}
    if config.runs("worker"):
        worker = BenchWorker(settings, definitions.key_fields())
        with console.status(f"round {index + 1}: starting a worker"):
            worker.start()
        try:
            found["model"] = worker.deploy_latest()
            with console.status(f"round {index + 1}: worker ingesting {len(slices.ingest)} departures"):
                found["worker"] = {"ingest": asdict(worker.ingest(slices.ingest))}
            if config.runs("reads"):
                with console.status(f"round {index + 1}: GET /features latency"):
                    urls = worker.read_urls(origins)
                    found["reads"] = {
                        "idle": {str(r): asdict(measure(urls, r, config.phase_seconds)) for r in config.read_rates},
                        "quiet": asdict(worker.paced(slices.quiet, config.ingest_rate)),
                        "loaded": asdict(worker.paced(slices.loaded, config.ingest_rate,
                                                      reads=(urls, max(config.read_rates)))),
                    }
            if config.runs("latency"):
                with console.status(f"round {index + 1}: event-to-prediction latency and freshness"):
                    found["latency"] = {str(rate): asdict(worker.paced(events, rate, observe=True))
                                        for rate, events in slices.paced.items()}
        finally:
            worker.stop()
        if config.runs("exactly_once"):
            # The same departures again, on their own topics, with transactions per flush.
            eos = replace(settings, topic_prefix=f"{settings.topic_prefix}-eos", app_id=f"{settings.app_id}-eos",
                          processing_guarantee="exactly_once")
            ensure_topics_sync(eos, list(definitions.sources))
            worker = BenchWorker(eos, definitions.key_fields())
            with console.status(f"round {index + 1}: worker ingesting under exactly_once"):
                worker.start()
                try:
                    worker.deploy_latest()
                    found["exactly_once"] = {"ingest": asdict(worker.ingest(slices.ingest))}
                finally:
                    worker.stop()
        if config.runs("monitor"):
            # The same departures again, with `featurestream monitor` reading the predictions beside the worker.
            watched = replace(settings, topic_prefix=f"{settings.topic_prefix}-mon", app_id=f"{settings.app_id}-mon")
            ensure_topics_sync(watched, list(definitions.sources))
            worker = BenchWorker(watched, definitions.key_fields())
            with console.status(f"round {index + 1}: worker ingesting with featurestream monitor beside it"):
                worker.start()
                try:
                    with worker.monitor():
                        worker.deploy_latest()
                        found["monitor"] = {"ingest": asdict(worker.ingest(slices.ingest))}
                finally:
                    worker.stop()
        if config.runs("cross_source"):
            found["cross_source"] = {}
            for name, model in (("plain", PLAIN_MODEL), ("held", HELD_MODEL)):
                own = replace(settings, topic_prefix=f"{settings.topic_prefix}-{name}",
                              app_id=f"{settings.app_id}-{name}")
                ensure_topics_sync(own, list(definitions.sources))
                with console.status(f"round {index + 1}: worker scoring {model} on departures, arrivals, weather"):
                    run = run_cross(own, definitions, slices.cross, model)
                if run is not None:
                    found["cross_source"][name] = asdict(run)
    else:
        asyncio.run(produce(settings, definitions.key_fields(), (("departures", e) for e in slices.ingest),
                            len(slices.ingest), progress=False))
    if config.runs("baselines"):
        with console.status(f"round {index + 1}: baselines (raw aiokafka, bare Faust)"):
            sink = replace(settings, topic_prefix=f"{settings.topic_prefix}-sink")
            found["baselines"] = asdict(run_baselines(settings, sink, len(slices.ingest), origins,
                                                      list(config.read_rates), config.phase_seconds))
    if config.runs("offline"):
        with console.status(f"round {index + 1}: replay and training set"):
            found["offline"] = asdict(run_offline(settings, definitions, slices.ingest))
    flat: dict[str, float] = {}
    _flatten("", {k: v for k, v in found.items() if k != "model"}, flat)
    if found.get("model"):
        flat["model_deployed"] = 1.0
    return flat


def medians(rounds: list[dict[str, float]]) -> dict[str, float]:
    keys = sorted({key for r in rounds for key in r})
    return {key: statistics.median([r[key] for r in rounds if key in r]) for key in keys}


async def _delete_topics(settings: Settings, tag: str) -> None:
    """The bench's own topics only: its unique tag is in every prefix and app id,
    so in every name, Faust's changelogs and the bare apps' included."""
    admin = clients.admin(settings)
    await admin.start()
    try:
        ours = [t for t in await admin.list_topics() if f"bench{tag}" in t]
        if ours:
            await admin.delete_topics(ours)
    finally:
        await admin.close()


def train_model(base: Settings, definitions: Definitions, tag: str, events: int) -> str:
    """Train ``flight_delay`` and ``flight_delay_xs`` on their own topics (the three logs) into the registry."""
    from models.pipeline import train_from_log

    settings = replace(base, topic_prefix=f"bench{tag}-train", app_id=f"fs-bench{tag}-train", partitions=4)
    ensure_topics_sync(settings, list(definitions.sources))
    stream = flights_data.interleave(flights_data.load_events(limit=events, progress=False))
    asyncio.run(produce(settings, definitions.key_fields(), stream, len(stream), progress=False))
    versions = [train_from_log(settings, definitions, name, ntrees=20) for name in (PLAIN_MODEL, HELD_MODEL)]
    return ", ".join(f"{v.name} v{v.version}" for v in versions)


def run_bench(settings: Settings, config: BenchConfig) -> dict[str, Any]:
    # Its stages name the flights module's source, views and model.
    settings = replace(settings, features_module=FEATURES)
    definitions = load_definitions(FEATURES)
    kafka_local.start(settings)
    tag = uuid.uuid4().hex[:8]
    model_note = None
    if config.train:
        with console.status("training flight_delay and flight_delay_xs for the bench (H2O)"):
            model_note = train_model(settings, definitions, tag, max(config.events, 5000))
    slices = slices_for(config)
    rounds = []
    try:
        for index in range(config.rounds):
            rounds.append(run_round(index, tag, settings, definitions, config, slices))
    finally:
        asyncio.run(_delete_topics(settings, tag))
    result = medians(rounds)
    rows = rows_of(result, config)
    table = Table(title=f"featurestream bench: {config.events} real departures, 1 worker, 4 partitions, "
                        f"medians of {config.rounds} round(s)")
    for column, justify in (("stage", "left"), ("value", "right"), ("unit", "left"), ("vs", "left"),
                            ("ratio", "right")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for row in rows:
        table.add_row(row.stage, row.shown, row.unit, row.baseline or "", "" if row.ratio is None else f"{row.ratio:.2f}")
    Console(width=160).print(table)
    report = {
        "config": {**asdict(config), "skip": sorted(config.skip), "json_out": str(config.json_out)},
        "trained": model_note,
        "medians": result,
        "rows": [asdict(row) for row in rows],
        "rounds": rounds,
    }
    config.json_out.parent.mkdir(parents=True, exist_ok=True)
    config.json_out.write_text(json.dumps(report, indent=2, default=str))
    console.print(f"wrote {config.json_out}")
    return report


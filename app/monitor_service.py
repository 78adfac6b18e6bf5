"""``featurestream monitor``: live model quality and drift in a process of its own.

The same monitor as ``FS_MONITOR=1`` (``agents.quality_monitor``), which
reads the prediction and label topics of the whole deployment, but on its
own core rather than the loop that ingests: in the worker's process it took
a fifth of the ingest rate (docs/BENCHMARKS.md).  One per deployment, so
there is nothing to elect.  It serves its figures on ``GET /metrics`` of its
own port, publishes them to ``fs.metrics`` keyed by its URL, and writes its
alerts to ``fs.alerts``.
"""
from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass, field

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from agents.metrics_publisher import Publisher
from agents.quality_monitor import QualityCollector, QualityMonitor, run
from app.web_server import HardenedRunner, HttpLimits, json_errors
from kafka_plumbing import clients
from kafka_plumbing.settings import Settings
from models.registry import Registry
from tables.definitions import Definitions
from tables.model_spec import model_specs

log = logging.getLogger(__name__)


@dataclass
class MonitorService:
    monitor: QualityMonitor
    url: str
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.registry.register(QualityCollector(self.monitor))

    async def metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(self.registry), content_type=CONTENT_TYPE_LATEST.split(";")[0],
                            charset="utf-8")

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"ready": True, "models": sorted(self.monitor.specs)})


def build(service: MonitorService, limits: HttpLimits) -> web.Application:
    application = web.Application(middlewares=[json_errors(limits, lambda status: None)],
                                  client_max_size=limits.max_body_bytes)
    application.router.add_get("/metrics", service.metrics)
    application.router.add_get("/healthz", service.health)
    return application


async def publish_every(publisher: Publisher, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), timeout=publisher.interval_s)
        except asyncio.TimeoutError:
            await publisher.publish()


async def serve(settings: Settings, definitions: Definitions, host: str, port: int) -> None:
    url = settings.canonical_url or f"http://{host}:{port}"
    monitor = QualityMonitor(settings, definitions, model_specs(definitions), Registry(settings.registry_dir),
                             url)
    service = MonitorService(monitor, url)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, service.stop.set)
    limits = HttpLimits.from_settings(settings)
    runner = HardenedRunner(build(service, limits), access_log=None, keepalive_timeout=limits.idle_timeout_s)
    await runner.setup()
    await web.TCPSite(runner, host, port, reuse_address=True).start()
    producer = clients.producer(settings, linger_ms=5)
    await producer.start()

    async def send(key: bytes, value: bytes) -> object:
        return await producer.send_and_wait(settings.topics.metrics, value, key=key)

    watching = asyncio.create_task(run(monitor, service.stop.is_set))
    watching.add_done_callback(lambda _: service.stop.set())  # a monitor that died ends the process, saying why
    tasks = [watching]
    if settings.metrics_interval_s > 0:
        publisher = Publisher(send, service.registry, url, settings.metrics_interval_s)
        tasks.append(asyncio.create_task(publish_every(publisher, service.stop)))
    log.info("monitor serving on %s:%s for models %s", host, port, ", ".join(sorted(monitor.specs)) or "none")
    try:
        await service.stop.wait()
    finally:
        await asyncio.gather(*tasks, return_exceptions=True)
        await producer.stop()
        await runner.cleanup()
    if not watching.cancelled() and watching.exception() is not None:
        raise watching.exception()  # type: ignore[misc]

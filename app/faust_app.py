"""The Faust app factory: one app per worker process, built from settings and
a feature module.  Nothing is registered at import time."""
from __future__ import annotations

from pathlib import Path

import faust
from faust.types.auth import CredentialsT

from agents.backfill import Backfill
from agents.console_feed import register_console_feed
from agents.control_plane import register_control_agent, register_control_plane
from agents.ingest import register_ingest
from agents.metrics import Metrics
from agents.health_alerts import register_health_alerts
from agents.metrics_publisher import register_metrics_publisher
from agents.placement import Placement
from agents.quality_monitor import register_quality_monitor
from agents import serving_snapshot
from agents.readiness import is_ready
from agents.serving_snapshot import SnapshotWriter
from agents.scoring import register_scoring
from app import web
from app.runtime import Runtime
from app.tokens import load_tokens
from tables.model_spec import model_specs
from kafka_plumbing import clients, signing
from kafka_plumbing.partition_store import PartitionStore, store_path
from kafka_plumbing.settings import Settings
from tables.definitions import Definitions


SNAPSHOT_EVERY_S = 0.1  # how soon the read process learns of a rebalance or a cut-over


def _broker_urls(bootstrap: str) -> str:
    return ";".join(f"kafka://{host.strip()}" for host in bootstrap.split(",") if host.strip())


def _broker_credentials(settings: Settings) -> CredentialsT | None:
    """The factory's security as Faust credentials, so the app's consumers,
    producers and topic creation talk to the brokers as every other client."""
    security = clients.security(settings)
    if security.uses_sasl:
        return faust.SASLCredentials(username=security.sasl_username, password=security.sasl_password,
                                     ssl_context=security.ssl_context, mechanism=security.sasl_mechanism)
    if security.ssl_context is not None:
        return faust.SSLCredentials(security.ssl_context)
    return None


def create_app(
    settings: Settings,
    definitions: Definitions,
    data_dir: Path,
    web_port: int,
    web_host: str = "127.0.0.1",
    internal_port: int | None = None,
) -> Runtime:
    """``web_port`` is the worker's public address (its URL for routing); with a
    read process in front of it (``app.reader``), Faust's web server listens
    on ``internal_port`` on the loopback and the read process proxies to it."""
    canonical = f"http://{web_host if web_host != '0.0.0.0' else '127.0.0.1'}:{web_port}"
    if internal_port is not None:
        web_host, web_port = "127.0.0.1", internal_port
    app = faust.App(
        settings.app_id,
        broker=_broker_urls(settings.bootstrap),
        broker_credentials=_broker_credentials(settings),
        store="rocksdb://",
        datadir=str(data_dir),
        web_port=web_port,
        web_bind=web_host,
        web_host=web_host,
        canonical_url=settings.canonical_url or canonical,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication,
        key_serializer="raw",
        value_serializer="raw",
        # Batch outputs: per-message produce is Faust's first bottleneck.
        producer_linger_ms=10,
        producer_max_batch_size=256 * 1024,
        broker_commit_every=1000,
        # A worker that died without leaving its group blocks the next
        # rebalance until its session expires: keep that short.
        broker_session_timeout=15,
        broker_heartbeat_interval=3,
        autodiscover=False,
        web_in_thread=False,
        # Faust's own /router/ and /table/ pages show the group's topology and
        # raw state to anyone: the worker's routes are the API.
        web_router_enabled=False,
        web_tables_enabled=False,
        # aiohttp refuses a larger body with a 413 as it reads it (a chunked
        # body has no Content-Length to check first: app.web_server).
        web_application_options={"client_max_size": settings.http_max_body_bytes},
    )
    placement = Placement(str(app.conf.canonical_url))
    metrics = Metrics()
    specs = model_specs(definitions)
    tokens = load_tokens(settings)  # a bad token definition stops the start, as a missing key does
    signer = signing.signer(settings, f"worker:{app.conf.canonical_url}")
    plane = register_control_plane(app, settings, definitions, signer,
                                   lambda role: metrics.control_rejected.labels(role).inc())
    scoring = register_scoring(app, settings, definitions, specs, metrics, plane) if specs else None
    register_control_agent(app, plane, scoring.check_command if scoring else None)
    backfill = Backfill(app, settings, plane, placement)
    store = PartitionStore(store_path(data_dir))
    sources = register_ingest(app, settings, definitions, store, metrics, plane, backfill, placement, scoring)
    backfill.watch(sources)
    runtime = Runtime(app, settings, definitions, sources, metrics, scoring, plane, backfill, placement, store, tokens,
                      register_console_feed(app, settings))
    snapshots = SnapshotWriter(store)

    def write_snapshot() -> None:
        snapshots.write(serving_snapshot.take(is_ready(app, placement), placement, sources, plane))

    plane.on_change = write_snapshot  # a cut-over, a fill status, a rebalance: at once
    placement.on_change = write_snapshot

    @app.timer(SNAPSHOT_EVERY_S)
    async def publish_serving_snapshot() -> None:  # the rest of readiness (Faust's own group): within this period
        write_snapshot()

    publisher = register_metrics_publisher(app, settings.topics.metrics, metrics, str(app.conf.canonical_url),
                                           settings.metrics_interval_s)
    if publisher is not None:
        publisher.readers.append(runtime.console_history.snapshot)
    register_health_alerts(app, settings, publisher)
    register_quality_monitor(app, settings, definitions, specs, metrics, str(app.conf.canonical_url))
    web.register(runtime)
    return runtime

"""The worker's read process: ``GET /features`` off the ingest loop.

Reads and ingest in one process share one event loop and one interpreter
lock: a flush or a burst of records holds reads back (p99 258 ms while
ingesting), and a thousand reads a second take a fifth of ingest's time.
So a worker starts this process beside it, on the worker's public port:

- it follows the worker's partition store as a RocksDB secondary instance
  (``kafka_plumbing.partition_store``), caught up each time the worker
  signals a write (a byte on this process's stdin; a closed stdin means
  the worker is gone, and this process ends with it);
- it answers ``GET /features/{view}/{entity}`` with the same code as the
  worker's own view (``app.feature_read``), from the flushed state and the
  worker's serving snapshot (``agents.serving_snapshot``: readiness,
  routing, control state), forwarding to the owner like the worker would;
- every other request is proxied, as it is, to the worker's own web server
  on an internal loopback port.

Reads see what the worker has flushed and written locally, as they do in
the worker itself: never state a crash could undo.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry
from yarl import URL

from agents.control_plane import ControlState
from agents.serving_snapshot import META_KEY, ServingSnapshot, decode
from agents.source_state import partition_stores
from app.batch_read import BATCH_PATH, FORWARDED_HEADER, BatchLimits, answer_batch
from app.feature_read import Forward, read_features
from app.http_metrics import merged_exposition, reader_histogram, timing
from app.routing import FORWARD_TIMEOUT_S, NoOwner, forward, owner
from app.tokens import READ, Decision, load_tokens
from app.web_auth import judge, sees_view
from app.web_common import FEATURES_PATH, error_body
from app.web_server import HardenedRunner, HttpLimits, json_errors
from kafka_plumbing.partition_store import PartitionStore, store_path
from kafka_plumbing.settings import Settings
from kafka_plumbing.settings import load as load_settings
from tables.definitions import Definitions, load as load_definitions
from tables.processor import SourceProcessor, Stores
from tables.state import PartitionClock

log = logging.getLogger("featurestream.reader")

CATCH_UP_GAP_S = 0.01  # with no read asking sooner, a write is caught up with this long after its signal
# Not passed on by the proxy: hop-by-hop headers, and the body's encoding
# (aiohttp has decoded the body it hands on, both ways).
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "host", "content-length", "upgrade", "content-encoding"}


class Follower:
    """The worker's store as this process sees it, and its latest serving snapshot;
    with the settings, tokens and definitions a request is judged by (``app.web_auth.AuthContext``)."""

    def __init__(self, settings: Settings, definitions: Definitions, data_dir: Path) -> None:
        secondary = data_dir / "partition-state-reader"
        shutil.rmtree(secondary, ignore_errors=True)  # a secondary's files are its own, rebuilt each start
        self.store = PartitionStore(store_path(data_dir), secondary=secondary)
        self.settings = settings
        self.definitions = definitions
        self.tokens = load_tokens(settings)
        self.processors = {name: definitions.processor(name) for name in definitions.sources}
        self.snapshot: ServingSnapshot | None = None
        self.snapshot_bytes: bytes | None = None
        self.control = ControlState(definitions)
        self.stores: dict[tuple[str, int], Stores] = {}

    def catch_up(self) -> None:
        self.store.catch_up()
        raw = self.store.get_meta(META_KEY)
        if raw is None or raw == self.snapshot_bytes:  # most catch-ups bring state only
            return
        snapshot = decode(raw)
        if self.snapshot is None or snapshot.control != self.snapshot.control:
            self.control = snapshot.control_state(self.definitions)
        self.snapshot, self.snapshot_bytes = snapshot, raw

    def partition(self, source: str, partition: int) -> Stores:
        key = (source, partition)
        stores = self.stores.get(key)
        if stores is None:
            stores = self.stores[key] = partition_stores(self.store, source, self.definitions.views_of(source), partition)
        return stores


class FollowerReadSide:
    """``app.feature_read.ReadSide`` over what the follower sees."""

    def __init__(self, follower: Follower) -> None:
        self.follower = follower
        self.definitions = follower.definitions
        self.partitions = follower.settings.partitions

    def ready(self) -> bool:
        snapshot = self.follower.snapshot
        return snapshot is not None and snapshot.ready and snapshot.fresh(int(time.time() * 1000))

    def control(self) -> ControlState:
        return self.follower.control

    def owner(self, topic: str, entity: str) -> URL | None:
        snapshot = self.follower.snapshot
        if snapshot is None:
            raise NoOwner("the worker has not said who owns what yet")
        return owner(snapshot, topic, entity, self.partitions)

    def topic(self, source: str) -> str:
        return self.follower.settings.topics.events(source)

    def processor(self, source: str) -> SourceProcessor:
        return self.follower.processors[source]

    def flushed(self, source: str, partition: int) -> tuple[Stores, PartitionClock | None] | None:
        snapshot = self.follower.snapshot
        if snapshot is None or partition not in snapshot.owned.get(source, ()):
            return None
        stores = self.follower.partition(source, partition)
        return stores, stores.clocks.get(self.processor(source).clock_key(partition))


class Reader:
    def __init__(self, follower: Follower, internal: URL) -> None:
        self.follower = follower
        self.side = FollowerReadSide(follower)
        self.internal = internal
        self.client: aiohttp.ClientSession | None = None
        self.pending: asyncio.TimerHandle | None = None
        self.dirty = False  # signalled since the last catch-up
        self.signals = sys.stdin.fileno()  # one byte per write of the worker's; closed when it exits
        self.gone = asyncio.Event()
        self.registry = CollectorRegistry()  # this process's figures, merged into the worker's /metrics
        self.http_latency = reader_histogram(self.registry)

    def signalled(self) -> None:
        """The worker wrote: catch up before the next read, and soon anyway (a
        burst of flushes is one catch-up; each costs about 1 ms)."""
        self.dirty = True
        if self.pending is None:
            self.pending = asyncio.get_running_loop().call_later(CATCH_UP_GAP_S, self._catch_up_later)

    def _catch_up_later(self) -> None:
        self.pending = None
        self.current()

    def current(self) -> None:
        """Up to date with every write the worker has signalled so far, so a read
        that follows anything the worker answered (its /stats) sees that state."""
        self.drain()
        if self.dirty:
            self.dirty = False
            self.follower.catch_up()

    def drain(self) -> None:
        """Signals waiting in the pipe, read now rather than on the loop's next turn."""
        try:
            data = os.read(self.signals, 65536)
        except BlockingIOError:
            return
        if data:
            self.dirty = True
        else:  # the worker is gone: so is its read process
            asyncio.get_running_loop().remove_reader(self.signals)
            self.gone.set()

    def admit(self, request: web.Request) -> tuple[Decision, web.Response | None]:
        """The decision on a read, and its 401/403 answer when refused (as ``app.web_auth.admit``)."""
        self.current()
        decision = judge(self.follower, request, READ)
        if decision.status == 200:
            return decision, None
        return decision, web.json_response(error_body(decision.error or "unauthorized", decision.detail or ""),
                                           status=decision.status)

    async def features(self, request: web.Request) -> web.Response:
        decision, refused = self.admit(request)
        if refused is not None:
            return refused
        follower = self.follower
        answer = read_features(self.side, request.match_info["view"], request.match_info["entity"], request.query,
                               lambda name: sees_view(follower, decision, name))
        if isinstance(answer, Forward):
            assert self.client is not None
            status, body = await forward(self.client, answer.url, request)
            return web.json_response(body, status=status)
        return web.json_response(answer.body, status=answer.status)

    async def batch(self, request: web.Request) -> web.Response:
        """``POST /features`` (``app.batch_read``), from the same state as ``features``."""
        decision, refused = self.admit(request)
        if refused is not None:
            return refused
        follower = self.follower
        client = self.client
        assert client is not None

        async def send(url: URL, body: bytes) -> tuple[int, Any]:
            return await forward(client, url, request, body, {FORWARDED_HEADER: "1"})

        answer = await answer_batch(self.side, await request.read(), BatchLimits.from_settings(follower.settings),
                                    lambda name: sees_view(follower, decision, name),
                                    None if FORWARDED_HEADER in request.headers else send)
        return web.json_response(answer.body, status=answer.status)

    async def health(self, request: web.Request) -> web.StreamResponse:
        response = await self.proxy(request)
        self.current()
        if response.status == 200 and not self.side.ready():
            return web.json_response({"status": "starting", "live": True, "ready": False,
                                      "detail": "the read process has not seen the worker ready yet"}, status=503)
        return response

    async def metrics(self, request: web.Request) -> web.StreamResponse:
        """The worker's exposition with this process's request latencies merged in (``app.http_metrics``)."""
        response = await self.proxy(request)
        if response.status != 200 or not isinstance(response, web.Response) or response.body is None:
            return response
        body = merged_exposition(bytes(response.body).decode(), self.registry)  # type: ignore[arg-type]
        return web.Response(body=body, content_type=CONTENT_TYPE_LATEST.split(";")[0], charset="utf-8")

    async def proxy(self, request: web.Request) -> web.StreamResponse:
        """Anything but a feature read: the worker's own web server answers it."""
        assert self.client is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        body = await request.read() if request.body_exists else None  # read (and limited) by the middleware
        try:
            async with self.client.request(request.method, self.internal.with_path(request.raw_path, encoded=True),
                                           headers=headers, data=body, allow_redirects=False,
                                           timeout=aiohttp.ClientTimeout(total=FORWARD_TIMEOUT_S * 6)) as answer:
                payload = await answer.read()
                kept = {k: v for k, v in answer.headers.items() if k.lower() not in HOP_BY_HOP}
                return web.Response(body=payload, status=answer.status, headers=kept)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            return web.json_response(error_body("worker_unreachable", f"the worker did not answer: {type(exc).__name__}"),
                                     status=503)


def build(reader: Reader, limits: HttpLimits) -> web.Application:
    """The same limits and JSON errors as the worker's own server (``app.web_server``)."""
    application = web.Application(middlewares=[json_errors(limits, lambda status: None)],
                                  client_max_size=limits.max_body_bytes)
    features = application.router.add_get(FEATURES_PATH, reader.features)
    batch = application.router.add_post(BATCH_PATH, reader.batch)
    # Only the routes answered here are timed here (the worker times what it is
    # proxied), outermost so their error answers are timed too.
    answered = frozenset({features.resource.canonical, batch.resource.canonical})
    application.middlewares.insert(0, timing(reader.http_latency, "reader", answered))
    application.router.add_get("/metrics", reader.metrics)
    application.router.add_get("/healthz", reader.health)
    application.router.add_route("*", "/{tail:.*}", reader.proxy)
    return application


async def serve(reader: Reader, host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    os.set_blocking(reader.signals, False)

    def on_signal() -> None:
        reader.drain()
        if reader.dirty:
            reader.signalled()

    loop.add_reader(reader.signals, on_signal)
    reader.follower.catch_up()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as client:
        reader.client = client
        limits = HttpLimits.from_settings(reader.follower.settings)
        runner = HardenedRunner(build(reader, limits), access_log=None, keepalive_timeout=limits.idle_timeout_s)
        await runner.setup()
        site = web.TCPSite(runner, host, port, reuse_address=True)
        await site.start()
        log.info("read process serving on %s:%s, worker's web server at %s", host, port, reader.internal)
        try:
            await reader.gone.wait()
        finally:
            await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.reader", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", required=True, type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", required=True, type=int)
    parser.add_argument("--internal-port", required=True, type=int)
    parser.add_argument("--features", default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s] [reader] %(levelname)s %(message)s")
    settings = load_settings()
    definitions = load_definitions(args.features or settings.features_module)
    follower = Follower(settings, definitions, args.data_dir.resolve())
    reader = Reader(follower, URL(f"http://127.0.0.1:{args.internal_port}"))
    asyncio.run(serve(reader, args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""HTTP views (Faust web).  Views read tables only; writes happen in agents.

``register`` is the one place routes are added: the classes here and in
``app.web_scoring`` are module-level views that read the runtime from the web
application (``app.web_common.RuntimeView``).  Every error is JSON
``{"error": ..., "detail": ...}`` with a 4xx code; ``app.web_server`` holds the
limits and the one middleware, which turns anything unexpected into a JSON 500
without a traceback.
"""
from __future__ import annotations

from typing import Any

from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from yarl import URL

from agents.control_plane import ControlPlane, ControlState
from agents.control_records import LIVE
from agents.readiness import is_ready
from app import http_metrics, web_console, web_scoring, web_server
from app.openapi import openapi
from app.batch_read import BATCH_PATH, FORWARDED_HEADER, BatchLimits, answer_batch
from app.feature_read import Forward, read_features
from app.routing import forward, owner
from app.runtime import Runtime
from app.tokens import READ
from app.web_auth import admit, sees_view
from app.web_common import FEATURES_PATH, RUNTIME, RuntimeView, iso
from tables.dsl import FeatureView
from tables.processor import SourceProcessor, Stores, stream_time
from tables.state import PartitionClock



class RuntimeReadSide:
    """``GET /features`` served in the worker's own process, from its live runtime."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.definitions = runtime.definitions
        self.partitions = runtime.settings.partitions

    def ready(self) -> bool:
        return is_ready(self.runtime.app, self.runtime.placement)

    def control(self) -> ControlState:
        return self.runtime.plane

    def owner(self, topic: str, entity: str) -> URL | None:
        return owner(self.runtime.placement, topic, entity, self.partitions)

    def topic(self, source: str) -> str:
        return self.runtime.sources[source].topic

    def processor(self, source: str) -> SourceProcessor:
        return self.runtime.sources[source].processor

    def flushed(self, source: str, partition: int) -> tuple[Stores, PartitionClock | None] | None:
        runtime = self.runtime.sources[source]
        if not runtime.owns(partition):
            return None
        return runtime.flushed(partition), runtime.flushed_clock(partition)


class FeatureValues(RuntimeView):
    async def get(self, request: Request, view: str, entity: str) -> Response:
        decision, denied = admit(self, request, READ)
        if denied is not None:
            return denied
        runtime = self.runtime
        answer = read_features(RuntimeReadSide(runtime), view, entity, request.query,
                               lambda name: sees_view(runtime, decision, name))
        if isinstance(answer, Forward):
            status, routed = await forward(runtime.app.http_client, answer.url, request)
            return self.json(routed, status=status)
        return self.json(answer.body, status=answer.status)


class BatchFeatures(RuntimeView):
    async def post(self, request: Request) -> Response:
        """``POST /features`` (``app.batch_read``) in the worker's own process."""
        decision, denied = admit(self, request, READ)
        if denied is not None:
            return denied
        runtime = self.runtime

        async def send(url: URL, body: bytes) -> tuple[int, Any]:
            return await forward(runtime.app.http_client, url, request, body, {FORWARDED_HEADER: "1"})

        answer = await answer_batch(RuntimeReadSide(runtime), await request.read(),
                                    BatchLimits.from_settings(runtime.settings),
                                    lambda name: sees_view(runtime, decision, name),
                                    None if FORWARDED_HEADER in request.headers else send)
        return self.json(answer.body, status=answer.status)


class Views(RuntimeView):
    async def get(self, request: Request) -> Response:
        """Every version of every view: which one serves, and where each is filled."""
        decision, denied = admit(self, request, READ)
        if denied is not None:
            return denied
        runtime = self.runtime
        return self.json({"views": [view_status(runtime.plane, v) for v in runtime.definitions.views.values()
                                    if sees_view(runtime, decision, v.name)]})


class Stats(RuntimeView):
    async def get(self, request: Request) -> Response:
        """Per-partition outcome counts of the partitions this worker owns."""
        runtime = self.runtime
        out: dict[str, Any] = {}
        for name, source in runtime.sources.items():
            partitions = {}
            for partition in range(runtime.settings.partitions):
                clock = source.flushed_clock(partition)
                if clock is not None:
                    partitions[str(partition)] = {"max_event_time": iso(stream_time(clock)), **clock.counts.as_dict()}
            out[name] = partitions
        return self.json({"sources": out})


class Health(RuntimeView):
    async def get(self, request: Request) -> Response:
        app = self.runtime.app
        ready = is_ready(app, self.runtime.placement)
        body = {"status": "ok" if ready else "starting", "live": True, "ready": ready,
                "rebalancing": bool(app.rebalancing) or not self.runtime.placement.ready}
        # 503 until ready, so load balancers and probes can use the status alone.
        return self.json(body, status=200 if ready else 503)


class MetricsView(RuntimeView):
    async def get(self, request: Request) -> Response:
        exposition = generate_latest(self.runtime.metrics.registry)
        return self.bytes(exposition, content_type=CONTENT_TYPE_LATEST.split(";")[0])


class OpenAPI(RuntimeView):
    async def get(self, request: Request) -> Response:
        definitions = self.runtime.definitions
        return self.json(openapi(sorted(definitions.names), definitions.sources))


# Every route of the worker, in one place (``app.openapi`` describes each).
ROUTES: tuple[tuple[str, type[View]], ...] = (
    (FEATURES_PATH, FeatureValues),
    (BATCH_PATH, BatchFeatures),
    ("/views", Views),
    ("/stats", Stats),
    ("/healthz", Health),
    ("/metrics", MetricsView),
    ("/openapi.json", OpenAPI),
    ("/", web_console.ConsolePage),
    ("/console.js", web_console.ConsoleScript),
    ("/console.css", web_console.ConsoleStyle),
    (web_console.DATA_PATH, web_console.ConsoleData),
    ("/models", web_scoring.Models),
    ("/models/{name}/deploy", web_scoring.Deploy),
    ("/score", web_scoring.Score),
)


def register(runtime: Runtime) -> None:
    web_app = runtime.app.web.web_app
    web_app[RUNTIME] = runtime
    for path, view in ROUTES:
        runtime.app.page(path)(view)
    limits = web_server.HttpLimits.from_settings(runtime.settings)
    errors = runtime.metrics.http_errors
    # Outside json_errors: an error answer is timed too.
    web_app.middlewares.append(http_metrics.timing(runtime.metrics.http_latency, "worker"))
    web_app.middlewares.append(web_server.json_errors(limits, lambda status: errors.labels(str(status)).inc()))
    web_server.install(runtime.app.web, limits)


def view_status(plane: ControlPlane, view: FeatureView) -> dict[str, Any]:
    fills = plane.fill_status(view)
    return {
        "name": view.name,
        "version": view.version,
        "ref": view.ref,
        "serving": plane.serving(view.name).version == view.version,
        "filled": all(f.status == LIVE for f in fills.values()),
        "partitions": {str(p): {"status": f.status, "through": f.through, "end": f.end, "live_from": f.live_from,
                                "detail": f.detail} for p, f in fills.items()},
        "source": view.source.name,
        "entity": view.entity,
        "state_key": view.state_key,
        "features": [f.params() for f in view.features],
    }

"""HTTP views (Faust web).  Views read tables only; writes happen in agents.

``register`` is the one place routes are added: the classes here and in
``app.web_scoring`` are module-level views that read the runtime from the web
application (``app.web_common.RuntimeView``).  Every error is JSON
``{"error": ..., "detail": ...}`` with a 4xx code; a middleware turns anything
unexpected into a JSON 500 without a traceback.
"""
from __future__ import annotations

import logging
from typing import Any

from aiohttp import web as aioweb
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from agents.control_plane import ControlPlane
from agents.control_records import LIVE
from agents.readiness import is_ready
from app import web_scoring
from app.openapi import openapi
from app.routing import NoOwner, forward, key_partition, owner
from app.runtime import Runtime
from app.tokens import READ
from app.web_auth import admit, sees_view
from app.web_common import RUNTIME, RuntimeView, error_body, iso
from tables.dsl import FeatureView
from tables.processor import stream_time
from tables.validation import parse_time_ms

log = logging.getLogger(__name__)


class FeatureValues(RuntimeView):
    async def get(self, request: Request, view: str, entity: str) -> Response:
        decision, denied = admit(self, request, READ)
        if denied is not None:
            return denied
        runtime = self.runtime
        app, definitions, plane = runtime.app, runtime.definitions, runtime.plane
        known = sorted(name for name in definitions.names if sees_view(runtime, decision, name))  # a tenant's own
        versions = definitions.versions(view) if view in known else None
        if versions is None:
            return self.json(error_body("unknown_view", f"no view {view!r}; known: {known}"), status=404)
        if "version" in request.query:
            try:
                definition = versions[int(request.query["version"])]
            except (ValueError, KeyError):
                return self.json(error_body("unknown_version", f"{view} has versions {sorted(versions)}"), status=404)
        else:
            definition = plane.serving(view)
        as_of_ms = None
        if "as_of" in request.query:
            try:
                as_of_ms = parse_time_ms(request.query["as_of"])
            except ValueError as exc:
                return self.json(error_body("bad_as_of", f"as_of must be ISO-8601 with a zone: {exc}"), status=400)
        if not is_ready(app, runtime.placement):
            return self.json(error_body("not_ready", "the worker is joining the group or restoring state"), status=503)
        source = runtime.sources[definition.source.name]
        try:
            url = owner(runtime.placement, source.topic, entity, runtime.settings.partitions)
        except NoOwner as exc:
            return self.json(error_body("not_ready", str(exc)), status=503)
        if url is not None:
            status, routed = await forward(app, url, request)
            return self.json(routed, status=status)
        partition = key_partition(entity, runtime.settings.partitions)
        if not source.owns(partition):
            return self.json(error_body("not_ready", f"partition {partition} of {source.topic} is being restored"),
                             status=503)
        stores = source.flushed(partition)
        clock = source.flushed_clock(partition)
        source_def = definition.source
        unfed = plane.unfed(source_def.name, source_def.parent) if source_def.parent else []
        if unfed:
            return self.json(error_body(
                "view_filling",
                f"{view} reads {source_def.name}, whose history from {source_def.parent} partitions {unfed} "
                f"is not written yet: `featurestream backfill {view}` writes it; it serves once filled",
            ), status=503)
        # "Current" means at the partition's stream time: event time, never wall clock.
        now_ms = stream_time(clock)
        read = source.processor.read(stores, clock, entity, now_ms or 0, [definition])
        if read.filling:
            progress = plane.fill_status(definition).get(partition)
            through, end = (None, None) if progress is None else (progress.through, progress.end)
            return self.json(error_body(
                "view_filling",
                f"{view} v{definition.version} is still being filled from the log on partition {partition} "
                f"(through offset {through} of {end}); it serves once filled",
            ), status=503)
        state = read.states[definition.ref]
        if state is None:
            return self.json(error_body("unknown_entity", f"{view} has no {definition.entity} {entity!r}"), status=404)
        if not now_ms:  # no clock time yet: the entity's own newest event
            now_ms = state.max_time
            read = source.processor.read(stores, clock, entity, now_ms, [definition])
        body = {
            "view": definition.name,
            "version": definition.version,
            "serving_version": plane.serving(view).version,
            "entity": entity,
            "entity_field": definition.entity,
            "as_of_ms": now_ms,
            "as_of": iso(now_ms),
            "last_event_time": iso(state.max_time),
            "events_applied": state.seq,
        }
        if as_of_ms is None:
            return self.json({**body, "features": read.values[definition.ref]})
        # Point in time: the T-based rule, exactly, or an explicit gap.
        windows = source.processor.windows[definition.state_key]
        try:
            values, unavailable = windows.as_of(state, as_of_ms)
        except ValueError:
            return self.json(error_body(
                "outside_retained_history",
                f"history for {entity} is kept from {iso(state.horizon)}; use the training-set command for older times",
            ), status=409)
        return self.json({**body, "as_of_ms": as_of_ms, "as_of": iso(as_of_ms), "features": values,
                          "unavailable": unavailable})


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
        return self.json(openapi(sorted(self.runtime.definitions.names)))


class Dashboard(RuntimeView):
    async def get(self, request: Request) -> Response:
        return self.html(dashboard_html(self.runtime))


# Every route of the worker, in one place (``app.openapi`` describes each).
ROUTES: tuple[tuple[str, type[View]], ...] = (
    ("/features/{view}/{entity}", FeatureValues),
    ("/views", Views),
    ("/stats", Stats),
    ("/healthz", Health),
    ("/metrics", MetricsView),
    ("/openapi.json", OpenAPI),
    ("/", Dashboard),
    ("/models", web_scoring.Models),
    ("/models/{name}/deploy", web_scoring.Deploy),
    ("/score", web_scoring.Score),
)


def register(runtime: Runtime) -> None:
    web_app = runtime.app.web.web_app
    web_app[RUNTIME] = runtime
    for path, view in ROUTES:
        runtime.app.page(path)(view)
    web_app.middlewares.append(_json_errors(runtime))


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


def _json_errors(runtime: Runtime):
    @aioweb.middleware
    async def middleware(request: aioweb.Request, handler: Any) -> aioweb.StreamResponse:
        try:
            response = await handler(request)
        except aioweb.HTTPException as exc:
            if exc.status < 400:
                raise
            runtime.metrics.http_errors.labels(str(exc.status)).inc()
            code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status, "http_error")
            return aioweb.json_response(error_body(code, f"{request.method} {request.path}: {exc.reason}"), status=exc.status)
        except Exception as exc:  # no traceback ever reaches a client
            log.exception("unhandled error serving %s", request.path)
            runtime.metrics.http_errors.labels("500").inc()
            return aioweb.json_response(error_body("internal_error", type(exc).__name__), status=500)
        if response.status >= 400:
            runtime.metrics.http_errors.labels(str(response.status)).inc()
        return response

    return middleware


def dashboard_html(runtime: Runtime) -> str:
    rows = "".join(
        f"<tr><td>{v.name}</td><td>{v.version}</td><td>{v.source.name}</td><td>{v.entity}</td>"
        f"<td>{', '.join(f.name for f in v.features)}</td></tr>"
        for v in runtime.definitions.views.values()
    )
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>featurestream</title>
<style>body{{font-family:system-ui,sans-serif;margin:2rem;}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:.3rem .6rem;text-align:left}}</style></head>
<body><h1>featurestream</h1>
<p>Worker on {runtime.app.conf.canonical_url}. Feature module <code>{runtime.definitions.module}</code>.</p>
<h2>Feature views</h2>
<table><tr><th>view</th><th>version</th><th>source</th><th>entity</th><th>features</th></tr>{rows}</table>
<h2>Endpoints</h2><ul>
<li><a href="/features/origin_traffic/JFK">/features/&lt;view&gt;/&lt;entity&gt;</a></li>
<li><a href="/views">/views</a></li><li><a href="/stats">/stats</a></li>
<li><a href="/models">/models</a></li>
<li><a href="/metrics">/metrics</a></li><li><a href="/healthz">/healthz</a></li>
<li><a href="/openapi.json">/openapi.json</a></li></ul>
<p id="stats"></p>
<script>fetch('/stats').then(r=>r.json()).then(s=>{{document.getElementById('stats').textContent=JSON.stringify(s)}})</script>
</body></html>"""

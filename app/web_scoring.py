"""HTTP routes of the model lifecycle: the registry, deploy commands, and the
synchronous scoring path (``POST /score``) for callers that cannot wait on Kafka."""
from __future__ import annotations

import hmac
import json
import uuid
from typing import TYPE_CHECKING, Any

import msgspec
from faust.web import Request, Response, View

from tables import validation
from agents.control_plane import CommandError
from agents.control_records import encode, now_iso
from agents.scoring import desired_state, model_input
from app.routing import NoOwner, forward, key_partition, owner
from agents.readiness import is_ready
from app.web import error_body
from models.registry import RegistryError

if TYPE_CHECKING:
    from app.runtime import Runtime


def register(runtime: "Runtime") -> None:
    app = runtime.app
    scoring = runtime.scoring
    settings = runtime.settings
    control = app.topic(settings.topics.control, key_type=bytes, value_type=bytes)

    @app.page("/models")
    class Models(View):
        async def get(self, request: Request) -> Response:
            if scoring is None:
                return self.json({"models": []})
            out = []
            for name, spec in scoring.specs.items():
                try:
                    versions = [
                        {"version": mv.version, "created_at": mv.metadata.get("created_at"),
                         "metrics": (mv.metadata.get("metrics") or {}).get("holdout")
                         or (mv.metadata.get("metrics") or {}).get("xval")}
                        for mv in scoring.cache.registry.list_models().get(name, [])
                    ]
                except RegistryError as exc:
                    return self.json(error_body("registry_error", str(exc)), status=409)
                out.append({"name": name, "source": spec.source, "deployed": _builtins(scoring.deployments.get(name)),
                            "versions": versions})
            return self.json({"models": out})

    @app.page("/models/{name}/deploy")
    class Deploy(View):
        async def post(self, request: Request, name: str) -> Response:
            if not settings.admin_token:
                return self.json(error_body("forbidden", "write routes are off: set FS_ADMIN_TOKEN on the worker"), status=403)
            supplied = request.headers.get("Authorization", "")
            if not hmac.compare_digest(supplied.encode(), f"Bearer {settings.admin_token}".encode()):
                return self.json(error_body("unauthorized", "send Authorization: Bearer <token>"), status=401)
            if scoring is None or name not in scoring.specs:
                return self.json(error_body("unknown_model", f"no model {name!r}"), status=404)
            body = await _json_body(request)
            if not isinstance(body, dict):
                return self.json(error_body("bad_request", "body must be a JSON object"), status=400)
            action = body.get("action", "deploy")
            version = body.get("version")
            if version is not None and (not isinstance(version, int) or isinstance(version, bool)):
                return self.json(error_body("bad_request", "version must be an integer"), status=400)
            if version is not None:
                try:
                    scoring.cache.registry.get(name, version)
                except RegistryError as exc:
                    return self.json(error_body("unknown_version", str(exc)), status=404)
            try:
                command = desired_state(scoring.deployments.get(name), action, name, version)
            except CommandError as exc:
                return self.json(error_body("bad_request", str(exc)), status=400)
            command.id, command.by, command.at = uuid.uuid4().hex, "http", now_iso()
            await control.send(key=name.encode(), value=encode(command))
            return self.json({"status": "accepted", "command": msgspec.to_builtins(command)}, status=202)

    @app.page("/score")
    class Score(View):
        async def post(self, request: Request) -> Response:
            raw = await request.read()
            source_name = request.query.get("source") or (
                next(iter(scoring.specs.values())).source if scoring and scoring.specs else ""
            )
            if source_name not in runtime.sources:
                return self.json(error_body("unknown_source", f"no source {source_name!r}"), status=404)
            source_rt = runtime.sources[source_name]
            checked = validation.validate(source_rt.source, raw, settings.max_payload_bytes)
            if isinstance(checked, validation.Rejection):
                return self.json(error_body(checked.reason, checked.detail), status=400)
            if not is_ready(app):
                return self.json(error_body("not_ready", "the worker is recovering tables"), status=503)
            entity = str(checked.record[source_rt.source.key])
            routed = await _route_post(runtime, source_rt, entity, request, raw)
            if routed is not None:
                return self.json(routed[1], status=routed[0])
            return _score_locally(self, runtime, source_rt, checked, entity)


def _builtins(record: msgspec.Struct | None) -> Any:
    return None if record is None else msgspec.to_builtins(record)


async def _json_body(request: Request) -> Any:
    try:
        return json.loads(await request.read() or b"null")
    except ValueError:
        return None


async def _route_post(runtime: "Runtime", source_rt: Any, entity: str, request: Request, raw: bytes) -> tuple[int, Any] | None:
    """Forward to the worker owning ``entity``; None when it is this one."""
    if not source_rt.tables:
        return None
    table = next(iter(source_rt.tables.values()))
    try:
        url = owner(runtime.app, table.name, entity, runtime.settings.partitions)
    except NoOwner as exc:
        return 503, error_body("not_ready", str(exc))
    if url is None:
        return None
    return await forward(runtime.app, url, request, raw)


def _score_locally(view: View, runtime: "Runtime", source_rt: Any, checked: validation.Valid, entity: str) -> Response:
    scoring = runtime.scoring
    features = {}
    partition = key_partition(entity, runtime.settings.partitions)
    clock = source_rt.stores.clocks.get(source_rt.processor.clock_key(partition))
    filling = {v.state_key for v in source_rt.processor.pending(clock)}
    for v in source_rt.views:
        if v.state_key in filling:
            continue  # not served until filled, exactly as on the stream
        windows = source_rt.processor.windows[v.state_key]
        # history only: the event itself is not applied on this path
        features[v.ref] = windows.values(source_rt.stores.views[v.state_key].get(entity), checked.time_ms)
    provenance = {
        "event_id": checked.record[source_rt.source.id_field], "source": source_rt.source.name,
        "event_time": checked.record[source_rt.source.time_field], "event_time_ms": checked.time_ms,
        "topic": None, "partition": None, "offset": None,
    }
    if scoring is None:
        return view.json({**provenance, "features": features, "predictions": []})
    results = []
    for spec in scoring.models_for(source_rt.source.name):
        state = scoring.deployments.get(spec.name)
        version = None if state is None else state.primary
        if not version:
            continue
        row = model_input(scoring.columns[spec.name], checked.record, features)
        try:
            prediction, latency = scoring.score(spec, version, row)
        except Exception as exc:
            return view.json(error_body("scoring_error", f"{type(exc).__name__}: {exc}"), status=422)
        results.append(scoring.prediction_record(spec, version, "primary", row, prediction, latency, provenance))
    if not results:
        return view.json(error_body("no_model", f"no model is deployed for {source_rt.source.name}"), status=409)
    return view.json(results[0] if len(results) == 1 else {"predictions": results})

"""HTTP routes of the model lifecycle: the registry, deploy commands, and the
synchronous scoring path (``POST /score``) for callers that cannot wait on Kafka.

``POST /score`` serves the event exactly what the stream would serve it if it
were the next event of its entity (``SourceProcessor.read``: history only, the
event is not applied) and scores it through the stream's own scoring path
(``ScoringRuntime.score_event``), so it refuses for the same reasons."""
from __future__ import annotations

import json
import uuid
from dataclasses import asdict
from typing import Any

import msgspec
from faust.web import Request, Response

from agents.control_plane import CommandError
from agents.control_records import CommandAudit, now_iso
from agents.readiness import is_ready
from agents.scoring import SCORING_FAILED, VIEW_FILLING, Provenance, Scored, desired_state
from agents.source_runtime import SourceRuntime
from app.routing import NoOwner, forward, owner
from tables.partitioning import key_partition
from app.runtime import Runtime
from app.tokens import READ, SCORE
from app.web_auth import admit, admit_admin, sees_model, sees_source
from app.web_common import RuntimeView, error_body
from models.registry import RegistryError
from tables import validation

# A refusal of the scoring path as an HTTP status: a view still filling is
# temporary (like GET /features), a model that cannot score the event is not.
REFUSAL_STATUS = {VIEW_FILLING: 503, SCORING_FAILED: 422}


class Models(RuntimeView):
    async def get(self, request: Request) -> Response:
        decision, denied = admit(self, request, READ)
        if denied is not None:
            return denied
        scoring = self.runtime.scoring
        if scoring is None:
            return self.json({"models": []})
        out = []
        for name, spec in scoring.specs.items():
            if not sees_model(self.runtime, decision, spec):
                continue  # another tenant's
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


class Deploy(RuntimeView):
    async def post(self, request: Request, name: str) -> Response:
        runtime = self.runtime
        scoring = runtime.scoring
        body = await _json_body(request)
        action = body.get("action", "deploy") if isinstance(body, dict) else "deploy"
        decision, denied = admit_admin(self, request, str(action)[:40], name[:200])
        if denied is not None:
            return denied
        if scoring is None or name not in scoring.specs or not sees_model(runtime, decision, scoring.specs[name]):
            # audited: a tenant's admin reaching for another tenant's model is worth knowing about
            runtime.plane.audit_soon(name[:200].encode(), CommandAudit(
                at=now_iso(), result="refused", by=decision.identity, action=str(action)[:40], target=name[:200],
                reason="unknown_model", detail=f"HTTP {request.method} {request.path}"))
            return self.json(error_body("unknown_model", f"no model {name!r}"), status=404)
        if not isinstance(body, dict):
            return self.json(error_body("bad_request", "body must be a JSON object"), status=400)
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
        command.id, command.by, command.at = uuid.uuid4().hex, decision.identity, now_iso()
        # Signed by this worker on behalf of the token's name: the control agent audits that identity.
        await runtime.plane.send_command(name.encode(), command, by=decision.identity)
        return self.json({"status": "accepted", "command": msgspec.to_builtins(command)}, status=202)


def _builtins(record: msgspec.Struct | None) -> Any:
    return None if record is None else msgspec.to_builtins(record)


class Score(RuntimeView):
    async def post(self, request: Request) -> Response:
        decision, denied = admit(self, request, SCORE)
        if denied is not None:
            return denied
        runtime = self.runtime
        scoring = runtime.scoring
        raw = await request.read()
        source_name = request.query.get("source") or (
            next(iter(scoring.specs.values())).source if scoring and scoring.specs else ""
        )
        if source_name not in runtime.sources or not sees_source(runtime, decision, source_name):
            return self.json(error_body("unknown_source", f"no source {source_name!r}"), status=404)
        source_rt = runtime.sources[source_name]
        # A request body is an event of the newest schema version (it has no headers).
        checked = validation.validate(source_rt.source, raw, runtime.settings.max_payload_bytes,
                                      schema_version=source_rt.source.schema_version)
        if isinstance(checked, validation.Rejection):
            return self.json(error_body(checked.reason, checked.detail), status=400)
        if not is_ready(runtime.app, runtime.placement):
            return self.json(error_body("not_ready", "the worker is joining the group or restoring state"), status=503)
        entity = str(checked.record[source_rt.source.key])
        routed = await _route_post(runtime, source_rt, entity, request, raw)
        if routed is not None:
            return self.json(routed[1], status=routed[0])
        status, body = score_locally(runtime, source_rt, checked, entity)
        return self.json(body, status=status)


async def _json_body(request: Request) -> Any:
    try:
        return json.loads(await request.read() or b"null")
    except ValueError:
        return None


async def _route_post(runtime: Runtime, source_rt: SourceRuntime, entity: str, request: Request,
                      raw: bytes) -> tuple[int, Any] | None:
    """Forward to the worker owning ``entity``; None when it is this one."""
    try:
        url = owner(runtime.placement, source_rt.topic, entity, runtime.settings.partitions)
    except NoOwner as exc:
        return 503, error_body("not_ready", str(exc))
    if url is None:
        return None
    return await forward(runtime.app.http_client, url, request, raw)


def score_locally(runtime: Runtime, source_rt: SourceRuntime, checked: validation.Valid,
                  entity: str) -> tuple[int, Any]:
    """(status, body) of scoring one event on the worker that owns its entity."""
    partition = key_partition(entity, runtime.settings.partitions)
    if not source_rt.owns(partition):
        return 503, error_body("not_ready", f"partition {partition} of {source_rt.topic} is being restored")
    stores = source_rt.flushed(partition)
    clock = source_rt.flushed_clock(partition)
    read = source_rt.processor.read(stores, clock, entity, checked.time_ms)
    source = source_rt.source
    provenance = Provenance(
        event_id=checked.record[source.id_field], source=source.name, topic=None, partition=None, offset=None,
        event_time_ms=checked.time_ms, event_time=checked.record[source.time_field],
    )
    if runtime.scoring is None:
        return 200, {**asdict(provenance), "features": read.values, "predictions": []}
    scored = runtime.scoring.score_event(source.name, checked.record, read.values, provenance, roles=("primary",))
    return scored_response(scored, source.name)


def scored_response(scored: Scored, source: str) -> tuple[int, Any]:
    """The scoring path's answer as (status, body): refusals as the stream's reasons."""
    if scored.refusals:
        refusal = scored.refusals[0]
        return REFUSAL_STATUS[refusal.reason], error_body(refusal.reason, refusal.detail)
    if not scored.predictions:
        return 409, error_body("no_model", f"no model is deployed for {source}")
    records = [p.to_json() for p in scored.predictions]
    return 200, records[0] if len(records) == 1 else {"predictions": records}

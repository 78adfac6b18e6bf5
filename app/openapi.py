"""The API description served at ``GET /openapi.json``: every route of
``app.web.ROUTES``, with its parameters, request body and every response code
it can answer (schemathesis checks that against a running worker)."""
from __future__ import annotations

from typing import Any

from tables.dsl import Source

_ERROR = {"$ref": "#/components/schemas/Error"}


def _json(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema or {"type": "object"}}}}


def _error(description: str) -> dict[str, Any]:
    return _json(description, _ERROR)


# What any route can answer before its view runs (app.web_server): a request
# aiohttp cannot parse, a body too slow or too large.
_LIMITS = {
    "400": _error("malformed request: request line, header, a line longer than 8190 bytes, "
                  "or a body that does not decode as its headers say"),
    "408": _error("the body did not arrive within FS_HTTP_BODY_TIMEOUT"),
    "413": _error("the body is larger than FS_HTTP_MAX_BODY_BYTES"),
}

_JSON_TYPES = {"str": {"type": "string"}, "float": {"type": "number"}, "int": {"type": "integer"},
               "time": {"type": "string", "format": "date-time"}}


def event_schema(source: Source) -> dict[str, Any]:
    """The JSON schema of one event of ``source``, as validation checks it (nulls are absent values)."""
    required = set(source.required_fields)
    properties = {name: {**_JSON_TYPES[type_], "nullable": name not in required}
                  for name, type_ in source.fields.items()}
    return {"type": "object", "properties": properties, "required": sorted(required)}


def _with_limits(paths: dict[str, Any]) -> dict[str, Any]:
    """Every operation's responses, with those of the limits it does not describe itself."""
    return {path: {method: {**operation, "responses": {**_LIMITS, **operation["responses"]}}
                   for method, operation in methods.items()}
            for path, methods in paths.items()}


def _gated(scope: str, setting: str) -> dict[str, Any]:
    """The answers of a route that needs a ``scope`` token when ``setting`` is on."""
    return {"401": _error(f"no or unknown bearer token (only when {setting} is on)"),
            "403": _error(f"the token has no {scope!r} scope (only when {setting} is on)")}


_NOT_READY = _error("the worker is joining the group or restoring state, or the key's owner did not answer (owner_unreachable)")


def openapi(view_names: list[str], sources: dict[str, Source]) -> dict[str, Any]:
    events = [event_schema(source) for _, source in sorted(sources.items())]
    return {
        "openapi": "3.0.3",
        "info": {"title": "featurestream", "version": "0.1.0"},
        "paths": _with_limits({
            "/features/{view}/{entity}": {"get": {
                "summary": "Current feature values of one entity (at its partition's stream time)",
                "parameters": [
                    {"name": "view", "in": "path", "required": True, "schema": {"type": "string", "enum": view_names}},
                    {"name": "entity", "in": "path", "required": True, "schema": {"type": "string"}},
                    {"name": "version", "in": "query", "required": False, "schema": {"type": "integer"},
                     "description": "a defined version (default: the serving one)"},
                    {"name": "as_of", "in": "query", "required": False, "schema": {"type": "string"},
                     "description": "ISO-8601 time: the point-in-time value by the T-based rule"},
                ],
                "responses": {
                    "200": _json("feature values"),
                    "400": _error("as_of is not ISO-8601 with a zone"),
                    "404": _error("unknown view, version or entity"),
                    "409": _error("as_of is older than the history kept for the entity"),
                    "503": _error("not ready, or this version is still being filled"),
                    **_gated("read", "FS_REQUIRE_READ_TOKEN"),
                },
            }},
            "/features": {"post": {
                "summary": "Many entity rows and views in one request (optionally as of one time): one vector per "
                           "row, in request order; each view's answer is its GET /features body, or the error that "
                           "read would have had (per row, with its status). Reads owned by other workers are asked "
                           "of them in parallel",
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object",
                    "properties": {
                        "views": {"type": "array", "minItems": 1,
                                  "items": {"type": "string", "enum": view_names or [""]}},
                        "rows": {"type": "array", "items": {"anyOf": [
                            {"type": "string", "description": "the entity, for every view"},
                            {"type": "object", "additionalProperties": {"type": "string"},
                             "description": "entity field -> entity (each view reads its own entity field)"}]}},
                        "as_of": {"type": "string", "format": "date-time",
                                  "description": "ISO-8601 with a zone: point-in-time values by the T-based rule"},
                    },
                    "required": ["views", "rows"],
                }}}},
                "responses": {
                    "200": _json("one entry per row, in request order", {"$ref": "#/components/schemas/Batch"}),
                    "400": _error("the body is not a batch request, or as_of is not ISO-8601 with a zone"),
                    "413": _error("the body is larger than FS_HTTP_MAX_BODY_BYTES, or has more rows or views than "
                                  "FS_HTTP_BATCH_MAX_ROWS / FS_HTTP_BATCH_MAX_VIEWS"),
                    **_gated("read", "FS_REQUIRE_READ_TOKEN"),
                },
            }},
            "/score": {"post": {
                "summary": "Score one event synchronously: the features the stream would serve it "
                           "(history only, the event is not applied), scored by the deployed primary models",
                "parameters": [{"name": "source", "in": "query", "required": False,
                                "schema": {"type": "string", "enum": sorted(sources) or [""]},
                                "description": "the event's source (default: the first model's)"}],
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"anyOf": events or [{"type": "object"}],
                               "description": "one event of the source, as published to its log"}}}},
                "responses": {
                    "200": _json("the prediction record (several models: {\"predictions\": [...]}); "
                                 "topic, partition and offset are null", {"$ref": "#/components/schemas/Prediction"}),
                    "400": _error("the event fails validation (the reason is the DLQ's)"),
                    "404": _error("unknown source"),
                    "409": _error("no model is deployed for the source"),
                    "422": _error("the model could not score the event"),
                    "503": _error("not ready, or a view the model reads is still being filled"),
                    **_gated("score", "FS_REQUIRE_SCORE_TOKEN"),
                },
            }},
            "/models": {"get": {
                "summary": "Models of the feature module: registry versions and the accepted deployment",
                "responses": {"200": _json("models"), "409": _error("the registry cannot be read"),
                              **_gated("read", "FS_REQUIRE_READ_TOKEN")},
            }},
            "/models/{name}/deploy": {"post": {
                "summary": "Publish a signed deploy, rollback, shadow, unshadow or promote (the shadow becomes primary) command "
                           "(needs Authorization: Bearer <token> with the admin scope; audited under the token's name)",
                "security": [{"bearer": []}],
                "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object",
                    "properties": {"action": {"type": "string", "enum": ["deploy", "rollback", "shadow", "unshadow", "promote"],
                                              "default": "deploy"},
                                   "version": {"type": "integer"}},
                }}}},
                "responses": {
                    "202": _json("command accepted for the control plane"),
                    "400": _error("body is not a JSON object, or the command is invalid"),
                    "401": _error("no or unknown bearer token"),
                    "403": _error("the token has no admin scope, or no admin token is configured"),
                    "404": _error("unknown model or version"),
                },
            }},
            "/views": {"get": {"summary": "Every version of every view: serving or not, fill status per partition",
                               "responses": {"200": _json("views"), **_gated("read", "FS_REQUIRE_READ_TOKEN")}}},
            "/stats": {"get": {"summary": "Per-partition ingest outcome counts", "responses": {"200": _json("counts")}}},
            "/healthz": {"get": {"summary": "Liveness and readiness",
                                 "responses": {"200": _json("ready"), "503": _json("live, not ready yet")}}},
            "/metrics": {"get": {"summary": "Prometheus exposition",
                                 "responses": {"200": {"description": "metrics",
                                                       "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
            "/": {"get": {"summary": "The live console (docs/monitoring.md#console)",
                          "responses": {"200": {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}}}}},
            "/console.js": {"get": {"summary": "The console's script",
                                    "responses": {"200": {"description": "JavaScript",
                                                          "content": {"text/javascript": {"schema": {"type": "string"}}}}}}},
            "/console.css": {"get": {"summary": "The console's style",
                                     "responses": {"200": {"description": "CSS",
                                                           "content": {"text/css": {"schema": {"type": "string"}}}}}}},
            "/console/data": {"get": {"summary": "The console's figures, read from the /metrics registry, with the "
                                                 "newest alerts and dead letters",
                                      "responses": {"200": _json("figures"), **_gated("read", "FS_REQUIRE_READ_TOKEN")}}},
            "/openapi.json": {"get": {"summary": "This API description", "responses": {"200": _json("OpenAPI 3.0 document")}}},
        }),
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "properties": {"error": {"type": "string"}, "detail": {"type": "string"}},
                    "required": ["error", "detail"],
                },
                "Batch": {
                    "type": "object",
                    "properties": {
                        "views": {"type": "array", "items": {"type": "string"}},
                        "as_of": {"type": "string", "nullable": True},
                        "rows_with_errors": {"type": "integer"},
                        "rows": {"type": "array", "items": {
                            "type": "object",
                            "properties": {
                                "row": {},
                                "views": {"type": "object", "additionalProperties": {"type": "object"},
                                          "description": "view -> its GET /features/{view}/{entity} body"},
                                "errors": {"type": "object", "additionalProperties": {
                                    "type": "object",
                                    "properties": {"status": {"type": "integer"}, "error": {"type": "string"},
                                                   "detail": {"type": "string"}},
                                    "required": ["status", "error", "detail"]}},
                            },
                            "required": ["row", "views", "errors"],
                        }},
                    },
                    "required": ["views", "rows", "rows_with_errors"],
                },
                "Prediction": {
                    "type": "object",
                    "properties": {
                        "event_id": {}, "source": {"type": "string"}, "topic": {"type": "string", "nullable": True},
                        "partition": {"type": "integer", "nullable": True}, "offset": {"type": "integer", "nullable": True},
                        "event_time_ms": {"type": "integer"}, "event_time": {},
                        "model": {"type": "string"}, "model_version": {"type": "integer"}, "role": {"type": "string"},
                        "label": {"type": "string", "nullable": True},
                        "probabilities": {"type": "array", "items": {"type": "number"}, "nullable": True},
                        "labels": {"type": "array", "items": {"type": "string"}, "nullable": True},
                        "unknown_levels": {"type": "object"}, "features": {"type": "object"},
                        "view_versions": {"type": "object"}, "score_latency_us": {"type": "number"},
                        "scored_at": {"type": "string"}, "join_key": {},
                        "complete": {"type": "boolean"}, "held_ms": {"type": "number"},
                    },
                },
            },
        },
    }

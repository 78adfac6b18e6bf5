"""The token check of the web routes (``app.tokens`` judges, this answers).

Write routes always need an ``admin`` token, and every refusal of one is
audited to ``fs.audit`` under the identity the request showed (``anonymous``
without a known token); reads and ``POST /score`` need ``read`` and ``score``
only when ``FS_REQUIRE_READ_TOKEN`` / ``FS_REQUIRE_SCORE_TOKEN`` say so, or
when tenants are defined (``FS_TENANTS``: without a token nobody could tell
whose names a caller may see).  A tenant's token that names another tenant's
view, source or model gets the same 404 as a name that does not exist."""
from __future__ import annotations

from typing import Protocol

from aiohttp import web as aioweb
from faust.web import Request, Response

from agents.control_records import CommandAudit, now_iso
from app.tokens import ADMIN, READ, SCORE, Decision, TokenTable, authorize
from app.web_common import RuntimeView, error_body
from kafka_plumbing.settings import Settings
from tables.definitions import Definitions
from tables.model_spec import ModelSpec, input_views


class AuthContext(Protocol):
    """What judging a request needs: the worker's ``Runtime``, or its read process's."""

    settings: Settings
    tokens: TokenTable
    definitions: Definitions


def required(runtime: AuthContext, scope: str) -> bool:
    settings = runtime.settings
    return scope == ADMIN or bool(runtime.tokens.tenants) or (scope == READ and settings.require_read_token) or (
        scope == SCORE and settings.require_score_token)


def judge(runtime: AuthContext, request: Request | aioweb.Request, scope: str) -> Decision:
    if not required(runtime, scope):
        return Decision(None)
    if scope == ADMIN and not any(t.allows(ADMIN) for t in runtime.tokens.tokens):
        return Decision(None, 403, "forbidden", "write routes are off: no admin token is configured "
                                                "(FS_TOKENS, FS_TOKENS_FILE or FS_ADMIN_TOKEN)")
    return authorize(runtime.tokens, request.headers.get("Authorization"), scope)


def admit(view: RuntimeView, request: Request, scope: str) -> tuple[Decision, Response | None]:
    """The decision on a read or score request, and its 401/403 answer when refused."""
    decision = judge(view.runtime, request, scope)
    if decision.status == 200:
        return decision, None
    return decision, view.json(error_body(decision.error or "unauthorized", decision.detail or ""),
                               status=decision.status)


def sees_source(runtime: AuthContext, decision: Decision, name: str) -> bool:
    source = runtime.definitions.sources.get(name)
    return decision.sees(runtime.tokens, name, source.parent if source is not None else None)


def sees_view(runtime: AuthContext, decision: Decision, name: str) -> bool:
    """A view is its tenant's by its name or its source's (a re-keyed log's: its parent's)."""
    view = next(iter(runtime.definitions.versions(name).values()))
    return decision.sees(runtime.tokens, view.name) or sees_source(runtime, decision, view.source.name)


def sees_model(runtime: AuthContext, decision: Decision, spec: ModelSpec) -> bool:
    """A model is its tenant's by its name, or when the tenant sees every log it reads: the scored
    one and those of its cross-source inputs (another tenant's weather is not this tenant's model)."""
    if decision.sees(runtime.tokens, spec.name):
        return True
    read = [spec.source, *(view.source.name for view in input_views(spec, runtime.definitions))]
    return all(sees_source(runtime, decision, source) for source in read)


def admit_admin(view: RuntimeView, request: Request, action: str, target: str) -> tuple[Decision, Response | None]:
    """The admin's decision, and the (audited) answer when refused."""
    runtime = view.runtime
    decision = judge(runtime, request, ADMIN)
    if decision.status == 200:
        return decision, None
    runtime.plane.audit_soon(target.encode(), CommandAudit(
        at=now_iso(), result="refused", by=decision.identity, action=action, target=target,
        reason=decision.error, detail=f"HTTP {request.method} {request.path}: {decision.detail}",
    ))
    return decision, view.json(error_body(decision.error or "unauthorized", decision.detail or ""),
                               status=decision.status)

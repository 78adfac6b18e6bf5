"""The token check of the web routes (``app.tokens`` judges, this answers).

Write routes always need an ``admin`` token, and every refusal of one is
audited to ``fs.audit`` under the identity the request showed (``anonymous``
without a known token); reads and ``POST /score`` need ``read`` and ``score``
only when ``FS_REQUIRE_READ_TOKEN`` / ``FS_REQUIRE_SCORE_TOKEN`` say so."""
from __future__ import annotations

from faust.web import Request, Response

from agents.control_records import CommandAudit, now_iso
from app.runtime import Runtime
from app.tokens import ADMIN, READ, SCORE, Decision, authorize
from app.web_common import RuntimeView, error_body


def required(runtime: Runtime, scope: str) -> bool:
    settings = runtime.settings
    return scope == ADMIN or (scope == READ and settings.require_read_token) or (
        scope == SCORE and settings.require_score_token)


def judge(runtime: Runtime, request: Request, scope: str) -> Decision:
    if not required(runtime, scope):
        return Decision(None)
    if scope == ADMIN and not any(t.allows(ADMIN) for t in runtime.tokens.tokens):
        return Decision(None, 403, "forbidden", "write routes are off: no admin token is configured "
                                                "(FS_TOKENS, FS_TOKENS_FILE or FS_ADMIN_TOKEN)")
    return authorize(runtime.tokens, request.headers.get("Authorization"), scope)


def refusal(view: RuntimeView, request: Request, scope: str) -> Response | None:
    """The 401/403 answer for a read or score request, or None to go on."""
    decision = judge(view.runtime, request, scope)
    if decision.status == 200:
        return None
    return view.json(error_body(decision.error or "unauthorized", decision.detail or ""), status=decision.status)


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

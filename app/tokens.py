"""Bearer tokens: who a request comes from, and what it may do.

A token has a name (the identity audited for what it does), scopes and a
secret.  Scopes: ``read`` (feature and model lookups, when
``FS_REQUIRE_READ_TOKEN`` is on), ``score`` (``POST /score``, when
``FS_REQUIRE_SCORE_TOKEN`` is on) and ``admin`` (every write route; it
implies the other two).

A token may belong to a tenant (``name@tenant`` in an entry, ``"tenant"`` in
JSON); tenants (``FS_TENANTS``: ``tenant:name[,name];...``) own sources, views
and models by name, and a tenant's token sees only what its tenant owns.

Sources, all merged: ``FS_TOKENS`` (``name:scope[,scope]:secret`` entries
separated by ``;`` or new lines), ``FS_TOKENS_FILE`` (a JSON list of
``{"name", "scopes", "token"}`` objects, or the same entries one a line,
``#`` comments), and ``FS_ADMIN_TOKEN`` (one token named ``admin`` with
every scope, as before scoped tokens).  Secrets may contain ``:``; names and
scopes may not.
"""
from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from typing import Any

from kafka_plumbing.settings import Settings

READ, SCORE, ADMIN = "read", "score", "admin"
SCOPES = (READ, SCORE, ADMIN)
# What each scope grants: an admin can do what a reader or a scorer can.
GRANTS = {READ: frozenset({READ}), SCORE: frozenset({SCORE}), ADMIN: frozenset(SCOPES)}


class TokenError(ValueError):
    """A token definition that cannot be used; the message says which and why."""


@dataclass(frozen=True)
class Token:
    name: str
    scopes: frozenset[str]
    secret: str = field(repr=False)
    tenant: str | None = None  # None: sees every tenant's names

    def allows(self, scope: str) -> bool:
        return any(scope in GRANTS[s] for s in self.scopes)


def _token(name: str, scopes: Any, secret: Any, origin: str, tenant: Any = None) -> Token:
    if isinstance(name, str) and "@" in name and tenant is None:
        name, tenant = name.split("@", 1)
    if tenant is not None and (not isinstance(tenant, str) or not tenant.strip()):
        raise TokenError(f"{origin}: token {name!r} has an empty tenant")
    if isinstance(scopes, str):
        scopes = scopes.split(",")
    if not isinstance(name, str) or not name.strip():
        raise TokenError(f"{origin}: a token needs a name")
    if not isinstance(scopes, list) or not scopes:
        raise TokenError(f"{origin}: token {name!r} needs scopes, some of {', '.join(SCOPES)}")
    cleaned = frozenset(str(s).strip() for s in scopes)
    unknown = sorted(cleaned - set(SCOPES))
    if unknown:
        raise TokenError(f"{origin}: token {name!r} has unknown scopes {unknown}; known: {', '.join(SCOPES)}")
    if not isinstance(secret, str) or not secret.strip():
        raise TokenError(f"{origin}: token {name!r} has no secret")
    return Token(name.strip(), cleaned, secret.strip(), tenant.strip() if tenant else None)


def parse_entries(text: str, origin: str) -> list[Token]:
    """``name:scope[,scope]:secret`` entries separated by ``;`` or new lines."""
    tokens = []
    for entry in text.replace("\n", ";").split(";"):
        entry = entry.strip()
        if not entry or entry.startswith("#"):
            continue
        parts = entry.split(":", 2)
        if len(parts) != 3:
            raise TokenError(f"{origin}: an entry is name:scope[,scope]:token, got one with {len(parts)} field(s)")
        tokens.append(_token(parts[0], parts[1], parts[2], origin))
    return tokens


def parse_file(text: str, origin: str) -> list[Token]:
    """A tokens file: JSON (a list, or ``{"tokens": [...]}``) or entries one a line."""
    if text.lstrip()[:1] not in ("[", "{"):
        return parse_entries(text, origin)
    try:
        body = json.loads(text)
    except ValueError as exc:
        raise TokenError(f"{origin}: not valid JSON: {exc}") from exc
    items = body.get("tokens") if isinstance(body, dict) else body
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise TokenError(f'{origin}: expected a list of {{"name", "scopes", "token"}} objects')
    return [_token(i.get("name"), i.get("scopes", i.get("scope")), i.get("token"), origin, i.get("tenant"))
            for i in items]


def parse_tenants(text: str) -> dict[str, frozenset[str]]:
    """``tenant:name[,name];...`` -> tenant -> the names it owns."""
    tenants: dict[str, frozenset[str]] = {}
    for entry in text.replace("\n", ";").split(";"):
        if not entry.strip():
            continue
        tenant, sep, names = entry.partition(":")
        owned = frozenset(n.strip() for n in names.split(",") if n.strip())
        if not sep or not tenant.strip() or not owned:
            raise TokenError(f"FS_TENANTS: an entry is tenant:name[,name], got {entry.strip()!r}")
        if tenant.strip() in tenants:
            raise TokenError(f"FS_TENANTS: tenant {tenant.strip()!r} is listed twice")
        tenants[tenant.strip()] = owned
    return tenants


def _digest(secret: str) -> bytes:
    # Comparing fixed-length digests: compare_digest on the raw secrets would
    # still reveal a secret's length through an early mismatch of lengths.
    return hashlib.sha256(secret.encode()).digest()


@dataclass(frozen=True)
class TokenTable:
    tokens: tuple[Token, ...] = ()
    tenants: dict[str, frozenset[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        strays = sorted({f"{t.name}@{t.tenant}" for t in self.tokens if t.tenant and t.tenant not in self.tenants})
        if strays:
            raise TokenError(f"tokens of tenants FS_TENANTS does not define: {strays}")
        names = [t.name for t in self.tokens]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise TokenError(f"token names must be unique (they are the audited identity): {dup}")
        if len({t.secret for t in self.tokens}) != len(self.tokens):
            raise TokenError("two tokens share a secret: each identity needs its own")

    def identify(self, secret: str) -> Token | None:
        """The token with this secret; every token is compared, in constant time,
        so the time taken says nothing about which one (if any) matched."""
        supplied = _digest(secret)
        found = None
        for token in self.tokens:
            if hmac.compare_digest(_digest(token.secret), supplied) and found is None:
                found = token
        return found


def load_tokens(settings: Settings) -> TokenTable:
    tokens = parse_entries(settings.tokens, "FS_TOKENS")
    if settings.tokens_file is not None:
        try:
            text = settings.tokens_file.read_text()
        except OSError as exc:
            raise TokenError(f"FS_TOKENS_FILE={settings.tokens_file}: {exc}") from exc
        tokens += parse_file(text, str(settings.tokens_file))
    if settings.admin_token:
        tokens.append(Token("admin", frozenset({ADMIN}), settings.admin_token))
    return TokenTable(tuple(tokens), parse_tenants(settings.tenants))


@dataclass(frozen=True)
class Decision:
    """A request's verdict: the token it came with (if known), and the refusal (if any)."""

    token: Token | None
    status: int = 200  # 200, 401 (no or unknown token) or 403 (a token without the scope)
    error: str | None = None
    detail: str | None = None

    @property
    def identity(self) -> str:
        return self.token.name if self.token is not None else "anonymous"

    def sees(self, table: TokenTable, *names: str | None) -> bool:
        """Whether this request may know of a thing called by any of ``names`` (a
        view, its source, the source's parent...): a tenant's token sees only its own."""
        if self.token is None or self.token.tenant is None:
            return True
        owned = table.tenants.get(self.token.tenant, frozenset())
        return any(name in owned for name in names if name)


def authorize(table: TokenTable, authorization: str | None, scope: str) -> Decision:
    """Judge an ``Authorization`` header for ``scope``."""
    scheme, _, secret = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        return Decision(None, 401, "unauthorized", f"send Authorization: Bearer <token> with the {scope!r} scope")
    token = table.identify(secret.strip())
    if token is None:
        return Decision(None, 401, "unauthorized", "unknown token")
    if not token.allows(scope):
        return Decision(token, 403, "forbidden",
                        f"token {token.name!r} has scopes {sorted(token.scopes)}; this needs {scope!r}")
    return Decision(token)

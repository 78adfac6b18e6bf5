"""HMAC-SHA256 signatures of control-plane records, and the key they need.

Anyone who can write to Kafka can write to the control, deployments and audit
topics; only holders of the control key can sign.  A signed record keeps its
value (the JSON every reader decodes) and carries the signature, the signer's
identity and the signing time in Kafka headers.  The MAC covers what the
record is for (its topic's role), its Kafka key, the identity, the time and
the exact value bytes: the bytes sent are the canonical bytes, nothing is
re-encoded before checking, and every field is length-prefixed so no two
different records share a signed message.

The key (``FS_CONTROL_KEY``, else the file ``FS_CONTROL_KEY_FILE``, else the
local key file ``<FS_HOME>/control.key``) is held by admins and workers.  With
none configured and the local broker (no ``FS_KAFKA_BOOTSTRAP``), the local
key file is created on first use (dev mode: the worker, the command line and
the demo of one checkout share it); against a cluster a missing key is an
error, because workers on several hosts would each invent their own.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence, Union

from kafka_plumbing.settings import Settings

SIG_HEADER, BY_HEADER, AT_HEADER = "fs-sig", "fs-by", "fs-at"
SCHEME = b"fs-control-v1"
MIN_KEY_CHARS = 32

# What a record is for: a command, an accepted state, an audit verdict.  Part of
# the signed message, so a signed command cannot be replayed as a state.
CONTROL, DEPLOYMENTS, AUDIT = "control", "deployments", "audit"

Headers = Union[Mapping[str, bytes], Sequence[tuple[str, bytes]], None]


class ControlKeyError(ValueError):
    """No usable control key; the message says what to set."""


class BadSignature(ValueError):
    """A record without a valid signature; the message says what is wrong."""


@dataclass(frozen=True)
class Signed:
    """Who signed a record, and when (ms since the epoch), as the signature attests."""

    by: str
    at_ms: int


def _message(role: str, key: bytes | None, by: str, at_ms: int, value: bytes) -> bytes:
    parts = (SCHEME, role.encode(), key or b"", by.encode(), str(at_ms).encode(), value)
    return b"".join(len(p).to_bytes(8, "big") + p for p in parts)


def _header_map(headers: Headers) -> dict[str, bytes]:
    if not headers:
        return {}
    items = headers.items() if isinstance(headers, Mapping) else headers
    return {name: bytes(value or b"") for name, value in items}


@dataclass(frozen=True)
class Signer:
    """Signs and checks records with one key; ``identity`` signs by default."""

    key: bytes
    identity: str

    def mac(self, role: str, key: bytes | None, by: str, at_ms: int, value: bytes) -> str:
        return hmac.new(self.key, _message(role, key, by, at_ms, value), hashlib.sha256).hexdigest()

    def headers(self, role: str, key: bytes | None, value: bytes, by: str | None = None,
                at_ms: int | None = None) -> list[tuple[str, bytes]]:
        """The headers that sign ``value`` under ``key`` as ``by`` (this signer's identity by default)."""
        who = self.identity if by is None else by
        when = int(time.time() * 1000) if at_ms is None else at_ms
        return [(SIG_HEADER, self.mac(role, key, who, when, value).encode()),
                (BY_HEADER, who.encode()), (AT_HEADER, str(when).encode())]

    def verify(self, role: str, key: bytes | None, value: bytes | None, headers: Headers) -> Signed:
        """Who signed the record; raises ``BadSignature`` when it is not signed with this key."""
        found = _header_map(headers)
        if SIG_HEADER not in found:
            raise BadSignature("the record is not signed")
        try:
            by = found.get(BY_HEADER, b"").decode()
            at_ms = int(found.get(AT_HEADER, b""))
        except ValueError as exc:
            raise BadSignature(f"unreadable signature headers: {exc}") from exc
        expected = self.mac(role, key, by, at_ms, value or b"").encode()
        if not hmac.compare_digest(expected, found[SIG_HEADER]):
            raise BadSignature("the signature does not match the record")
        return Signed(by=by, at_ms=at_ms)


def local_key_path(settings: Settings) -> Path:
    return settings.home / "control.key"


def control_key(settings: Settings, create_local: bool = True) -> bytes:
    """The control key of these settings (see the module's docstring); raises
    ``ControlKeyError`` when there is none or it is too short."""
    if settings.control_key:
        raw, origin = settings.control_key, "FS_CONTROL_KEY"
    elif settings.control_key_file is not None:
        try:
            raw, origin = settings.control_key_file.read_text(), str(settings.control_key_file)
        except OSError as exc:
            raise ControlKeyError(f"FS_CONTROL_KEY_FILE={settings.control_key_file}: {exc}") from exc
    else:
        path = local_key_path(settings)
        if not path.exists() and not (create_local and not settings.kafka_bootstrap):
            raise ControlKeyError(
                "no control key: set FS_CONTROL_KEY or FS_CONTROL_KEY_FILE (the same key on every worker "
                "and for every admin; e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
            )
        raw, origin = _read_or_create(path), str(path)
    raw = raw.strip()
    if len(raw) < MIN_KEY_CHARS:
        raise ControlKeyError(f"the control key from {origin} has {len(raw)} characters; use at least {MIN_KEY_CHARS}")
    return raw.encode()


def _read_or_create(path: Path) -> str:
    """The local key file's key, created (owner-only) if missing; safe when a
    worker and a command start at the same time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for _ in range(50):  # the creator may not have written it yet
            text = path.read_text()
            if text.strip():
                return text
            time.sleep(0.02)
        return path.read_text()
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_urlsafe(32) + "\n")
    return path.read_text()


def signer(settings: Settings, identity: str, create_local: bool = True) -> Signer:
    return Signer(control_key(settings, create_local), identity)

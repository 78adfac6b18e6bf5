"""The dead-letter record: what was rejected, why, and where it is in the log.

Every rejected record keeps its position (topic, partition, offset), so the
original can always be read back from the log, which never expires.  The
original bytes are also carried inline, base64, unless that would make the
record too big for the broker (a hostile 1 MB payload would otherwise make
the DLQ write itself fail, and the worker with it): then only the first
``INLINE_LIMIT`` bytes are inlined, with the full size and a SHA-256, and
``original_truncated`` says so.
"""
from __future__ import annotations

import base64
import hashlib

import msgspec

# Base64 grows by a third: 256 KiB inline stays well inside Kafka's default 1 MiB message size.
INLINE_LIMIT = 256 * 1024


class DeadLetter(msgspec.Struct, kw_only=True):
    reason: str
    detail: str
    source: str
    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None = None
    key: str | None = None
    original_b64: str | None = None
    original_bytes: int | None = None
    original_sha256: str | None = None
    original_truncated: bool = False


def dead_letter(
    *, reason: str, detail: str, source: str, topic: str, partition: int, offset: int,
    timestamp_ms: int | None, key: bytes | None, value: bytes | None,
) -> DeadLetter:
    record = DeadLetter(
        reason=reason, detail=detail, source=source, topic=topic, partition=partition, offset=offset,
        timestamp_ms=timestamp_ms,
        key=key.decode("utf-8", "replace") if isinstance(key, bytes) else None,
    )
    if isinstance(value, bytes):
        record.original_bytes = len(value)
        record.original_sha256 = hashlib.sha256(value).hexdigest()
        record.original_truncated = len(value) > INLINE_LIMIT
        record.original_b64 = base64.b64encode(value[:INLINE_LIMIT]).decode("ascii")
    return record


def encode(record: DeadLetter) -> bytes:
    return msgspec.json.encode(record)

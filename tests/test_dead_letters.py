"""A dead letter always fits a Kafka message and always points at the original."""
from __future__ import annotations

import base64
import hashlib
import json

from agents.dead_letters import INLINE_LIMIT, dead_letter, encode


def _letter(value: bytes | None) -> dict:
    record = dead_letter(reason="too_large", detail="d", source="departures", topic="fs.events.departures",
                         partition=2, offset=41, timestamp_ms=1500, key=b"JFK", value=value)
    return json.loads(encode(record))


def test_a_small_original_is_inlined_whole() -> None:
    body = _letter(b'{"x": 1}')
    assert base64.b64decode(body["original_b64"]) == b'{"x": 1}' and body["original_truncated"] is False
    assert body["original_bytes"] == 8 and body["original_sha256"] == hashlib.sha256(b'{"x": 1}').hexdigest()
    assert (body["topic"], body["partition"], body["offset"], body["key"], body["timestamp_ms"]) == (
        "fs.events.departures", 2, 41, "JFK", 1500)


def test_a_huge_original_is_truncated_and_says_so() -> None:
    value = b"x" * (3 * 1024 * 1024)
    record = dead_letter(reason="too_large", detail="d", source="s", topic="t", partition=0, offset=0,
                         timestamp_ms=None, key=None, value=value)
    encoded = encode(record)
    assert len(encoded) < 1024 * 1024  # Kafka's default message size
    body = json.loads(encoded)
    assert body["original_truncated"] is True and body["original_bytes"] == len(value)
    assert base64.b64decode(body["original_b64"]) == value[:INLINE_LIMIT]
    assert body["original_sha256"] == hashlib.sha256(value).hexdigest()


def test_no_value_no_original() -> None:
    body = _letter(None)
    assert body["original_b64"] is None and body["original_bytes"] is None

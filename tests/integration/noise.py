"""Bad input for the integration tests: malformed, late and repeated records."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def malformed(good: dict) -> list[tuple[str, bytes, str]]:
    """(key, payload, expected reason) for departures: every validation rule, several ways."""
    def variant(**changes: Any) -> bytes:
        record = {**good, "event_id": f"bad-{len(cases)}", **changes}
        return json.dumps({k: v for k, v in record.items() if v is not _DROP}).encode()

    cases: list[tuple[str, bytes, str]] = []
    add = lambda payload, reason: cases.append(("JFK", payload, reason))  # noqa: E731
    for text in (b"{not json", b"", b"\xff\xfe\x00", b'{"event_id": "x"', b"nul"):
        add(text, "invalid_json")
    for text in (b"[]", b"42", b'"a string"', b"null", b"[1, 2]"):
        add(text, "not_an_object")
    for field in ("event_id", "event_time", "origin", "dest", "carrier", "dep_delay", "flight_id"):
        add(variant(**{field: _DROP}), "missing_field")
    add(variant(dep_delay="late"), "wrong_type")
    add(variant(dep_delay=True), "wrong_type")
    add(variant(flight=1.5), "wrong_type")
    add(variant(origin=7), "wrong_type")
    add(variant(distance=[1]), "wrong_type")
    add(b'{"event_id":"nan-1","event_time":"2013-01-01T12:00:00Z","origin":"JFK","dest":"LAX","carrier":"AA","flight_id":"f","dep_delay":NaN}', "not_finite")
    add(b'{"event_id":"inf-1","event_time":"2013-01-01T12:00:00Z","origin":"JFK","dest":"LAX","carrier":"AA","flight_id":"f","dep_delay":Infinity}', "not_finite")
    add(variant(event_time="yesterday"), "bad_timestamp")
    add(variant(event_time="2013-13-45T99:00:00Z"), "bad_timestamp")
    add(variant(event_time="2013-01-01T12:00:00"), "bad_timestamp")  # no zone
    add(variant(event_time="1970-01-01T00:00:01Z"), "absurd_timestamp")
    add(variant(event_time="2999-01-01T00:00:00Z"), "absurd_timestamp")
    add(variant(event_time=1357041600), "absurd_timestamp")  # seconds, not ms
    add(variant(padding="x" * 70_000), "too_large")
    add(variant(padding="y" * 100_000), "too_large")
    return cases


_DROP = object()




def late_copies(event: dict, n: int, behind_ms: int) -> list[dict]:
    """New events of the same entity, ``behind_ms`` older than ``event``: late."""
    from dev_tooling.flights_data import event_time_ms

    at = event_time_ms(event)
    return [{**event, "event_id": f"late-{event['event_id']}-{i}", "event_time": iso(at - behind_ms - i * 60_000)}
            for i in range(n)]

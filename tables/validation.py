"""Checks one raw record against its source's schema.  Pure: no Faust.

Returns the parsed record and its event time, or a ``Rejection`` whose reason
is a short stable code (what dashboards and tests match on) plus a detail a
person can act on.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from itertools import accumulate
from datetime import datetime, timezone
from typing import Any

from tables.dsl import Source
from tables.log_record import INVALID_LANE, LANE_HEADER, SCHEMA_HEADER
from tables.partitioning import key_partition
from tables.schema import upgrade

# Event times outside this range are typos or unit mix-ups (seconds vs ms).
MIN_EVENT_MS = int(datetime(1990, 1, 1, tzinfo=timezone.utc).timestamp() * 1000)
MAX_EVENT_MS = int(datetime(2100, 1, 1, tzinfo=timezone.utc).timestamp() * 1000)

TOO_LARGE = "too_large"
INVALID_JSON = "invalid_json"
NOT_AN_OBJECT = "not_an_object"
MISSING_FIELD = "missing_field"
WRONG_TYPE = "wrong_type"
NOT_FINITE = "not_finite"
BAD_TIMESTAMP = "bad_timestamp"
ABSURD_TIMESTAMP = "absurd_timestamp"
LATE = "late"
SCORING_ERROR = "scoring_error"
INTERNAL_ERROR = "internal_error"
BAD_LANE = "bad_lane_header"
INVALID_UNICODE = "invalid_unicode"
FUTURE_EVENT = "future_event"
WRONG_PARTITION = "wrong_partition"
# A schema version the source does not define (newer than its newest: a
# producer ahead of the workers' definitions), or a header that is no version.
UNKNOWN_SCHEMA_VERSION = "unknown_schema_version"
# How far an event's time may lie after the moment Kafka took the record:
# one event dated years ahead would otherwise make its partition's clock
# judge every later event late.  Measured against the record's own Kafka
# timestamp (not the wall clock), so a replay of the log decides the same.
MAX_FUTURE_MS = 24 * 3600_000
# JSON may spell a lone UTF-16 surrogate (\ud800): Python keeps it in the str,
# and it cannot be encoded again (keys, outputs): such a record is rejected.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
# Nesting is bounded before parsing: json's parser recurses on the caller's
# stack, so past a few hundred levels whether it copes depended on how deep
# the caller already was (the worker's asyncio stack, the replay's), and the
# worker and the replay could decide the same record differently.
MAX_NESTING = 100
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_BRACKET = re.compile(rb"[\[\]{}]")
# Declared int fields are 64-bit, as in Parquet, Avro and H2O: a larger
# integer would be accepted here and break every output that stores it.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


@dataclass(frozen=True)
class Rejection:
    reason: str
    detail: str


@dataclass(frozen=True)
class Valid:
    record: dict[str, Any]
    time_ms: int


def parse_time_ms(value: Any) -> int:
    """ISO-8601 with a zone, or integer epoch milliseconds."""
    if isinstance(value, bool):
        raise ValueError("a boolean is not a time")
    if isinstance(value, int):
        return value
    if not isinstance(value, str):
        raise ValueError(f"expected an ISO-8601 string, got {type(value).__name__}")
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError("timestamp has no time zone")
    return int(parsed.timestamp() * 1000)


def _type_error(name: str, type_: str, value: Any) -> Rejection | None:
    if type_ == "str":
        ok = isinstance(value, str)
    elif type_ == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
        if ok and not INT64_MIN <= value <= INT64_MAX:
            return Rejection(WRONG_TYPE, f"{name}: an integer outside the 64-bit range")
    elif type_ == "float":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    else:  # time: checked separately
        return None
    if not ok:
        return Rejection(WRONG_TYPE, f"{name}: expected {type_}, got {type(value).__name__}")
    if type_ == "float" and not _finite(value):
        return Rejection(NOT_FINITE, f"{name}: {value!r}"[:200])
    return None


def _finite(value: int | float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer past the float range (about 1.8e308)
        return False


def _nesting(payload: bytes) -> int:
    """How deep arrays and objects nest, strings left out (brackets in them are text)."""
    if payload.count(b"[") + payload.count(b"{") <= MAX_NESTING:
        return 0  # cannot be deeper: the usual flat record costs two counts
    steps = [1 if b in (b"[", b"{") else -1 for b in _BRACKET.findall(_JSON_STRING.sub(b"", payload))]
    return max(accumulate(steps), default=0)


def _has_lone_surrogate(value: Any) -> bool:
    pending = [value]
    while pending:  # a loop, not recursion: no depth limit to reach
        item = pending.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


def _check_fields(fields: dict[str, str], required: tuple[str, ...], record: dict[str, Any],
                  suffix: str = "") -> Rejection | None:
    for name in required:
        if record.get(name) is None:
            return Rejection(MISSING_FIELD, name + suffix)
    for name, type_ in fields.items():
        value = record.get(name)
        if value is not None:
            error = _type_error(name, type_, value)
            if error:
                return Rejection(error.reason, error.detail + suffix)
    return None


def validate(source: Source, payload: bytes | None, max_bytes: int, lane: int | None = None,
             kafka_time_ms: int | None = None, placed: tuple[int, int] | None = None,
             schema_version: int | None = None) -> Valid | Rejection:
    """``lane``: the record's ``fs-lane`` header as ``log_record.lane_of`` reads it;
    ``kafka_time_ms``: its Kafka timestamp (None: not known, as in an exported file);
    ``placed``: (partition, partitions of its topic) the record was found in (None: not known);
    ``schema_version``: its ``fs-schema`` header as ``log_record.schema_of`` reads it (None: version 1).
    An event of an older version is checked against that version, then upgraded
    to the newest (``tables.schema.upgrade``): ``Valid.record`` is always newest."""
    version = 1 if schema_version is None else schema_version
    if version != source.schema_version and version not in source.upgrades:
        # Judged before parsing: nothing in a record of an unknown shape can be checked.
        return Rejection(UNKNOWN_SCHEMA_VERSION, f"the {SCHEMA_HEADER} header says {version if version >= 0 else 'no number'}; "
                                                 f"{source.name} defines versions 1 to {source.schema_version}")
    if lane == INVALID_LANE:
        return Rejection(BAD_LANE, f"the {LANE_HEADER} header is not a partition number")
    if lane is not None and source.parent is None:
        # Only re-keyed logs have lanes.  On a source's own topic a lane would
        # give the record a clock and duplicate ids of its own: a late or
        # re-sent event would be applied.
        return Rejection(BAD_LANE, f"a {LANE_HEADER} header on {source.name}'s own topic (only re-keyed logs have lanes)")
    if payload is None:
        return Rejection(INVALID_JSON, "empty message (tombstone)")
    if len(payload) > max_bytes:
        return Rejection(TOO_LARGE, f"{len(payload)} bytes > limit {max_bytes}")
    if _nesting(payload) > MAX_NESTING:
        return Rejection(INVALID_JSON, f"arrays and objects nested deeper than {MAX_NESTING} levels")
    try:
        # Strict UTF-8 first: json.loads(bytes) would also take UTF-16/32, a
        # byte-order mark, and surrogates spelt as raw bytes (its decoder lets
        # them through), none of which is UTF-8 JSON.
        record = json.loads(payload.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        # ValueError: not UTF-8 (UnicodeDecodeError), bad JSON, or an integer
        # past Python's 4,300 digits; RecursionError: kept as a safety net.
        # Invalid like any other, so the replay decides exactly as the worker did.
        return Rejection(INVALID_JSON, f"{type(exc).__name__}: {exc}"[:500])
    if not isinstance(record, dict):
        return Rejection(NOT_AN_OBJECT, f"top level is {type(record).__name__}")
    if _SURROGATE_ESCAPE.search(payload) and _has_lone_surrogate(record):
        return Rejection(INVALID_UNICODE, "a string holds a lone UTF-16 surrogate (\\ud800-\\udfff)")

    if version != source.schema_version:
        plan = source.upgrades[version]
        rejection = _check_fields(plan.fields, plan.required, record, f" (schema version {version})")
        if rejection:
            return rejection
        record = upgrade(plan, record)
    # The newest checks run on upgraded records too: the history's check at
    # load makes them pass, except what only the newest requires of a
    # re-keyed log (its entity).
    rejection = _check_fields(source.fields, source.required_fields, record)
    if rejection:
        return rejection

    try:
        time_ms = parse_time_ms(record[source.time_field])
    except (ValueError, OverflowError) as exc:
        return Rejection(BAD_TIMESTAMP, f"{source.time_field}: {exc}")
    if not MIN_EVENT_MS <= time_ms < MAX_EVENT_MS:
        return Rejection(ABSURD_TIMESTAMP, f"{source.time_field}: {record[source.time_field]!r}")
    if kafka_time_ms is not None and kafka_time_ms >= 0 and time_ms > kafka_time_ms + MAX_FUTURE_MS:
        return Rejection(FUTURE_EVENT, f"{source.time_field}: {record[source.time_field]!r} is more than "
                                       f"{MAX_FUTURE_MS // 3600_000} h after the record's Kafka timestamp")
    if placed is not None:
        # An entity's state lives in the partition its key hashes to; a record
        # elsewhere (no key, another partitioner) would split it across workers.
        partition, partitions = placed
        expected = key_partition(str(record[source.key]), partitions)
        if expected != partition:
            return Rejection(WRONG_PARTITION, f"{source.key} {str(record[source.key])[:200]!r} belongs in partition "
                                              f"{expected} of {partitions} (Kafka's default partitioner on the key), "
                                              f"not {partition}: publish keyed by {source.key}")
    return Valid(record, time_ms)

"""The format of a record in a source's log, as every reader sees it.

A source topic holds events and, rarely, marker records (header
``fs-control``) that are not events; a re-keyed log's records carry the
partition they came from (header ``fs-lane``).  Readers of Kafka and of
exported files turn what they read into ``LogRecord``s here, so the engine
never touches a client type.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

LANE_HEADER = "fs-lane"
# Marks a record that is not an event: written into a partition by the
# backfill so an idle partition still reaches the point where a filled view
# goes live.  Agents and replay skip it; it is never counted.
CONTROL_HEADER = "fs-control"

# A watermark marker (a control record, so every reader skips it as an event):
# its publisher promises that no event with a time earlier than this (epoch ms,
# decimal ASCII) follows on the partition.  Cross-source reads take it as the
# partition's watermark while the partition is idle (``tables.cross_source``).
WATERMARK_HEADER = "fs-watermark"

# The schema version an event was written in (decimal ASCII); none: version 1,
# so a plain JSON producer that knows nothing of versions keeps working.
SCHEMA_HEADER = "fs-schema"

Headers = Any  # a Kafka client's headers: a sequence of (key, bytes) pairs, or a dict


def _header_items(headers: Headers) -> Any:
    return headers.items() if isinstance(headers, dict) else (headers or ())


def is_control(headers: Headers) -> bool:
    return any(key == CONTROL_HEADER for key, _ in _header_items(headers))


# A lane header that is not a partition number (forged, or corrupt): the
# record is rejected by validation, online and in the replay alike.
INVALID_LANE = -1


def lane_of(headers: Headers) -> int | None:
    """The upstream partition a re-keyed record came from (None on a source's own topic)."""
    for key, value in _header_items(headers):
        if key == LANE_HEADER:
            try:
                lane = int(value)
            except (TypeError, ValueError):
                return INVALID_LANE
            return lane if lane >= 0 else INVALID_LANE
    return None


# A schema header that is not a version number: rejected by validation as an
# unknown version, online and in the replay alike.
INVALID_SCHEMA = -1


def _decimal(value: Any, most_digits: int) -> int | None:
    """A header value of ASCII digits only, and few: int() would also take " 2", "+2",
    "2_0", other scripts' digits, and refuse 5,000 digits by raising."""
    ok = isinstance(value, bytes) and 0 < len(value) <= most_digits and value.isdigit()
    return int(value) if ok else None


def schema_of(headers: Headers) -> int | None:
    """The schema version a record declares (None: it declares none, version 1)."""
    for key, value in _header_items(headers):
        if key == SCHEMA_HEADER:
            version = _decimal(value, 9)
            return INVALID_SCHEMA if version is None else version
    return None


def schema_headers(version: int | None) -> list[tuple[str, bytes]]:
    return [] if version is None else [(SCHEMA_HEADER, str(version).encode())]


def lane_headers(partition: int, schema_version: int | None = None) -> list[tuple[str, bytes]]:
    """Headers of a record forwarded from ``partition`` into a re-keyed log: its
    schema version goes with its bytes, or the re-keyed log would read it as version 1."""
    return [(LANE_HEADER, str(partition).encode()), *schema_headers(schema_version)]


def control_headers(reason: str) -> list[tuple[str, bytes]]:
    return [(CONTROL_HEADER, reason.encode())]


def watermark_headers(time_ms: int) -> list[tuple[str, bytes]]:
    """A watermark marker's headers: a control record promising no event before ``time_ms``."""
    return [*control_headers("watermark"), (WATERMARK_HEADER, str(int(time_ms)).encode())]


def watermark_of(headers: Headers) -> int | None:
    """The promise of a watermark marker (None: not one, or not a number)."""
    for key, value in _header_items(headers):
        if key == WATERMARK_HEADER:
            return _decimal(value, 16)
    return None


@dataclass(frozen=True)
class LogRecord:
    partition: int
    offset: int
    value: bytes | None
    lane: int | None = None  # upstream partition of a re-keyed record
    control: bool = False  # a backfill marker, not an event
    timestamp_ms: int | None = None  # the record's Kafka timestamp (None in an exported file)
    partitions: int | None = None  # its topic's partition count (None in an exported file)
    schema_version: int | None = None  # its fs-schema header (None: version 1; INVALID_SCHEMA: not a number)
    watermark_ms: int | None = None  # a watermark marker's promise (``WATERMARK_HEADER``)

    @classmethod
    def of(cls, partition: int, offset: int, value: bytes | None, headers: Headers,
           timestamp_ms: int | None = None, partitions: int | None = None) -> "LogRecord":
        control = is_control(headers)
        return cls(partition, offset, value, lane_of(headers), control, timestamp_ms, partitions,
                   schema_of(headers), watermark_of(headers) if control else None)

    @property
    def placed(self) -> tuple[int, int] | None:
        """Where the record was found, for the partition check (None: not known)."""
        return None if self.partitions is None else (self.partition, self.partitions)


def read_file(path: Path) -> Iterator[LogRecord]:
    """An exported log: JSON Lines, one partition, offsets are line numbers."""
    with open(path, "rb") as handle:
        for offset, line in enumerate(handle):
            line = line.rstrip(b"\n")
            if line:
                yield LogRecord(0, offset, line)


def from_messages(messages: Iterator[Any], partitions: int) -> Iterator[LogRecord]:
    """Client records (anything with partition, offset, value, headers and a timestamp in
    milliseconds, as aiokafka's) of a topic of ``partitions`` partitions, as log records."""
    for message in messages:
        yield LogRecord.of(message.partition, message.offset, message.value, message.headers, message.timestamp,
                           partitions)

"""``publish``: events checked by the worker's own validation, then produced to
their source's log through the project's producer (``kafka_plumbing.producer``:
the one client factory, keyed by the source's entity so each event lands in
its entity's partition).

Validation runs on the exact bytes that will be sent, so an event refused
here would have gone to the dead-letter topic; one refusal sends nothing,
and every refusal is listed.  What only the worker can decide (late, a
duplicate id, an event too far ahead of its Kafka time) is still decided
there."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from app.client.records import PublishRejected, PublishReport, Rejected
from kafka_plumbing.producer import encode, produce, produce_markers
from kafka_plumbing.settings import Settings
from tables.definitions import Definitions
from tables.log_record import watermark_headers
from tables.validation import INVALID_JSON, Rejection, validate


def check(definitions: Definitions, settings: Settings, source: str,
          events: Sequence[Mapping[str, Any]]) -> list[Rejected]:
    """Every event of ``events`` that validation refuses (an unknown source: ``KeyError``)."""
    keys = definitions.key_fields()
    if source not in keys:
        raise KeyError(f"no published source {source!r}; known: {sorted(keys)}")
    schema = definitions.sources[source]
    rejected = []
    for index, event in enumerate(events):
        try:
            payload = encode(dict(event))
        except (TypeError, ValueError) as exc:  # not JSON: NaN, a set, a datetime object
            rejected.append(Rejected(index, INVALID_JSON, f"{type(exc).__name__}: {exc}"))
            continue
        # As sent: with the newest schema version (``Definitions.schema_headers``).
        checked = validate(schema, payload, settings.max_payload_bytes, schema_version=schema.schema_version)
        if isinstance(checked, Rejection):
            rejected.append(Rejected(index, checked.reason, checked.detail))
    return rejected


async def publish(definitions: Definitions, settings: Settings, source: str,
                  events: Sequence[Mapping[str, Any]]) -> PublishReport:
    rejected = check(definitions, settings, source, events)
    if rejected:
        raise PublishRejected(source, rejected)
    report = await produce(settings, definitions.key_fields(), ((source, dict(e)) for e in events), len(events),
                           progress=False, headers=definitions.schema_headers())
    return PublishReport(source, report.total, report.seconds)


async def watermark(definitions: Definitions, settings: Settings, source: str, time_ms: int,
                    partitions: Sequence[int] | None = None) -> None:
    """A watermark marker into ``partitions`` of ``source`` (default: all): the publisher's
    promise that no event older than ``time_ms`` follows there.  Send it to a partition that
    goes idle, or at the end of a stream, so events held for cross-source inputs are scored
    without waiting out (docs/models.md); an event that breaks the promise is not read by them."""
    if source not in definitions.key_fields():
        raise KeyError(f"no published source {source!r}; known: {sorted(definitions.key_fields())}")
    await produce_markers(settings, settings.topics.events(source), watermark_headers(time_ms),
                          range(settings.partitions) if partitions is None else partitions)

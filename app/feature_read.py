"""The one answer to ``GET /features/{view}/{entity}``, whoever serves it.

Two servers answer it: the worker's own web view (``app.web``, in the
ingest process) and the worker's read process (``app.reader``), which
follows the worker's store so reads never wait behind ingest.  Both hand
``read_features`` a ``ReadSide``: where the partitions' flushed state, the
routing map and the control state come from.  Everything else (which
version serves, routing, readiness, filling, as-of) is decided here, once.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from yarl import URL

from agents.control_plane import ControlState
from app.routing import NoOwner
from tables.partitioning import key_partition
from app.web_common import error_body, iso
from tables.definitions import Definitions
from tables.processor import SourceProcessor, Stores, stream_time
from tables.state import PartitionClock
from tables.validation import parse_time_ms


class ReadSide(Protocol):
    definitions: Definitions
    partitions: int

    def ready(self) -> bool: ...
    def control(self) -> ControlState: ...
    def owner(self, topic: str, entity: str) -> URL | None:
        """The owner of ``entity``'s partition, None when it is this worker; raises NoOwner."""
    def topic(self, source: str) -> str: ...
    def processor(self, source: str) -> SourceProcessor: ...
    def flushed(self, source: str, partition: int) -> tuple[Stores, PartitionClock | None] | None:
        """The partition's last flush and its clock; None unless restored here."""


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]


@dataclass(frozen=True)
class Forward:
    url: URL  # the worker owning the key: ask it the same request


def read_features(side: ReadSide, view: str, entity: str, query: Mapping[str, str],
                  visible: Callable[[str], bool] = lambda name: True) -> Answer | Forward:
    """``visible``: whether the caller may see a view's name (a tenant sees its own only)."""
    definitions = side.definitions
    control = side.control()
    known = sorted(name for name in definitions.names if visible(name))
    versions = definitions.versions(view) if view in known else None
    if versions is None:
        return Answer(404, error_body("unknown_view", f"no view {view!r}; known: {known}"))
    if "version" in query:
        try:
            definition = versions[int(query["version"])]
        except (ValueError, KeyError):
            return Answer(404, error_body("unknown_version", f"{view} has versions {sorted(versions)}"))
    else:
        definition = control.serving(view)
    as_of_ms = None
    if "as_of" in query:
        try:
            as_of_ms = parse_time_ms(query["as_of"])
        except ValueError as exc:
            return Answer(400, error_body("bad_as_of", f"as_of must be ISO-8601 with a zone: {exc}"))
    if not side.ready():
        return Answer(503, error_body("not_ready", "the worker is joining the group or restoring state"))
    source_def = definition.source
    topic = side.topic(source_def.name)
    try:
        url = side.owner(topic, entity)
    except NoOwner as exc:
        return Answer(503, error_body("not_ready", str(exc)))
    if url is not None:
        return Forward(url)
    partition = key_partition(entity, side.partitions)
    flushed = side.flushed(source_def.name, partition)
    if flushed is None:
        return Answer(503, error_body("not_ready", f"partition {partition} of {topic} is being restored"))
    stores, clock = flushed
    unfed = control.unfed(source_def.name, source_def.parent) if source_def.parent else []
    if unfed:
        return Answer(503, error_body(
            "view_filling",
            f"{view} reads {source_def.name}, whose history from {source_def.parent} partitions {unfed} "
            f"is not written yet: `featurestream backfill {view}` writes it; it serves once filled",
        ))
    processor = side.processor(source_def.name)
    # "Current" means at the partition's stream time: event time, never wall clock.
    now_ms = stream_time(clock)
    read = processor.read(stores, clock, entity, now_ms or 0, [definition])
    if read.filling:
        progress = control.fill_status(definition).get(partition)
        through, end = (None, None) if progress is None else (progress.through, progress.end)
        return Answer(503, error_body(
            "view_filling",
            f"{view} v{definition.version} is still being filled from the log on partition {partition} "
            f"(through offset {through} of {end}); it serves once filled",
        ))
    state = read.states[definition.ref]
    if state is None:
        return Answer(404, error_body("unknown_entity", f"{view} has no {definition.entity} {entity!r}"))
    if not now_ms:  # no clock time yet: the entity's own newest event
        now_ms = state.max_time
        read = processor.read(stores, clock, entity, now_ms, [definition])
    body = {
        "view": definition.name,
        "version": definition.version,
        "serving_version": control.serving(view).version,
        "entity": entity,
        "entity_field": definition.entity,
        "as_of_ms": now_ms,
        "as_of": iso(now_ms),
        "last_event_time": iso(state.max_time),
        "events_applied": state.seq,
    }
    if as_of_ms is None:
        return Answer(200, {**body, "features": read.values[definition.ref]})
    # Point in time: the T-based rule, exactly, or an explicit gap.
    windows = processor.windows[definition.state_key]
    try:
        values, unavailable = windows.as_of(state, as_of_ms)
    except ValueError:
        return Answer(409, error_body(
            "outside_retained_history",
            f"history for {entity} is kept from {iso(state.horizon)}; use the training-set command for older times",
        ))
    return Answer(200, {**body, "as_of_ms": as_of_ms, "as_of": iso(as_of_ms), "features": values,
                        "unavailable": unavailable})

"""The feature definition language: sources, features, feature views.

One definition drives the online tables and the offline replay; nothing here
knows about Faust.  A user writes the same objects in their own module and
points the worker at it with ``--features`` / ``FS_FEATURES``.
"""
from __future__ import annotations

import builtins
import dataclasses
import functools
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from tables import aggregations as aggs
from tables import schema
from tables.schema import FIELD_TYPES, SchemaVersion, Upgrade

_DURATION = re.compile(r"^\s*(\d+)\s*(ms|s|m|h|d)\s*$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
MINUTE_MS = 60_000


def duration_ms(value: str | int | None) -> int | None:
    """``"90m"``, ``"1h"``, ``"7d"`` or a number of milliseconds."""
    if value is None or isinstance(value, int):
        return value
    match = _DURATION.match(value)
    if not match:
        raise ValueError(f"bad duration {value!r}: use e.g. '30m', '1h', '7d'")
    return int(match.group(1)) * _UNIT_MS[match.group(2)]




@dataclass(frozen=True)
class Source:
    """A stream of domain events: one Kafka topic ``<prefix>.events.<name>``.

    ``key`` is the field the topic is partitioned by; views on this source are
    keyed by it, so every view's state is local to the partition's owner.
    """

    name: str
    fields: dict[str, str]
    key: str
    required: tuple[str, ...] = ()
    time_field: str = "event_time"
    id_field: str = "event_id"
    lateness: str | int = "1h"
    # Set on a source derived by ``keyed_by``: the source it re-keys.
    parent: str | None = None
    # How far behind the other partitions one partition of this source may be
    # when it first shows up in a re-keyed log (a worker catching up reads
    # partitions unevenly): views by other entities keep this much more history.
    rekey_skew: str | int = "24h"
    # Older schemas, versions 1..N-1 (``fields``/``required`` are version N):
    # see ``tables.schema`` for what may change.
    history: tuple[SchemaVersion, ...] = ()
    # Newest field -> the value an older event that lacks it (absent or null) gets.
    defaults: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, type_ in self.fields.items():
            if type_ not in FIELD_TYPES:
                raise ValueError(f"source {self.name}: field {name} has unknown type {type_!r}")
        for name in (self.key, self.time_field, self.id_field, *self.required):
            if name not in self.fields:
                raise ValueError(f"source {self.name}: {name!r} is not a declared field")
        _ = self.upgrades  # an incompatible history is refused with the definitions, not at the first old event

    @property
    def schema_version(self) -> int:
        """The newest schema version: the one ``fields`` describe."""
        return len(self.history) + 1

    @functools.cached_property
    def upgrades(self) -> dict[int, Upgrade]:
        """Older version -> how its events are checked and upgraded (empty for a single-version source)."""
        return schema.plans(self) if self.history or self.defaults else {}

    def keyed_by(self, entity: str) -> "Source":
        """The same events re-keyed by another field, as their own log.

        Views by ``entity`` are computed from this log, so their state is
        local to the worker owning the entity's partition of it."""
        if entity == self.key:
            return self
        if entity not in self.fields:
            raise ValueError(f"source {self.name}: cannot key by unknown field {entity!r}")
        required = tuple(dict.fromkeys((*self.required, self.key)))
        # Its records keep their upstream partition as a lane (see processor):
        # lateness is judged per lane, so the parent's lateness applies as is.
        return dataclasses.replace(
            self, name=f"{self.name}.by_{entity}", key=entity, required=required, parent=self.name
        )

    @functools.cached_property  # read for every event
    def lateness_ms(self) -> int:
        return duration_ms(self.lateness) or 0

    @functools.cached_property
    def history_ms(self) -> int:
        """How far behind its newest event an entity must still accept events."""
        return self.lateness_ms + ((duration_ms(self.rekey_skew) or 0) if self.parent else 0)

    @property
    def required_fields(self) -> tuple[str, ...]:
        extra = tuple(f for f in self.required if f not in (self.id_field, self.time_field, self.key))
        return (self.id_field, self.time_field, self.key, *extra)


@dataclass(frozen=True)
class Feature:
    """One aggregation over one window (``window_ms`` None: the entity's lifetime).

    ``hop_ms == window_ms`` makes the window *tumbling*: epoch-aligned windows
    that do not overlap, read as the window holding the time (``closed`` False)
    or the one just before it (``closed`` True).  Any other hop slides."""

    name: str
    agg: aggs.Aggregation
    window_ms: int | None = None
    hop_ms: int | None = None
    closed: bool = False

    def __post_init__(self) -> None:
        if self.window_ms is None:
            if self.closed:
                raise ValueError(f"feature {self.name}: closed=True needs a tumbling window (hop == window)")
            return
        if self.window_ms <= 0 or self.hop_ms is None or self.hop_ms <= 0:
            raise ValueError(f"feature {self.name}: window and hop must be positive")
        if self.window_ms % self.hop_ms:
            raise ValueError(f"feature {self.name}: window must be a multiple of the hop")
        if self.closed and not self.tumbling:
            raise ValueError(f"feature {self.name}: closed=True needs a tumbling window (hop == window)")

    @property
    def tumbling(self) -> bool:
        return self.window_ms is not None and self.window_ms == self.hop_ms

    def params(self) -> dict[str, Any]:
        params = {"name": self.name, **self.agg.params(), "window_ms": self.window_ms, "hop_ms": self.hop_ms}
        # Only tumbling features carry these keys, so every sliding view keeps
        # its fingerprint (and state key), while a view whose hop == window
        # was read as sliding before gets a new state key and is filled again.
        if self.tumbling:
            params["tumbling"] = True
        if self.closed:
            params["closed"] = True
        return params


def default_hop_ms(window_ms: int) -> int:
    """W/12, at least a minute, and always dividing W."""
    hop = builtins.max(window_ms // 12, MINUTE_MS)
    while window_ms % hop:
        hop -= MINUTE_MS if hop > MINUTE_MS else 1
    return hop


def _window_suffix(window_ms: int | None) -> str:
    if window_ms is None:
        return ""
    # "24h" reads better than "1d" for the usual day-long windows.
    units = ("d", "h", "m", "s") if window_ms >= 2 * _UNIT_MS["d"] else ("h", "m", "s")
    for unit in units:
        if window_ms % _UNIT_MS[unit] == 0:
            return f"_{window_ms // _UNIT_MS[unit]}{unit}"
    return f"_{window_ms}ms"


def _feature(
    agg: aggs.Aggregation, window: str | int | None, hop: str | int | None, name: str | None,
    closed: bool = False,
) -> Feature:
    window_ms = duration_ms(window)
    if hop is not None:
        hop_ms = duration_ms(hop)
    elif window_ms:
        hop_ms = default_hop_ms(window_ms)
        if hop_ms == window_ms:
            # W <= 1 minute: the default hop would silently make it tumbling.
            raise ValueError(
                f"window {window!r}: give a hop (hop={window!r} for a tumbling window, a divisor to slide)"
            )
    else:
        hop_ms = None
    if name is None:
        base = agg.kind if agg.field is None else f"{agg.kind}_{agg.field}"
        name = base + _window_suffix(window_ms)
        if window_ms is not None and window_ms == hop_ms:
            name += "_closed" if closed else "_current"
    return Feature(name=name, agg=agg, window_ms=window_ms, hop_ms=hop_ms, closed=closed)


def count(window: str | None = None, *, hop: str | None = None, name: str | None = None,
        closed: bool = False) -> Feature:
    return _feature(aggs.Count(), window, hop, name, closed)


def sum(field: str, window: str | None = None, *, hop: str | None = None, name: str | None = None,  # noqa: A001
        closed: bool = False) -> Feature:
    return _feature(aggs.Sum(field), window, hop, name, closed)


def mean(field: str, window: str | None = None, *, hop: str | None = None, name: str | None = None,
        closed: bool = False) -> Feature:
    return _feature(aggs.Mean(field), window, hop, name, closed)


def min(field: str, window: str | None = None, *, hop: str | None = None, name: str | None = None,  # noqa: A001
        closed: bool = False) -> Feature:
    return _feature(aggs.Min(field), window, hop, name, closed)


def max(field: str, window: str | None = None, *, hop: str | None = None, name: str | None = None,  # noqa: A001
        closed: bool = False) -> Feature:
    return _feature(aggs.Max(field), window, hop, name, closed)


def stddev(field: str, window: str | None = None, *, hop: str | None = None, name: str | None = None,
        closed: bool = False) -> Feature:
    return _feature(aggs.Stddev(field), window, hop, name, closed)


def last(field: str, window: str | None = None, *, hop: str | None = None, name: str | None = None,
        closed: bool = False) -> Feature:
    return _feature(aggs.Last(field), window, hop, name, closed)


def last_k(field: str, k: int = 5, window: str | None = None, *, hop: str | None = None, name: str | None = None,
        closed: bool = False) -> Feature:
    return _feature(aggs.LastK(field, k=k), window, hop, name or f"last_{k}_{field}", closed)


def distinct_count(field: str, window: str | None = None, *, hop: str | None = None, name: str | None = None,
        closed: bool = False) -> Feature:
    return _feature(aggs.DistinctCount(field), window, hop, name, closed)


def approx_distinct(field: str, window: str | None = None, *, hop: str | None = None, name: str | None = None,
        closed: bool = False) -> Feature:
    return _feature(aggs.ApproxDistinct(field), window, hop, name, closed)


def approx_quantile(field: str, q: float = 0.5, window: str | None = None, *, hop: str | None = None, name: str | None = None,
        closed: bool = False) -> Feature:
    return _feature(aggs.ApproxQuantile(field, q=q), window, hop, name, closed)


@dataclass(frozen=True)
class FeatureView:
    """Features of one entity computed from one source."""

    name: str
    version: int
    source: Source
    entity: str
    features: list[Feature] = field(default_factory=list)
    # How the view is referred to in feature logs, columns and model inputs:
    # its name for the established (lowest) version, ``name@vN`` for a newer
    # version being filled or tried side by side.  Set by ``definitions.load``.
    ref: str = ""

    def __post_init__(self) -> None:
        if not self.ref:
            object.__setattr__(self, "ref", self.name)
        if not isinstance(self.version, int) or isinstance(self.version, bool) or self.version < 1:
            raise ValueError(f"view {self.name}: version must be a positive integer, not {self.version!r}")
        names = [f.name for f in self.features]
        if len(set(names)) != len(names):
            raise ValueError(f"view {self.name}: duplicate feature names {names}")
        if self.entity not in self.source.fields:
            raise ValueError(f"view {self.name}: entity {self.entity!r} is not a field of {self.source.name}")
        for feat in self.features:
            if feat.agg.field is not None and feat.agg.field not in self.source.fields:
                raise ValueError(f"view {self.name}: {feat.agg.field!r} is not a field of {self.source.name}")

    @functools.cached_property
    def fingerprint(self) -> str:
        spec_items: Any = [f.params() for f in self.features]
        # How older events come to hold the fields the view reads, when that
        # changed over the source's versions (a rename, a widening, a default):
        # such a view gets a new state key and is filled again from the log
        # under the new definition.  A view reading only unchanged fields keeps
        # its key, so adding a schema version refills nothing it need not.
        read = [self.entity, *(f.agg.field for f in self.features if f.agg.field is not None)]
        changed = schema.lineage(self.source, read) if self.source.history or self.source.defaults else {}
        if changed:
            spec_items = {"features": spec_items, "schema": changed}
        spec = json.dumps(spec_items, sort_keys=True)
        return hashlib.sha256(spec.encode()).hexdigest()[:8]

    @functools.cached_property
    def state_key(self) -> str:
        """Name of the view's state: changes whenever what it computes changes."""
        return f"{self.name}.v{self.version}.{self.fingerprint}"

    @property
    def longest_window_ms(self) -> int:
        return builtins.max((f.window_ms or 0 for f in self.features), default=0)

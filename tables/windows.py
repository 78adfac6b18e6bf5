"""Hop-aligned tiles of mergeable partial aggregates for one (view, entity).

The state is a ``tables.state.ViewState``: lifetime IRs, and per hop the
tiles by start time, each with one IR per feature of that hop and the newest
event time it holds.  Features sharing a hop share tiles;
``tile(x) = floor(x / H) * H`` (UTC epoch).  A feature reads a run of tiles
(``tile_span``): a sliding window the tiles from ``floor(t - W, H)`` to
``tile(t)``, a tumbling one (H = W) ``tile(t)`` alone, or with ``closed`` the
tile before it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tables.dsl import FeatureView, Feature
from tables.state import Tile, ViewState

State = ViewState


def floor_to(x: int, step: int) -> int:
    return (x // step) * step


def tile_span(feature: Feature, time_ms: int) -> tuple[int, int]:
    """First and last start of the tiles ``feature`` aggregates at ``time_ms``."""
    hop, window = feature.hop_ms or 1, feature.window_ms or 0
    current = floor_to(time_ms, hop)
    if feature.closed:
        return current - hop, current - hop
    if feature.tumbling:
        return current, current
    return floor_to(time_ms - window, hop), current


def is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


@dataclass(frozen=True)
class _Slot:
    feature: Feature
    group: int | None  # hop ms, None for lifetime features
    index: int


class ViewWindows:
    """Applies events to a view's state and reads feature values from it."""

    def __init__(self, view: FeatureView, lateness_ms: int) -> None:
        self.view = view
        self.lateness_ms = lateness_ms
        self._slots: list[_Slot] = []
        group_sizes: dict[str | None, int] = {}
        for feat in view.features:
            group = None if feat.window_ms is None else feat.hop_ms
            index = group_sizes.get(group, 0)
            group_sizes[group] = index + 1
            self._slots.append(_Slot(feat, group, index))
        self._groups = {g: [s for s in self._slots if s.group == g] for g in group_sizes}
        # Keep tiles a future non-late event can still need: longest window + L.
        self._retain_ms = {
            g: max(s.feature.window_ms or 0 for s in slots) + lateness_ms
            for g, slots in self._groups.items()
            if g is not None
        }

    def new_state(self) -> State:
        return ViewState(life=[s.feature.agg.init() for s in self._groups.get(None, [])])

    def apply(self, state: State, record: dict[str, Any], time_ms: int, watermark_ms: int | None = None) -> State:
        """Add one event.  ``watermark_ms``: no later record of this log is older
        than it minus the lateness (default: this entity's newest event)."""
        seq = state.seq
        for group, slots in self._groups.items():
            if group is None:
                irs = state.life
            else:
                tiles = state.tiles.setdefault(group, {})
                start = floor_to(time_ms, group)
                tile = tiles.get(start)
                if tile is None:
                    tile = tiles[start] = Tile([s.feature.agg.init() for s in slots], time_ms)
                elif time_ms > tile.newest:
                    tile.newest = time_ms
                irs = tile.irs
            for slot in slots:
                agg = slot.feature.agg
                value = None if agg.field is None else record.get(agg.field)
                if agg.needs_value and is_missing(value):
                    continue
                irs[slot.index] = agg.update(irs[slot.index], value, time_ms, seq)
        state.seq = seq + 1
        if state.max_time is None or time_ms > state.max_time:
            state.max_time = time_ms
        reference = state.max_time if watermark_ms is None else min(state.max_time, watermark_ms)
        horizon = reference - self.lateness_ms
        if state.horizon is None or horizon > state.horizon:
            state.horizon = horizon
            self._prune(state, reference)
        return state

    def can_apply(self, state: State | None, time_ms: int) -> bool:
        """False for an event older than the history this entity still keeps."""
        return state is None or state.horizon is None or time_ms >= state.horizon

    def _prune(self, state: State, reference: int) -> None:
        for hop, tiles in state.tiles.items():
            oldest = floor_to(reference - self._retain_ms[hop], hop)
            for start in [s for s in tiles if s < oldest]:
                del tiles[start]

    def values(self, state: State | None, time_ms: int) -> dict[str, Any]:
        """Feature values at ``time_ms`` from the tiles of each feature's ``tile_span``."""
        if state is None:
            state = self.new_state()
        out: dict[str, Any] = {}
        # Features of one hop and span read the same tiles: found once, in start order.
        in_span: dict[tuple[int, int, int], list[Tile]] = {}
        for slot in self._slots:
            feat, agg = slot.feature, slot.feature.agg
            if slot.group is None:
                out[feat.name] = agg.finalize(state.life[slot.index])
                continue
            hop = slot.group
            first, last = tile_span(feat, time_ms)
            tiles = in_span.get((hop, first, last))
            if tiles is None:
                held = state.tiles.get(hop, {})
                tiles = in_span[(hop, first, last)] = [
                    tile for start in range(first, last + 1, hop) if (tile := held.get(start)) is not None
                ]
            out[feat.name] = agg.finalize(agg.merge_all([tile.irs[slot.index] for tile in tiles]))
        return out

    def as_of(self, state: State | None, at_ms: int) -> tuple[dict[str, Any], dict[str, str]]:
        """Point-in-time values at ``at_ms`` by the T-based rule, from the tiles.

        Returns (exact values, unavailable feature -> reason).  A windowed
        feature is exact when nothing in tile(T) is later than T (a closed
        tumbling window does not read tile(T), so it always is); a lifetime
        feature only when the entity has nothing later than T.  Never a guess."""
        if state is None:
            return self.values(None, at_ms), {}
        if state.horizon is not None and at_ms < state.horizon:
            raise ValueError(f"{at_ms} is older than the history kept for this entity")
        values = self.values(state, at_ms)
        unavailable: dict[str, str] = {}
        for slot in self._slots:
            feat = slot.feature
            if slot.group is None:
                if state.max_time is not None and state.max_time > at_ms:
                    unavailable[feat.name] = "lifetime feature: the entity has events after as_of"
                continue
            start = floor_to(at_ms, feat.hop_ms or 1)
            if tile_span(feat, at_ms)[1] != start:
                continue  # a closed tumbling window ends before tile(T): nothing in it is later than T
            tile = state.tiles.get(slot.group, {}).get(start)
            if tile is not None and tile.newest > at_ms:
                end = start + (feat.hop_ms or 0) - 1
                unavailable[feat.name] = f"its tile ends at {end} ms and holds events after as_of; ask for as_of >= {end} ms"
        for name in unavailable:
            values.pop(name)
        return values, unavailable

"""An independent implementation of the DESIGN.md window semantics with pandas
and numpy, written from the text of the contract, sharing no code with
``tables/``.  Slow and obvious on purpose."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Spec:
    name: str
    kind: str  # count, sum, mean, min, max, stddev, last, distinct_count
    field: str | None
    window_ms: int | None
    hop_ms: int | None
    # hop == window: a tumbling window; closed: the window before the current one
    closed: bool = False


def late_flags(times: pd.Series, lateness_ms: int) -> np.ndarray:
    """An event is late when older than the max event time before it minus L.
    (A late event never raises the max, so the max over all earlier events is
    the max over applied ones.)"""
    previous_max = times.cummax().shift(1)
    return (times < previous_max - lateness_ms).fillna(False).to_numpy()


def aggregate(kind: str, values: pd.Series, times: np.ndarray, order: np.ndarray) -> Any:
    if kind == "count":
        return int(len(values))
    present = values.dropna()
    if kind == "sum":
        return float(present.sum()) if len(present) else 0.0
    if len(present) == 0:
        return None
    if kind == "mean":
        return float(present.mean())
    if kind == "min":
        return float(present.min())
    if kind == "max":
        return float(present.max())
    if kind == "stddev":
        return float(np.std(present.to_numpy(dtype=float), ddof=0))
    if kind == "distinct_count":
        return int(present.astype(str).nunique())
    if kind == "last":
        frame = pd.DataFrame({"v": values.to_numpy(), "t": times, "o": order}).dropna(subset=["v"])
        return frame.sort_values(["t", "o"]).iloc[-1]["v"]
    raise ValueError(kind)


def _select(history: pd.DataFrame, spec: Spec, at_ms: int, by_tile_of_t: bool) -> pd.DataFrame:
    if spec.window_ms is None:
        return history if by_tile_of_t else history[history.time_ms <= at_ms]
    if spec.window_ms == spec.hop_ms:
        return _select_tumbling(history, spec, at_ms, by_tile_of_t)
    hop = spec.hop_ms
    lo = math.floor((at_ms - spec.window_ms) / hop) * hop
    tiles = (history.time_ms // hop) * hop
    if by_tile_of_t:
        return history[(tiles >= lo) & (tiles <= (at_ms // hop) * hop)]
    return history[(history.time_ms >= lo) & (history.time_ms <= at_ms)]


def _select_tumbling(history: pd.DataFrame, spec: Spec, at_ms: int, by_tile_of_t: bool) -> pd.DataFrame:
    """Tumbling window W: the UTC-epoch-aligned windows [k*W, (k+1)*W).  The
    current one is the window holding t, the closed one the window before it.
    Served (by_tile_of_t): the earlier events of that window, whatever their
    time.  Point in time: current = time in [start(T), T], closed = time in
    [start(T) - W, start(T))."""
    width = spec.window_ms
    window_of_t = math.floor(at_ms / width)
    wanted = window_of_t - 1 if spec.closed else window_of_t
    window_of_event = np.floor_divide(history.time_ms.to_numpy(), width)
    in_window = history[window_of_event == wanted]
    if by_tile_of_t or spec.closed:
        return in_window
    return in_window[in_window.time_ms <= at_ms]


def per_event(events: pd.DataFrame, specs: list[Spec], entity: str, lateness_ms: int) -> list[dict[str, Any]]:
    """Value served for each event (before it is applied), in log order.

    ``events``: one partition's log in order, with ``time_ms`` and the entity
    and value columns.  Late events get no values (``late`` column True)."""
    frame = events.reset_index(drop=True).copy()
    frame["order"] = np.arange(len(frame))
    frame["late"] = late_flags(frame.time_ms, lateness_ms)
    applied = frame[~frame.late]
    rows = []
    for i, row in frame.iterrows():
        out: dict[str, Any] = {"order": i, "late": bool(row.late)}
        if not row.late:
            history = applied[(applied.order < i) & (applied[entity] == row[entity])]
            for spec in specs:
                chosen = _select(history, spec, int(row.time_ms), by_tile_of_t=True)
                values = chosen[spec.field] if spec.field else chosen.time_ms
                out[spec.name] = aggregate(spec.kind, values, chosen.time_ms.to_numpy(), chosen.order.to_numpy())
        rows.append(out)
    return rows


def as_of(applied: pd.DataFrame, specs: list[Spec], entity: str, key: str, at_ms: int) -> dict[str, Any]:
    """Point-in-time values: the entity's applied events with time in [floor(T - W, H), T]."""
    frame = applied.reset_index(drop=True).copy()
    frame["order"] = np.arange(len(frame))
    history = frame[frame[entity] == key]
    out = {}
    for spec in specs:
        chosen = _select(history, spec, at_ms, by_tile_of_t=False)
        values = chosen[spec.field] if spec.field else chosen.time_ms
        out[spec.name] = aggregate(spec.kind, values, chosen.time_ms.to_numpy(), chosen.order.to_numpy())
    return out


def specs_of(view: Any) -> list[Spec]:
    """Read a FeatureView's declared parameters (names and numbers only)."""
    return [
        Spec(f.name, f.agg.kind, f.agg.field, f.window_ms, f.hop_ms, getattr(f, "closed", False))
        for f in view.features
    ]

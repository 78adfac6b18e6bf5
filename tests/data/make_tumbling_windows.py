"""Writes tests/data/tumbling_windows.json: reference vectors for tumbling
windows in the style of ../shared/testdata/window_semantics.json.

The ``hand_checked`` case is written out below with values worked out by hand
from docs/features.md; the two generated cases take their values from the
pandas oracle (tests/oracle.py), which must itself reproduce the hand-checked
case.  Run from the repository root: ``python tests/data/make_tumbling_windows.py``.
"""
from __future__ import annotations

import json
import random
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402

from tests import oracle  # noqa: E402

MIN = 60_000
# Aligned to 10 minutes, 20 minutes into a UTC hour: the 1 h windows start at
# base - 20 min and base + 40 min.
BASE = 1_700_000_400_000

FEATURES: list[dict[str, Any]] = [
    {"name": "n_10m_current", "agg": "count", "field": None, "window_ms": 10 * MIN, "hop_ms": 10 * MIN, "closed": False},
    {"name": "n_10m_closed", "agg": "count", "field": None, "window_ms": 10 * MIN, "hop_ms": 10 * MIN, "closed": True},
    {"name": "sum_10m_current", "agg": "sum", "field": "value", "window_ms": 10 * MIN, "hop_ms": 10 * MIN, "closed": False},
    {"name": "sum_10m_closed", "agg": "sum", "field": "value", "window_ms": 10 * MIN, "hop_ms": 10 * MIN, "closed": True},
    {"name": "mean_10m_current", "agg": "mean", "field": "value", "window_ms": 10 * MIN, "hop_ms": 10 * MIN, "closed": False},
    {"name": "max_10m_closed", "agg": "max", "field": "value", "window_ms": 10 * MIN, "hop_ms": 10 * MIN, "closed": True},
    {"name": "min_10m_current", "agg": "min", "field": "value", "window_ms": 10 * MIN, "hop_ms": 10 * MIN, "closed": False},
    {"name": "std_10m_closed", "agg": "stddev", "field": "value", "window_ms": 10 * MIN, "hop_ms": 10 * MIN, "closed": True},
    {"name": "distinct_cat_10m_current", "agg": "distinct_count", "field": "cat", "window_ms": 10 * MIN, "hop_ms": 10 * MIN, "closed": False},
    {"name": "last_10m_current", "agg": "last", "field": "value", "window_ms": 10 * MIN, "hop_ms": 10 * MIN, "closed": False},
    {"name": "last_10m_closed", "agg": "last", "field": "value", "window_ms": 10 * MIN, "hop_ms": 10 * MIN, "closed": True},
    {"name": "n_1h_current", "agg": "count", "field": None, "window_ms": 60 * MIN, "hop_ms": 60 * MIN, "closed": False},
    {"name": "n_1h_closed", "agg": "count", "field": None, "window_ms": 60 * MIN, "hop_ms": 60 * MIN, "closed": True},
    # sliding, on the same 10 min tiles as the tumbling features
    {"name": "n_30m_sliding", "agg": "count", "field": None, "window_ms": 30 * MIN, "hop_ms": 10 * MIN, "closed": False},
    {"name": "n_lifetime", "agg": "count", "field": None, "window_ms": None, "hop_ms": None, "closed": False},
]


def _event(i: int, offset_ms: int, key: str, value: float | None, cat: str) -> dict[str, Any]:
    return {"event_id": f"h{i}", "time_ms": BASE + offset_ms, "key": key, "value": value, "cat": cat}


def hand_checked() -> dict[str, Any]:
    """Boundaries (599999 / 600000 ms), a tie across keys, an out-of-order event
    landing in an already closed window, a late one, a missing value and an
    empty closed window."""
    events = [
        _event(0, 1 * MIN, "a", 2.0, "x"),
        _event(1, 10 * MIN - 1, "a", 4.0, "y"),
        _event(2, 10 * MIN, "a", 10.0, "x"),
        _event(3, 10 * MIN, "b", 7.0, "x"),
        _event(4, 5 * MIN, "a", 1.0, "x"),  # 5 min behind: within L, lands in the closed window 0
        _event(5, 25 * MIN, "a", 3.0, "z"),
        _event(6, 3 * MIN, "a", 100.0, "x"),  # 22 min behind the max: late (L = 15 min)
        _event(7, 29 * MIN, "a", None, "y"),
        _event(8, 40 * MIN, "a", 5.0, "z"),  # first event of the next UTC hour
    ]
    late = {"h6"}
    # event id -> values served (before the event is applied)
    served = {
        "h0": dict(n_10m_current=0, n_10m_closed=0, sum_10m_current=0.0, sum_10m_closed=0.0, last_10m_closed=None, n_1h_current=0, n_1h_closed=0, n_30m_sliding=0),
        "h1": dict(n_10m_current=1, n_10m_closed=0, sum_10m_current=2.0, sum_10m_closed=0.0, last_10m_closed=None, n_1h_current=1, n_1h_closed=0, n_30m_sliding=1),
        "h2": dict(n_10m_current=0, n_10m_closed=2, sum_10m_current=0.0, sum_10m_closed=6.0, last_10m_closed=4.0, n_1h_current=2, n_1h_closed=0, n_30m_sliding=2),
        "h3": dict(n_10m_current=0, n_10m_closed=0, sum_10m_current=0.0, sum_10m_closed=0.0, last_10m_closed=None, n_1h_current=0, n_1h_closed=0, n_30m_sliding=0),
        "h4": dict(n_10m_current=2, n_10m_closed=0, sum_10m_current=6.0, sum_10m_closed=0.0, last_10m_closed=None, n_1h_current=3, n_1h_closed=0, n_30m_sliding=2),
        "h5": dict(n_10m_current=0, n_10m_closed=1, sum_10m_current=0.0, sum_10m_closed=10.0, last_10m_closed=10.0, n_1h_current=4, n_1h_closed=0, n_30m_sliding=4),
        "h7": dict(n_10m_current=1, n_10m_closed=1, sum_10m_current=3.0, sum_10m_closed=10.0, last_10m_closed=10.0, n_1h_current=5, n_1h_closed=0, n_30m_sliding=5),
        "h8": dict(n_10m_current=0, n_10m_closed=0, sum_10m_current=0.0, sum_10m_closed=0.0, last_10m_closed=None, n_1h_current=0, n_1h_closed=6, n_30m_sliding=3),
    }
    per_event: dict[str, list[dict[str, Any]]] = {}
    for name in served["h0"]:
        per_event[name] = [
            {"event_id": e["event_id"], "late": True} if e["event_id"] in late
            else {"event_id": e["event_id"], "value": served[e["event_id"]][name]}
            for e in events
        ]
    as_of = [
        {"key": "a", "as_of_ms": BASE + 20 * MIN - 1,
         "values": dict(n_10m_current=1, n_10m_closed=3, sum_10m_current=10.0, sum_10m_closed=7.0, last_10m_closed=4.0, n_1h_current=4, n_1h_closed=0, n_30m_sliding=4)},
        {"key": "a", "as_of_ms": BASE + 26 * MIN + 40_000,
         "values": dict(n_10m_current=1, n_10m_closed=1, sum_10m_current=3.0, sum_10m_closed=10.0, last_10m_closed=10.0, n_1h_current=5, n_1h_closed=0, n_30m_sliding=5)},
        {"key": "a", "as_of_ms": BASE + 40 * MIN - 1,
         "values": dict(n_10m_current=0, n_10m_closed=2, sum_10m_current=0.0, sum_10m_closed=3.0, last_10m_closed=3.0, n_1h_current=6, n_1h_closed=0, n_30m_sliding=6)},
        {"key": "a", "as_of_ms": BASE + 40 * MIN,
         "values": dict(n_10m_current=1, n_10m_closed=0, sum_10m_current=5.0, sum_10m_closed=0.0, last_10m_closed=None, n_1h_current=1, n_1h_closed=6, n_30m_sliding=4)},
        {"key": "b", "as_of_ms": BASE + 10 * MIN - 1,
         "values": dict(n_10m_current=0, n_10m_closed=0, sum_10m_current=0.0, sum_10m_closed=0.0, last_10m_closed=None, n_1h_current=0, n_1h_closed=0, n_30m_sliding=0)},
    ]
    return {"lateness_ms": 15 * MIN, "events": events, "per_event": per_event, "as_of": as_of}


def generated(seed: int, out_of_order: bool) -> dict[str, Any]:
    rng = random.Random(seed)
    lateness = 20 * MIN
    t = BASE + rng.randrange(10 * MIN)
    events = []
    for i in range(400):
        roll = rng.random()
        if roll < 0.15:
            step = 0  # a tie
        elif roll < 0.2:
            step = rng.randrange(2, 4) * 60 * MIN  # a gap that empties windows
        elif out_of_order and roll < 0.35:
            step = -rng.randrange(0, lateness)  # back in time, within L
        elif out_of_order and roll < 0.4:
            step = -rng.randrange(lateness + 1, 3 * lateness)  # late
        else:
            step = rng.randrange(0, 4 * MIN)
        t += step
        value = None if rng.random() < 0.05 else round(rng.uniform(-5, 20), 3)
        events.append({"event_id": f"s{seed}-{i}", "time_ms": t, "key": f"k{rng.randrange(4)}",
                       "value": value, "cat": rng.choice("abcdef")})
        if step < 0:
            t -= step  # the next event continues from the newest time
    specs = [oracle.Spec(f["name"], f["agg"], f["field"], f["window_ms"], f["hop_ms"], f["closed"]) for f in FEATURES]
    frame = pd.DataFrame(events)
    rows = oracle.per_event(frame, specs, "key", lateness)
    per_event: dict[str, list[dict[str, Any]]] = {}
    for spec in specs:
        per_event[spec.name] = [
            {"event_id": e["event_id"], "late": True} if row["late"] else {"event_id": e["event_id"], "value": _plain(row[spec.name])}
            for e, row in zip(events, rows)
        ]
    applied = frame[[not row["late"] for row in rows]]
    newest = max(e["time_ms"] for e in events)
    as_of = []
    for i in range(40):
        key = f"k{rng.randrange(4)}"
        # every other query in the recent past, which the online tiles still hold
        at = rng.randrange(newest - lateness, newest + 2 * 60 * MIN) if i % 2 else rng.randrange(BASE, newest)
        values = oracle.as_of(applied, specs, "key", key, at)
        as_of.append({"key": key, "as_of_ms": at, "values": {k: _plain(v) for k, v in values.items()}})
    return {"lateness_ms": lateness, "events": events, "per_event": per_event, "as_of": as_of}


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def main() -> None:
    vectors = {
        "about": (
            "Reference vectors for tumbling windows (hop == window) in docs/features.md, in the style of "
            "../shared/testdata/window_semantics.json. Windows are UTC-epoch aligned [k*W, (k+1)*W). "
            "per_event: the value served for each event, computed before it is applied, from the entity's "
            "earlier applied events in the window holding the event's time (closed: the window before it); "
            "late events are marked late and not applied. as_of: point-in-time value at as_of_ms over applied "
            "events: current = time in [start(T), T], closed = time in [start(T) - W, start(T)). "
            "hand_checked values were worked out by hand; the generated cases come from tests/oracle.py "
            "(tests/data/make_tumbling_windows.py). Floats compare within 1e-9 relative."
        ),
        "features": FEATURES,
        "cases": {
            "hand_checked": hand_checked(),
            "in_order_with_ties": generated(11, out_of_order=False),
            "out_of_order_and_late": generated(12, out_of_order=True),
        },
    }
    path = Path(__file__).with_name("tumbling_windows.json")
    path.write_text(json.dumps(vectors, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

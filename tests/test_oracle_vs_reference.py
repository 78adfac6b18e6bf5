"""The oracle itself must reproduce the shared reference vectors, or it proves nothing."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from tests import oracle


def close(got, want) -> bool:
    if got is None or want is None:
        return got is None and want is None
    return math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12)


@pytest.mark.parametrize("case_name", ["in_order_with_ties", "out_of_order_and_late"])
def test_oracle_matches_reference(window_vectors: dict, case_name: str) -> None:
    case = window_vectors["cases"][case_name]
    specs = [oracle.Spec(f["name"], f["agg"], f["field"], f["window_ms"], f["hop_ms"]) for f in window_vectors["features"]]
    events = pd.DataFrame(case["events"])
    got = oracle.per_event(events, specs, "key", case["lateness_ms"])
    by_id = dict(zip(events.event_id, got))
    for name, rows in case["per_event"].items():
        for row in rows:
            mine = by_id[row["event_id"]]
            if row.get("late"):
                assert mine["late"]
            else:
                assert close(mine[name], row["value"]), (name, row, mine[name])
    applied = events[[not row["late"] for row in got]]
    for query in case["as_of"]:
        values = oracle.as_of(applied, specs, "key", query["key"], query["as_of_ms"])
        for name, want in query["values"].items():
            assert close(values[name], want), (query, name, values[name])

"""The DESIGN.md window semantics, checked against the shared reference vectors."""
from __future__ import annotations

import math
from typing import Any

import pytest

from tables import aggregations as aggs
from tables.dsl import Feature, FeatureView, Source
from tables.point_in_time import as_of_values
from tables.processor import APPLIED, LATE, SourceProcessor, Stores

KINDS = {cls.kind: cls for cls in aggs.KINDS.values()}


def close(got: Any, want: Any) -> bool:
    if got is None or want is None:
        return got is None and want is None
    if isinstance(got, float) or isinstance(want, float):
        return math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12)
    return got == want


def build(vectors: dict, case: dict) -> tuple[FeatureView, SourceProcessor]:
    """The view of a vectors file (sliding, or tumbling with ``closed``) and its processor."""
    features = [
        Feature(f["name"], KINDS[f["agg"]](f["field"]), f["window_ms"], f["hop_ms"], f.get("closed", False))
        for f in vectors["features"]
    ]
    source = Source(
        "ref",
        {"event_id": "str", "time_ms": "int", "key": "str", "value": "float", "cat": "str"},
        key="key",
        time_field="time_ms",
        lateness=case["lateness_ms"],
    )
    view = FeatureView("ref", 1, source, "key", features)
    return view, SourceProcessor(source, [view])


def check_per_event(vectors: dict, case: dict) -> int:
    """Process a case's events in order and compare each one's served values with its
    ``per_event`` rows; returns how many values were compared."""
    view, processor = build(vectors, case)
    stores = Stores.in_memory([view])
    outcomes = {
        e["event_id"]: processor.process(stores, 0, e, e["time_ms"]) for e in case["events"]
    }
    checked = 0
    for name, rows in case["per_event"].items():
        for row in rows:
            outcome = outcomes[row["event_id"]]
            if row.get("late"):
                assert outcome.status == LATE, row
                continue
            assert outcome.status == APPLIED, row
            got = outcome.features["ref"][name]
            assert close(got, row["value"]), (name, row, got)
            checked += 1
    return checked


@pytest.mark.parametrize("case_name", ["in_order_with_ties", "out_of_order_and_late"])
def test_per_event_values_match_reference(window_vectors: dict, case_name: str) -> None:
    assert check_per_event(window_vectors, window_vectors["cases"][case_name]) > 1000


@pytest.mark.parametrize("case_name", ["in_order_with_ties", "out_of_order_and_late"])
def test_as_of_values_match_reference(window_vectors: dict, case_name: str) -> None:
    case = window_vectors["cases"][case_name]
    view, processor = build(window_vectors, case)
    stores = Stores.in_memory([view])
    applied = [
        (e, e["time_ms"])
        for e in case["events"]
        if processor.process(stores, 0, e, e["time_ms"]).status == APPLIED
    ]
    queries = [(q["key"], q["as_of_ms"]) for q in case["as_of"]]
    for query, got in zip(case["as_of"], as_of_values(view, applied, queries)):
        for name, want in query["values"].items():
            assert close(got[name], want), (query, name, got[name])


def test_out_of_order_case_really_has_late_events(window_vectors: dict) -> None:
    rows = window_vectors["cases"]["out_of_order_and_late"]["per_event"]["n_1h"]
    assert sum(1 for r in rows if r.get("late")) >= 3

"""Drift, pure parts: PSI against a hand computation and a numpy one on the
stored baseline's own bins, tumbling event-time windows, alert and recovery."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from models.baselines import categorical_baseline, numeric_baseline
from models.alerts import Alert
from models.drift import PSI_FLOOR, SCORE, AlertBook, DriftWindows, bins_of, model_bins, psi
import msgspec

H = 3_600_000


def test_psi_by_hand() -> None:
    # shares 0.5/0.5 vs 0.25/0.75: (0.25-0.5)ln(0.5) + (0.75-0.5)ln(1.5)
    expected = -0.25 * math.log(0.5) + 0.25 * math.log(1.5)
    assert psi(np.array([50.0, 50.0]), np.array([1.0, 3.0])) == pytest.approx(expected, rel=1e-12)
    assert psi(np.array([5.0, 5.0]), np.array([7.0, 7.0])) == 0.0
    # an empty bin is floored, not infinite
    floored = (PSI_FLOOR - 0.5) * math.log(PSI_FLOOR / 0.5) + (1 - 0.5) * math.log(1 / 0.5)
    assert psi(np.array([1.0, 1.0]), np.array([0.0, 4.0])) == pytest.approx(floored, rel=1e-9)


@pytest.mark.parametrize("shift", [0.0, 1.0, 2.0])
def test_numeric_psi_matches_numpy_on_the_baselines_bins(shift: float) -> None:
    rng = np.random.default_rng(1)
    train = pd.Series(rng.normal(0, 1, 5000))
    baseline = numeric_baseline(train, bins=10)
    live = rng.normal(shift, 1, 800)
    bins = bins_of(baseline)
    assert bins is not None
    counts = np.zeros(len(bins.expected))
    for x in [*live, None, float("nan")]:
        counts[bins.index(x)] += 1
    # numpy: the same edges, outer values clipped into the outer bins, two nulls in their own bin
    edges = np.array(baseline["edges"])
    oracle_actual = np.r_[np.histogram(np.clip(live, edges[0], edges[-1]), bins=edges)[0], 2]
    oracle_expected = np.r_[baseline["counts"], 0]
    e = np.maximum(oracle_expected / oracle_expected.sum(), PSI_FLOOR)
    a = np.maximum(oracle_actual / oracle_actual.sum(), PSI_FLOOR)
    assert psi(bins.expected, counts) == pytest.approx(float(np.sum((a - e) * np.log(a / e))), rel=1e-9)
    assert (psi(bins.expected, counts) > 0.2) == (shift >= 1.0)


def test_categorical_bins_top_levels_other_null() -> None:
    baseline = categorical_baseline(pd.Series(["a"] * 6 + ["b"] * 3 + ["c"] + [None]), top_k=2)
    bins = bins_of(baseline)
    assert bins is not None and list(bins.expected) == [6, 3, 1, 1]
    assert [bins.index(v) for v in ("a", "b", "c", "zz", None)] == [0, 1, 2, 2, 3]


def metadata() -> dict:
    rng = np.random.default_rng(2)
    return {
        "baselines": {"x": numeric_baseline(pd.Series(rng.normal(0, 1, 5000))),
                      "c": categorical_baseline(pd.Series(rng.choice(["a", "b"], 5000)))},
        "score_baseline": numeric_baseline(pd.Series(rng.uniform(0, 1, 5000))),
    }


def test_windows_close_by_event_time_and_alert_then_recover() -> None:
    bins = model_bins(metadata())
    assert set(bins) == {"x", "c", SCORE}
    windows = DriftWindows(bins, window_ms=H, lateness_ms=H // 2, min_count=50)
    book = AlertBook("m", 3, threshold=0.2)
    rng = np.random.default_rng(3)
    alerts: list[Alert] = []
    reports = []
    for hour, shift in enumerate([0.0, 0.0, 3.0, 3.0, 0.0, 0.0]):
        for i in range(200):
            t = hour * H + i * (H // 200)
            for report in windows.add(t, {"x": rng.normal(shift, 1), "c": rng.choice(["a", "b"]),
                                          SCORE: rng.uniform(0, 1)}):
                reports.append(report)
                alerts += book.judge(report, at="now")
    # a window closes only once the newest event is past its end plus the lateness: not the last one
    assert [r.start_ms // H for r in reports] == [0, 1, 2, 3, 4]
    assert [r.events for r in reports] == [200] * 5
    assert all(r.psi["x"] > 1 for r in reports[2:4]) and all(r.psi["x"] < 0.2 for r in reports[:2] + reports[4:])
    assert [(a.where["feature"], a.recovered, a.since) for a in alerts] == [
        ("x", False, "1970-01-01T02:00:00.000+00:00"), ("x", True, "1970-01-01T02:00:00.000+00:00")]
    raised, recovery = alerts
    assert raised.window_start == raised.since and raised.value > 1 and raised.threshold == 0.2
    assert recovery.window_start == "1970-01-01T04:00:00.000+00:00" and recovery.value <= 0.2
    assert msgspec.json.decode(msgspec.json.encode(recovery), type=Alert) == recovery
    assert raised.series == recovery.series == "drift:m:3:x" and raised.where == {"model": "m", "version": "3", "feature": "x"}
    assert book.alerting("x") is False
    # a prediction for a window already closed is counted, not added
    assert windows.add(0, {"x": 0.0}) == [] and windows.late == 1


def test_small_windows_are_not_judged() -> None:
    windows = DriftWindows(model_bins(metadata()), window_ms=H, lateness_ms=0, min_count=50)
    reports = windows.add(0, {"x": 100.0}) + windows.add(H, {"x": 0.0})
    assert len(reports) == 1 and reports[0].psi == {} and reports[0].events == 1

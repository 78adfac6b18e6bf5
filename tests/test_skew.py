"""The skew comparison and its alerts, without a broker: exact values and
types (NaN equals NaN), an event the replay did not apply, a feature the
offline definitions lack; one alert per differing feature naming its first
event, a recovery once an audit compares the feature and finds it equal."""
from __future__ import annotations

from models.alerts import AlertLedger
from models.skew import FEATURE_LOG, NOT_APPLIED, PREDICTION, SkewReport, judge, same


def test_same_is_exact() -> None:
    assert same(1.5, 1.5) and same(float("nan"), float("nan")) and same([1.0, None], [1.0, None])
    assert not same(1, 1.0) and not same(None, 0) and not same(2.0, 2.0000000001)


def test_mismatches_are_counted_per_record_and_alerted_per_feature() -> None:
    report = SkewReport("departures")
    row = {"v.a": 1.0, "v.b": 3, "event_id": "e1"}
    report.compare(FEATURE_LOG, "e1", 0, 10, {("v", "a"): 1.0, ("v", "b"): 3}, row)
    report.compare(FEATURE_LOG, "e2", 0, 11, {("v", "a"): 1.0, ("v", "b"): 4}, row)
    report.compare(PREDICTION, "e2", 0, 11, {("v", "b"): 4, ("w", "c"): 0}, row)
    report.compare(FEATURE_LOG, "e3", 1, 5, {("v", "a"): 1.0}, None)
    assert report.checked == {FEATURE_LOG: 3, PREDICTION: 1} and report.mismatched == {FEATURE_LOG: 2, PREDICTION: 1}
    assert report.rate == 3 / 4
    assert [(m.view, m.feature, m.online, m.offline) for m in report.mismatches] == [
        ("v", "b", 4, 3), ("v", "b", 4, 3), ("w", "c", 0, "(not defined)"), (*NOT_APPLIED, True, False)]

    ledger = AlertLedger()
    alerts = judge(report, ledger, "t1", "audit")
    assert [(a.series, a.value, a.where["event"], a.recovered) for a in alerts] == [
        ("skew:departures:(event):applied", 1.0, "e3 (departures:1:5)", False),
        ("skew:departures:v:b", 2.0, "e2 (departures:0:11)", False),
        ("skew:departures:w:c", 1.0, "e2 (departures:0:11)", False)]
    assert "online 4, offline 3" in alerts[1].detail and alerts[1].window_events == 4
    assert judge(report, ledger, "t2", "audit") == []  # still skewed: nothing new

    clean = SkewReport("departures")
    clean.compare(FEATURE_LOG, "e4", 0, 12, {("v", "b"): 3}, row)  # w.c not compared: its alert stays
    recoveries = judge(clean, ledger, "t3", "audit")
    assert [(a.series, a.since, a.recovered) for a in recoveries] == [
        ("skew:departures:(event):applied", "t1", True), ("skew:departures:v:b", "t1", True)]
    assert ledger.active("skew:departures:w:c") and not ledger.active("skew:departures:v:b")

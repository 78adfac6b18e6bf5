"""Drift, pure: the population stability index of each model input and of the
score, per tumbling event-time window, against the baseline stored with the
model version (``models.baselines``), and the alert / recovery records it
raises.  No Faust, no Kafka: ``agents.quality_monitor`` feeds it predictions.

Bins are the baseline's own: a numeric input's training-quantile bins
``[e_i, e_i+1)`` (the last closed; values outside the edges fall in the outer
bins), a categorical input's top levels plus "other"; both plus one bin for
nulls (and non-finite numbers).  PSI = sum over bins of
``(a - e) * ln(a / e)`` with a and e the window's and the baseline's shares,
each floored at ``PSI_FLOOR`` so that an empty bin counts as rare, not as
infinitely surprising.
"""
from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from models.alerts import Alert, AlertLedger, iso
from models.quality import Watermark

PSI_FLOOR = 1e-4
SCORE = "score"  # the drift "feature" name of the model's score (p1)
NULL = "null"
OTHER = "other"


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """PSI of two count vectors over the same bins."""
    e = np.maximum(expected / max(expected.sum(), 1), PSI_FLOOR)
    a = np.maximum(actual / max(actual.sum(), 1), PSI_FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


class Bins(Protocol):
    expected: np.ndarray  # the baseline's counts per bin, the null bin last

    def index(self, value: Any) -> int: ...


@dataclass(frozen=True)
class NumericBins:
    edges: list[float]
    expected: np.ndarray

    def index(self, value: Any) -> int:
        null = len(self.expected) - 1
        if value is None or isinstance(value, (str, bool)):
            return null
        x = float(value)
        if not math.isfinite(x):
            return null
        inner = len(self.edges) - 2  # the last numeric bin
        return min(max(bisect_right(self.edges, x) - 1, 0), inner)


@dataclass(frozen=True)
class CategoricalBins:
    levels: dict[str, int]
    expected: np.ndarray  # top levels, other, null

    def index(self, value: Any) -> int:
        if value is None:
            return len(self.expected) - 1
        return self.levels.get(str(value), len(self.expected) - 2)


def bins_of(baseline: dict[str, Any]) -> Bins | None:
    """The bins of one stored baseline; None when it has none to compare with (an all-null column)."""
    nulls = int(baseline.get("null_count", 0)) + int(baseline.get("nonfinite_count", 0) or 0)
    if baseline.get("type") == "numeric":
        edges, counts = baseline.get("edges") or [], baseline.get("counts") or []
        if not counts:
            return None
        return NumericBins([float(e) for e in edges], np.array([*counts, nulls], dtype=float))
    if baseline.get("type") == "categorical":
        top = baseline.get("top_levels") or []
        levels = {str(level["value"]): i for i, level in enumerate(top)}
        counts = [int(level["count"]) for level in top] + [int(baseline.get("other_count", 0)), nulls]
        return CategoricalBins(levels, np.array(counts, dtype=float))
    return None


def model_bins(metadata: dict[str, Any]) -> dict[str, Bins]:
    """Feature -> bins for every input with a baseline, and the score's (``score_baseline``) if stored."""
    out: dict[str, Bins] = {}
    for feature, baseline in (metadata.get("baselines") or {}).items():
        found = bins_of(baseline)
        if found is not None:
            out[feature] = found
    score = metadata.get("score_baseline")
    if score:
        found = bins_of(score)
        if found is not None:
            out[SCORE] = found
    return out


@dataclass(frozen=True)
class WindowReport:
    start_ms: int
    end_ms: int
    events: int
    psi: dict[str, float]  # feature -> PSI; empty when the window had fewer than min_count events


@dataclass
class DriftWindows:
    """Tumbling windows of one model version's scored events, by event time.

    A window ``[start, start + window_ms)`` closes when the event time the
    predictions have reached (``models.quality.Watermark``: over the partitions
    read) is past its end plus ``lateness_ms`` (the scored source's allowed
    lateness: events later than that are not scored anyway); a prediction for
    a closed window is counted in ``late`` and left out."""

    bins: dict[str, Bins]
    window_ms: int
    lateness_ms: int
    min_count: int
    open: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)  # start -> feature -> counts
    sizes: dict[int, int] = field(default_factory=dict)
    watermark: Watermark = field(default_factory=Watermark)  # per partition of the predictions read
    closed_before: int | None = None  # windows starting before this are closed
    late: int = 0

    def add(self, time_ms: int, values: dict[str, Any], lane: int = 0) -> list[WindowReport]:
        start = time_ms - time_ms % self.window_ms
        if self.closed_before is not None and start < self.closed_before:
            self.late += 1
            return []
        counts = self.open.get(start)
        if counts is None:
            counts = self.open[start] = {f: np.zeros(len(b.expected)) for f, b in self.bins.items()}
            self.sizes[start] = 0
        for feature, feature_bins in self.bins.items():
            counts[feature][feature_bins.index(values.get(feature))] += 1
        self.sizes[start] += 1
        self.watermark.see(lane, time_ms)
        return self._close()

    def _close(self) -> list[WindowReport]:
        reports = []
        watermark = self.watermark.value
        assert watermark is not None
        for start in sorted(self.open):
            end = start + self.window_ms
            if end + self.lateness_ms > watermark:
                break
            counts, size = self.open.pop(start), self.sizes.pop(start)
            self.closed_before = end
            values = ({f: psi(self.bins[f].expected, c) for f, c in counts.items()}
                      if size >= self.min_count else {})
            reports.append(WindowReport(start, end, size, values))
        return reports


@dataclass
class AlertBook:
    """Which (feature) of one model version is in alert, since when: one alert when PSI
    goes over the threshold, one recovery when a later window is back at or under it."""

    model: str
    version: int
    threshold: float
    ledger: AlertLedger = field(default_factory=AlertLedger)  # series -> start of its first window over

    def series(self, feature: str) -> str:
        return f"drift:{self.model}:{self.version}:{feature}"

    def alerting(self, feature: str) -> bool:
        return self.ledger.active(self.series(feature))

    def judge(self, report: WindowReport, at: str, worker: str = "") -> list[Alert]:
        out = []
        for feature, value in sorted(report.psi.items()):
            over = value > self.threshold
            series = self.series(feature)
            changed = self.ledger.judge(series, over, iso(report.start_ms))
            if changed is None:
                continue
            since, recovered = changed
            out.append(Alert(
                kind="drift", metric="psi", series=series,
                where={"model": self.model, "version": str(self.version), "feature": feature},
                value=round(value, 6), threshold=self.threshold, since=since, recovered=recovered, at=at,
                worker=worker, detail=f"PSI {value:.4f} of {report.events} scored events against the "
                f"training baseline of {self.model} v{self.version}",
                window_start=iso(report.start_ms), window_end=iso(report.end_ms), window_events=report.events,
            ))
        return out

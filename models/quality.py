"""Live model quality, pure: labels joined with the predictions they are the
outcome of, and rolling AUC, log loss, accuracy and calibration per model
version and role.  No Faust, no Kafka: ``agents.quality_monitor`` feeds it
records and reads its figures.

The join (``LabelJoin``) applies ``tables.labels.verdict`` to event times
only and holds either side until the other can no longer come, so the pairs
it makes do not depend on how the broker interleaved the two topics:

- a prediction waits for its label until the label stream's event time (the
  least over its partitions of each one's newest, less the label source's
  allowed lateness) is past the
  prediction's time plus the horizon; then it is ``expired`` (unlabelled);
- a label waits for predictions until the scored stream's event time (less
  its lateness) is past the label's time: a prediction for an event after
  the label cannot take it (``early``), and one before it is already here
  (later ones are dropped by ingest as late, so never scored);
- a label serves every model, version and role that scored its event; each
  prediction takes the first label that matches it (one per event: a
  duplicate prediction, as at-least-once delivery can resend, is ignored).

Rolling window (``RollingQuality``): the pairs whose label time is within
``window_ms`` of the newest label time seen (event time, not wall time).
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tables.labels import EXPIRED, MATCHED, POSITIVE, verdict

Series = tuple[str, int, str]  # (model, version, role)
EPS = 1e-15  # log loss clips probabilities to [EPS, 1 - EPS], as sklearn's default did
ECE_BINS = 10


@dataclass(frozen=True)
class Scored:
    """One prediction, as quality needs it."""

    model: str
    version: int
    role: str
    event_id: str
    key: str  # the join key's value as text
    time_ms: int  # the scored event's time
    p1: float  # probability of the positive class
    predicted: str | None  # the class the model decided (its own threshold)

    @property
    def series(self) -> Series:
        return (self.model, self.version, self.role)


def scored_of(data: dict[str, Any]) -> Scored | None:
    """A prediction record (``fs.predictions`` or its shadow topic) as quality needs it; None when it
    has no class probabilities.  Raises ``KeyError``, ``ValueError`` or ``TypeError`` on a malformed one."""
    if not data.get("probabilities") or not data.get("labels"):
        return None
    key = data.get("join_key")
    return Scored(str(data["model"]), int(data["model_version"]), str(data["role"]), str(data["event_id"]),
                  "" if key is None else str(key), int(data["event_time_ms"]),
                  float(data["probabilities"][data["labels"].index(POSITIVE)]), data.get("label"))


@dataclass(frozen=True)
class Pair:
    prediction: Scored
    label: str
    label_time_ms: int

    @property
    def y(self) -> int:
        return 1 if self.label == POSITIVE else 0


@dataclass
class Watermark:
    """Event time a stream has reached: the least, over the partitions seen, of each one's newest time.

    The newest time over all partitions would run ahead of a partition read
    later than the others (a consumer drains partitions unevenly), and drop
    what that partition still needs."""

    newest: dict[int, int] = field(default_factory=dict)

    def see(self, lane: int, time_ms: int) -> None:
        if time_ms > self.newest.get(lane, time_ms - 1):
            self.newest[lane] = time_ms

    @property
    def value(self) -> int | None:
        return min(self.newest.values()) if self.newest else None


@dataclass
class LabelJoin:
    horizon_ms: int
    scored_lateness_ms: int
    label_lateness_ms: int
    pending: dict[str, list[Scored]] = field(default_factory=dict)  # key -> predictions without a label yet
    labels: dict[str, list[tuple[int, str]]] = field(default_factory=dict)  # key -> (time, value) kept for late-read predictions
    done: dict[tuple[Series, str], int] = field(default_factory=dict)  # predictions seen -> their time (duplicates)
    scored_watermark: Watermark = field(default_factory=Watermark)
    label_progress: Watermark = field(default_factory=Watermark)
    label_watermark: int | None = None  # the newest label time seen (the rolling window's end)
    counts: Counter[tuple[Series, str]] = field(default_factory=Counter)  # (series, matched|early|expired)
    unmatched_labels: int = 0  # join keys whose labels met no prediction at all (evicted unused)
    matched_keys: set[str] = field(default_factory=set)  # keys with a buffered label that made a pair

    def prediction(self, scored: Scored, lane: int = 0) -> list[Pair]:
        """``lane``: the partition the prediction was read from (watermarks are per partition)."""
        ident = (scored.series, scored.event_id)
        if ident in self.done:
            return []
        self.done[ident] = scored.time_ms
        self.scored_watermark.see(lane, scored.time_ms)
        for label_time, value in self.labels.get(scored.key, ()):
            if self._judge(scored, label_time):
                self.matched_keys.add(scored.key)
                return [Pair(scored, value, label_time)]
        self.pending.setdefault(scored.key, []).append(scored)
        return []

    def label(self, key: str, value: str, time_ms: int, lane: int = 0) -> list[Pair]:
        self.label_watermark = max(time_ms, self.label_watermark or time_ms)
        self.label_progress.see(lane, time_ms)
        self.labels.setdefault(key, []).append((time_ms, value))
        waiting = self.pending.get(key)
        if not waiting:
            return []
        pairs, left = [], []
        for scored in waiting:
            if self._judge(scored, time_ms):
                pairs.append(Pair(scored, value, time_ms))
            else:
                left.append(scored)
        if pairs:
            self.matched_keys.add(key)
        if left:
            self.pending[key] = left
        else:
            del self.pending[key]
        return pairs

    def _judge(self, scored: Scored, label_time: int) -> bool:
        outcome = verdict(scored.time_ms, label_time, self.horizon_ms)
        if outcome == EXPIRED:
            # A label past the horizon says the prediction will never get one: it stays pending
            # until the watermark expires it (counted once, there), as a replay would.
            return False
        self.counts[(scored.series, outcome)] += 1
        return outcome == MATCHED

    def expire(self) -> None:
        """Drop what can no longer be joined (call once per batch of records, not per record)."""
        label_progress = self.label_progress.value
        if label_progress is not None:
            label_cut = label_progress - self.label_lateness_ms - self.horizon_ms
            for key in list(self.pending):
                kept = [s for s in self.pending[key] if s.time_ms >= label_cut]
                for scored in self.pending[key]:
                    if scored.time_ms < label_cut:
                        self.counts[(scored.series, EXPIRED)] += 1
                if kept:
                    self.pending[key] = kept
                else:
                    del self.pending[key]
            self.done = {ident: t for ident, t in self.done.items() if t >= label_cut}
        scored_progress = self.scored_watermark.value
        if scored_progress is not None:
            scored_cut = scored_progress - self.scored_lateness_ms
            for key in list(self.labels):
                kept_labels = [(t, v) for t, v in self.labels[key] if t >= scored_cut]
                if kept_labels:
                    self.labels[key] = kept_labels
                    continue
                del self.labels[key]
                if key in self.matched_keys:
                    self.matched_keys.discard(key)
                else:
                    self.unmatched_labels += 1


@dataclass(frozen=True)
class QualityFigures:
    count: int
    positives: int
    auc: float | None  # None with one class only
    log_loss: float
    accuracy: float | None  # None when the model decides no class (a regression)
    ece: float  # expected calibration error over ECE_BINS equal-width bins of p1
    mean_predicted: float
    observed_rate: float


def roc_auc(p1: np.ndarray, y: np.ndarray) -> float | None:
    """Area under the ROC curve by the trapezoid over its points, tied scores one point."""
    positives = int(y.sum())
    negatives = len(y) - positives
    if positives == 0 or negatives == 0:
        return None
    order = np.argsort(-p1, kind="mergesort")
    scores, labels = p1[order], y[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(scores)), len(scores) - 1]
    tp = np.cumsum(labels)[last_of_tie]
    fp = (last_of_tie + 1) - tp
    tpr = np.r_[0.0, tp / positives]
    fpr = np.r_[0.0, fp / negatives]
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def figures(pairs: list[Pair]) -> QualityFigures | None:
    if not pairs:
        return None
    p1 = np.array([pair.prediction.p1 for pair in pairs], dtype=float)
    y = np.array([pair.y for pair in pairs], dtype=float)
    clipped = np.clip(p1, EPS, 1 - EPS)
    log_loss = float(-np.mean(y * np.log(clipped) + (1 - y) * np.log(1 - clipped)))
    decided = [pair for pair in pairs if pair.prediction.predicted is not None]
    accuracy = (sum(pair.prediction.predicted == pair.label for pair in decided) / len(decided)) if decided else None
    bins = np.minimum((p1 * ECE_BINS).astype(int), ECE_BINS - 1)
    ece = 0.0
    for b in np.unique(bins):
        inside = bins == b
        ece += abs(float(p1[inside].mean()) - float(y[inside].mean())) * int(inside.sum()) / len(pairs)
    return QualityFigures(
        count=len(pairs), positives=int(y.sum()), auc=roc_auc(p1, y), log_loss=log_loss, accuracy=accuracy,
        ece=ece, mean_predicted=float(p1.mean()), observed_rate=float(y.mean()),
    )


@dataclass
class RollingQuality:
    """Pairs per series within ``window_ms`` (by label event time) of the newest label time seen."""

    window_ms: int
    pairs: dict[Series, list[Pair]] = field(default_factory=dict)
    newest_ms: int | None = None

    def add(self, pair: Pair, newest_label_ms: int) -> None:
        self.newest_ms = max(newest_label_ms, self.newest_ms or newest_label_ms)
        if pair.label_time_ms > self.newest_ms - self.window_ms:
            self.pairs.setdefault(pair.prediction.series, []).append(pair)

    def current(self) -> dict[Series, QualityFigures]:
        """Figures per series over the window as it stands (pairs that left it are dropped here)."""
        out: dict[Series, QualityFigures] = {}
        if self.newest_ms is None:
            return out
        cut = self.newest_ms - self.window_ms
        for series in list(self.pairs):
            kept = [pair for pair in self.pairs[series] if pair.label_time_ms > cut]
            self.pairs[series] = kept
            found = figures(kept)
            if found is not None:
                out[series] = found
        return out


def finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)

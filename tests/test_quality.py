"""Live quality, pure parts: the label join's event-time rule and the rolling
figures, checked against independent computations (pairwise AUC, a plain log
loss, a per-bin ECE) on the same data."""
from __future__ import annotations

import math
import random

import numpy as np
import pytest

from models.quality import LabelJoin, Pair, RollingQuality, Scored, figures, roc_auc
from tables.labels import EARLY, EXPIRED, MATCHED, label_of, verdict
from tables.flights import MODELS

H = 3_600_000
SPEC = MODELS[0]


def pairwise_auc(p: np.ndarray, y: np.ndarray) -> float:
    """The probability that a positive outscores a negative, ties half: the AUC's definition."""
    pos, neg = p[y == 1], p[y == 0]
    diff = pos[:, None] - neg[None, :]
    return float(((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size)


def plain_log_loss(p: list[float], y: list[int]) -> float:
    total = 0.0
    for pi, yi in zip(p, y):
        pi = min(max(pi, 1e-15), 1 - 1e-15)
        total -= math.log(pi) if yi == 1 else math.log(1 - pi)
    return total / len(p)


def plain_ece(p: list[float], y: list[int], bins: int = 10) -> float:
    groups: dict[int, list[tuple[float, int]]] = {}
    for pi, yi in zip(p, y):
        groups.setdefault(min(int(pi * bins), bins - 1), []).append((pi, yi))
    return sum(abs(sum(a for a, _ in g) / len(g) - sum(b for _, b in g) / len(g)) * len(g) / len(p)
               for g in groups.values())


def scored(i: int, p1: float, time_ms: int, role: str = "primary", key: str | None = None) -> Scored:
    return Scored("m", 1, role, f"e{i}", key or f"k{i}", time_ms, p1, "1" if p1 >= 0.5 else "0")


def test_label_rule_is_the_training_sets() -> None:
    assert label_of(SPEC, {"flight_id": 7, "arr_delayed_15": 1}).__dict__ == {"key": "7", "value": "1"}
    assert label_of(SPEC, {"flight_id": "7", "arr_delayed_15": 0.0}).value == "0"
    assert label_of(SPEC, {"flight_id": "7", "arr_delayed_15": True}).value == "1"
    assert label_of(SPEC, {"flight_id": "7", "arr_delayed_15": None}) is None
    assert label_of(SPEC, {"flight_id": "7", "arr_delayed_15": float("nan")}) is None
    assert label_of(SPEC, {"arr_delayed_15": 1}) is None


def test_verdict_by_event_time() -> None:
    assert verdict(1000, 1000, H) == MATCHED
    assert verdict(1000, 1000 + H, H) == MATCHED
    assert verdict(1000, 999, H) == EARLY
    assert verdict(1000, 1001 + H, H) == EXPIRED


@pytest.mark.parametrize("seed", range(5))
def test_auc_log_loss_accuracy_ece_match_independent_computations(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 400
    p = np.round(rng.uniform(0, 1, n), 2)  # rounded: many ties, which AUC must score as half
    p[:3] = [0.0, 1.0, 1e-18]
    y = (rng.uniform(0, 1, n) < p).astype(int)
    pairs = [Pair(scored(i, float(p[i]), 0), str(y[i]), 0) for i in range(n)]
    got = figures(pairs)
    assert got is not None and got.count == n and got.positives == int(y.sum())
    assert got.auc == pytest.approx(pairwise_auc(p, y), abs=1e-12)
    assert got.log_loss == pytest.approx(plain_log_loss(list(p), list(y)), rel=1e-12)
    assert got.accuracy == pytest.approx(float(np.mean((p >= 0.5).astype(int) == y)))
    assert got.ece == pytest.approx(plain_ece(list(p), list(y)), abs=1e-12)
    assert got.mean_predicted == pytest.approx(float(p.mean()))
    assert got.observed_rate == pytest.approx(float(y.mean()))


def test_auc_undefined_with_one_class() -> None:
    assert roc_auc(np.array([0.2, 0.9]), np.array([1.0, 1.0])) is None


def events(n: int, seed: int) -> tuple[list[Scored], list[tuple[str, str, int]]]:
    rng = random.Random(seed)
    predictions, labels = [], []
    for i in range(n):
        t = i * 60_000
        p = round(rng.random(), 3)
        predictions.append(scored(i, p, t))
        predictions.append(scored(i, 1 - p, t, role="shadow"))
        delay = rng.choice([30 * 60_000, 5 * H, -60_000, 30 * H])  # in time, in time, early, past the horizon
        labels.append((f"k{i}", str(int(rng.random() < p)), t + delay))
    return predictions, labels


def expected_pairs(predictions: list[Scored], labels: list[tuple[str, str, int]], horizon: int) -> set:
    by_key = {key: (value, t) for key, value, t in labels}
    return {(s.series, s.event_id, by_key[s.key][0]) for s in predictions
            if s.key in by_key and verdict(s.time_ms, by_key[s.key][1], horizon) == MATCHED}


@pytest.mark.parametrize("seed", range(4))
def test_join_does_not_depend_on_how_the_topics_interleave(seed: int) -> None:
    predictions, labels = events(300, seed)
    expected = expected_pairs(predictions, labels, 24 * H)
    # Each topic in its own order (as partitions are), the two interleaved at random, duplicates resent.
    rng = random.Random(seed)
    stream: list[tuple[str, object]] = [("p", s) for s in predictions] + [("p", predictions[5])]
    label_stream = sorted(labels, key=lambda label: label[2])
    merged, i, j = [], 0, 0
    while i < len(stream) or j < len(label_stream):
        if j == len(label_stream) or (i < len(stream) and rng.random() < 0.5):
            merged.append(stream[i]); i += 1
        else:
            merged.append(("l", label_stream[j])); j += 1
    join = LabelJoin(horizon_ms=24 * H, scored_lateness_ms=H, label_lateness_ms=H)
    got = set()
    for n, (kind, item) in enumerate(merged):
        pairs = join.prediction(item) if kind == "p" else join.label(*item)  # type: ignore[arg-type]
        got |= {(p.prediction.series, p.prediction.event_id, p.label) for p in pairs}
        if n % 50 == 0:
            join.expire()
    assert got == expected
    assert len(expected) > 100
    early = sum(n for (series, outcome), n in join.counts.items() if outcome == EARLY)
    assert early > 0 and join.counts[(("m", 1, "primary"), MATCHED)] == len(expected) // 2


def test_unlabelled_predictions_expire_by_event_time_and_are_counted() -> None:
    join = LabelJoin(horizon_ms=2 * H, scored_lateness_ms=H, label_lateness_ms=H)
    join.prediction(scored(1, 0.3, 0))
    join.label("other", "1", 2 * H + H)  # the label watermark is at the horizon plus lateness: not yet
    join.expire()
    assert join.pending
    join.label("other", "1", 3 * H + 1)
    join.expire()
    assert not join.pending and join.counts[(("m", 1, "primary"), EXPIRED)] == 1
    # the label that came too late for its prediction is not a pair either
    assert join.label("k1", "1", 3 * H + 2) == []


def test_rolling_window_by_label_event_time() -> None:
    rolling = RollingQuality(window_ms=10 * H)
    for i in range(20):
        rolling.add(Pair(scored(i, 0.9 if i % 2 else 0.1, i * H), str(i % 2), i * H), i * H)
    figures_now = rolling.current()[("m", 1, "primary")]
    assert figures_now.count == 10  # label times 10h..19h: within 10 h of the newest (19 h)
    assert figures_now.auc == 1.0
    rolling.add(Pair(scored(99, 0.5, 0), "1", 5 * H), 30 * H)  # older than the window: not counted
    assert ("m", 1, "primary") not in rolling.current()


def test_a_partition_read_late_keeps_its_labels() -> None:
    """Partition 1's predictions are read after partition 0 ran a day ahead: its labels must still be there."""
    join = LabelJoin(horizon_ms=24 * H, scored_lateness_ms=H, label_lateness_ms=H)
    join.prediction(scored(0, 0.2, 0), lane=1)
    assert join.label("k5", "1", 5 * H + 60_000) == []  # the label of a prediction partition 1 has not given yet
    join.prediction(scored(1, 0.3, 30 * H), lane=0)
    join.expire()
    pairs = join.prediction(scored(5, 0.8, 5 * H), lane=1)
    assert [(p.prediction.event_id, p.label) for p in pairs] == [("e5", "1")]

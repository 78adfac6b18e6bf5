"""Champion against challenger, pure: live quality of the two on the same
labelled events, and the rule that promotes or retires the challenger.

The champion is the primary version, the challenger the shadow version: both
score every event of the model's source while the shadow is deployed, so the
comparison is head to head, on the events both scored and whose label came
(the champion's predictions from before the challenger was deployed are left
out: other events, other difficulty).  Pairs are made by
``models.quality.LabelJoin``, the join the live monitor uses, so a label
counts here exactly when it counts on ``/metrics``."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from models.quality import LabelJoin, Pair, QualityFigures, Scored, Series, figures
from tables.labels import Label

PROMOTE, RETIRE, WAIT = "promote", "retire", "wait"
METRICS = ("auc", "log_loss")  # auc: higher is better; log_loss: lower is better


class RuleError(ValueError):
    """A rule that cannot be applied (unknown metric, negative count); shown as is."""


@dataclass(frozen=True)
class ChallengeRule:
    metric: str = "auc"
    margin: float = 0.005  # the challenger must be better than the champion by more than this
    min_labelled: int = 500  # labelled events both scored, before anything is decided

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise RuleError(f"metric {self.metric!r} is not one of {', '.join(METRICS)}")
        if self.min_labelled < 1:
            raise RuleError(f"the minimum of labelled events must be at least 1, not {self.min_labelled}")


@dataclass(frozen=True)
class Verdict:
    outcome: str  # PROMOTE, RETIRE or WAIT
    reason: str
    labelled: int  # events both versions scored that have a label
    champion: QualityFigures | None
    challenger: QualityFigures | None

    def values(self, metric: str) -> tuple[float | None, float | None]:
        """(champion, challenger) on ``metric``; None where there are no figures."""
        return tuple(None if found is None else getattr(found, metric)  # type: ignore[return-value]
                     for found in (self.champion, self.challenger))


@dataclass(frozen=True)
class TimedLabel:
    label: Label
    time_ms: int
    lane: int = 0


def labelled_pairs(join: LabelJoin, predictions: Iterable[tuple[Scored, int]],
                   labels: Iterable[TimedLabel]) -> list[Pair]:
    """Every pair the join makes from whole logs: predictions (with their lane) first, then the labels
    in log order; a prediction takes the first label that matches it, as in the monitor."""
    pairs = [pair for scored, lane in predictions for pair in join.prediction(scored, lane)]
    for timed in labels:
        pairs += join.label(timed.label.key, timed.label.value, timed.time_ms, timed.lane)
    return pairs


def head_to_head(pairs: Iterable[Pair], champion: Series, challenger: Series) -> tuple[list[Pair], list[Pair]]:
    """The two series' pairs, only for the events both scored, in the same event order."""
    by_series: dict[Series, dict[str, Pair]] = {champion: {}, challenger: {}}
    for pair in pairs:
        found = by_series.get(pair.prediction.series)
        if found is not None:
            found.setdefault(pair.prediction.event_id, pair)
    common = sorted(by_series[champion].keys() & by_series[challenger].keys())
    return [by_series[champion][e] for e in common], [by_series[challenger][e] for e in common]


def judge(champion: list[Pair], challenger: list[Pair], rule: ChallengeRule) -> Verdict:
    """Promote when the challenger beats the champion by more than the margin on the metric, over at
    least ``min_labelled`` events both scored; retire otherwise; wait while there are fewer."""
    ours, theirs = figures(champion), figures(challenger)
    labelled = len(champion)
    if labelled < rule.min_labelled or ours is None or theirs is None:
        return Verdict(WAIT, f"{labelled} labelled events scored by both, fewer than {rule.min_labelled}",
                       labelled, ours, theirs)
    old, new = getattr(ours, rule.metric), getattr(theirs, rule.metric)
    if old is None or new is None:
        return Verdict(WAIT, f"{rule.metric} is undefined on these events (one class only)", labelled, ours, theirs)
    gain = new - old if rule.metric == "auc" else old - new
    text = (f"challenger {rule.metric} {new:.4f} vs champion {old:.4f} on {labelled} labelled events: "
            f"better by {gain:+.4f}, margin {rule.margin}")
    return Verdict(PROMOTE if gain > rule.margin else RETIRE, text, labelled, ours, theirs)

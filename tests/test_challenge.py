"""Champion and challenger, pure parts: the head-to-head pairs and the rule
(models.challenge), the promote command (agents.scoring.desired_state) and the
audit record; the figures are checked against a pairwise AUC computed here."""
from __future__ import annotations

import msgspec
import numpy as np
import pytest

from agents.control_records import ModelDeployment, RetrainAudit, decode_audit, encode
from agents.scoring import CommandError, desired_state
from models.challenge import (
    PROMOTE, RETIRE, WAIT, ChallengeRule, RuleError, TimedLabel, head_to_head, judge, labelled_pairs,
)
from models.quality import LabelJoin, Pair, Scored, scored_of
from tables.labels import Label

H = 3_600_000
CHAMPION, CHALLENGER = ("m", 1, "primary"), ("m", 2, "shadow")


def pairwise_auc(p: list[float], y: list[int]) -> float:
    pa, ya = np.array(p), np.array(y)
    diff = pa[ya == 1][:, None] - pa[ya == 0][None, :]
    return float(((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size)


def pair(series: tuple[str, int, str], i: int, p1: float, label: str) -> Pair:
    model, version, role = series
    return Pair(Scored(model, version, role, f"e{i}", f"k{i}", i * 1000, p1, None), label, i * 1000 + 10)


def duel(good: float, bad: float, n: int = 40) -> tuple[list[Pair], list[Pair], list[int]]:
    """n events; the champion ranks them with noise ``bad``, the challenger with noise ``good``."""
    rng = np.random.default_rng(7)
    y = [i % 2 for i in range(n)]
    champion = [pair(CHAMPION, i, float(np.clip(0.3 + 0.4 * y[i] + rng.normal(0, bad), 0, 1)), str(y[i]))
                for i in range(n)]
    challenger = [pair(CHALLENGER, i, float(np.clip(0.3 + 0.4 * y[i] + rng.normal(0, good), 0, 1)), str(y[i]))
                  for i in range(n)]
    return champion, challenger, y


def test_promotes_when_the_challenger_beats_the_champion_by_more_than_the_margin() -> None:
    champion, challenger, y = duel(good=0.1, bad=0.5)
    ours = pairwise_auc([p.prediction.p1 for p in champion], y)
    theirs = pairwise_auc([p.prediction.p1 for p in challenger], y)
    assert theirs - ours > 0.05
    verdict = judge(champion, challenger, ChallengeRule("auc", margin=0.05, min_labelled=40))
    assert verdict.outcome == PROMOTE and verdict.labelled == 40
    assert verdict.values("auc") == pytest.approx((ours, theirs), abs=1e-12)
    # the same gain short of a larger margin, or exactly at it, is not enough
    assert judge(champion, challenger, ChallengeRule("auc", margin=theirs - ours + 0.01, min_labelled=40)).outcome == RETIRE
    assert judge(champion, challenger, ChallengeRule("auc", margin=theirs - ours, min_labelled=40)).outcome == RETIRE
    # the other way round, the champion keeps its place
    assert judge(challenger, champion, ChallengeRule("auc", margin=0.0, min_labelled=40)).outcome == RETIRE


def test_log_loss_lower_is_better() -> None:
    champion, challenger, _ = duel(good=0.05, bad=0.4)
    ours, theirs = judge(champion, challenger, ChallengeRule("log_loss", 0.0, 1)).values("log_loss")
    assert ours is not None and theirs is not None and theirs < ours
    assert judge(champion, challenger, ChallengeRule("log_loss", 0.0, 1)).outcome == PROMOTE
    assert judge(champion, challenger, ChallengeRule("log_loss", ours - theirs + 1e-9, 1)).outcome == RETIRE


def test_waits_for_enough_labelled_events_and_for_both_classes() -> None:
    champion, challenger, _ = duel(good=0.1, bad=0.5)
    verdict = judge(champion, challenger, ChallengeRule("auc", 0.0, min_labelled=41))
    assert verdict.outcome == WAIT and "40 labelled events" in verdict.reason
    positives = [p for p in champion if p.label == "1"], [p for p in challenger if p.label == "1"]
    assert judge(*positives, ChallengeRule("auc", 0.0, 1)).outcome == WAIT
    assert judge([], [], ChallengeRule()).outcome == WAIT


def test_rule_refuses_what_it_cannot_apply() -> None:
    with pytest.raises(RuleError, match="accuracy"):
        ChallengeRule("accuracy")
    with pytest.raises(RuleError):
        ChallengeRule("auc", 0.0, 0)


def test_head_to_head_keeps_only_the_events_both_scored() -> None:
    champion, challenger, _ = duel(good=0.1, bad=0.5)
    earlier = [pair(CHAMPION, 100 + i, 0.9, "0") for i in range(5)]  # scored before the challenger came
    other = [pair(("m", 3, "shadow"), i, 0.5, "1") for i in range(3)]  # another version: not in this duel
    ours, theirs = head_to_head(earlier + champion + other + challenger + champion[:2], CHAMPION, CHALLENGER)
    assert len(ours) == len(theirs) == 40
    assert [p.prediction.event_id for p in ours] == [p.prediction.event_id for p in theirs]
    assert all(p.prediction.series == CHAMPION for p in ours) and all(p.prediction.series == CHALLENGER for p in theirs)


def test_a_label_serves_both_versions_by_the_monitors_time_rule() -> None:
    join = LabelJoin(horizon_ms=H, scored_lateness_ms=0, label_lateness_ms=0)
    scored = [(Scored("m", v, role, "e1", "k1", 1000, 0.8, "1"), lane) for v, role, lane in ((1, "primary", 0),
                                                                                           (2, "shadow", 1))]
    scored.append((Scored("m", 1, "primary", "e2", "k2", 5000, 0.2, "0"), 0))
    scored.append((Scored("m", 1, "primary", "e3", "k3", 1000, 0.2, "0"), 0))
    labels = [TimedLabel(Label("k1", "1"), 2000), TimedLabel(Label("k2", "0"), 4000),  # k2: before its departure
              TimedLabel(Label("k3", "1"), 1000 + H + 1)]  # k3: past the horizon
    pairs = labelled_pairs(join, scored, labels)
    assert sorted((p.prediction.series, p.prediction.event_id, p.label) for p in pairs) == [
        (CHAMPION, "e1", "1"), (("m", 2, "shadow"), "e1", "1")]


def test_scored_of_reads_a_prediction_record() -> None:
    record = {"model": "m", "model_version": 2, "role": "shadow", "event_id": "e1", "join_key": 7,
              "event_time_ms": 1000, "probabilities": [0.25, 0.75], "labels": ["0", "1"], "label": "1"}
    assert scored_of(record) == Scored("m", 2, "shadow", "e1", "7", 1000, 0.75, "1")
    assert scored_of({**record, "probabilities": None}) is None
    with pytest.raises(KeyError):
        scored_of({k: v for k, v in record.items() if k != "event_id"})


def test_promote_makes_the_shadow_primary_and_the_champion_its_rollback() -> None:
    state = ModelDeployment(model="m", primary=1, shadow=2, previous=None)
    command = desired_state(state, "promote", "m", 2)
    assert (command.primary, command.shadow, command.previous, command.action) == (2, None, 1, "promote")
    assert desired_state(state, "promote", "m", None).primary == 2
    with pytest.raises(CommandError, match="no shadow v3"):
        desired_state(state, "promote", "m", 3)
    with pytest.raises(CommandError, match="no shadow"):
        desired_state(ModelDeployment(model="m", primary=1), "promote", "m", None)


def test_retrain_audit_is_an_audit_record() -> None:
    record = RetrainAudit(step="decided", model="m", at="2026-01-01T00:00:00.000Z", champion=1, challenger=2,
                          result=PROMOTE, metric="auc", margin=0.01, labelled=600, champion_value=0.8,
                          challenger_value=0.9)
    assert decode_audit(encode(record)) == record
    assert msgspec.json.decode(encode(record))["type"] == "retrain"

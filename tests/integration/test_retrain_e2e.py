"""Champion and challenger on the real flights stream, real H2O and a real worker:
``featurestream retrain`` trains a challenger from the log and shadows it, and
``featurestream retrain --decide`` promotes it once (a 10-tree GBM against a
one-split champion); the next round, run as a scheduler's ticks (``--auto``),
retires a one-split challenger against that GBM.  The figures it decides on are checked against AUCs computed here
from the prediction and arrival topics; every step is on fs.audit."""
from __future__ import annotations

import json
import time

import numpy as np
import pytest

from tests.integration.conftest import Worker, consume_all, consume_until, decode
from tests.integration.flights_stream import deploy_model, produce_flights
from tests.integration.labelled import arrival_labels, labelled_p1, pairwise_auc

WEAK = ("--ntrees", "1", "--max-depth", "1")  # one split: a few distinct scores, a poor ranking
STRONG = ("--ntrees", "10", "--max-depth", "5")
MARGIN = "0.01"
MIN_LABELLED = 500
SLICE = 1200  # departures scored by champion and challenger per round


def run(worker: Worker, *args: str) -> str:
    result = worker.cli(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def deployed(worker: Worker, primary: int, shadow: int | None) -> None:
    """Until the worker scores with these versions (it follows the deployments log)."""
    deadline = time.monotonic() + 30
    while True:
        model = next(m for m in worker.get("/models")[1]["models"] if m["name"] == "flight_delay")
        state = model["deployed"] or {}
        if (state.get("primary"), state.get("shadow")) == (primary, shadow):
            return
        assert time.monotonic() < deadline, model
        time.sleep(0.2)


def publish_scored(worker: Worker, skip: int) -> None:
    """The next slice of flights, and until the shadow predictions of its departures are all out."""
    before = worker.counts("departures")
    shadow_before = len(consume_all(worker.settings, worker.settings.topics.shadow_predictions))
    sent = produce_flights(worker.settings, limit=SLICE, skip=skip)
    after = worker.wait_for("departures", sum(before.values()) + sent["departures"])
    new = after["applied"] - before["applied"]
    consume_until(worker.settings, worker.settings.topics.shadow_predictions,
                  lambda records: len(records) >= shadow_before + new)


def head_to_head_auc(worker: Worker, champion: int, challenger: int) -> tuple[int, float, float]:
    """Labelled events both scored, the champion's AUC and the challenger's, computed here."""
    settings = worker.settings
    arrivals = arrival_labels(settings)
    primary = labelled_p1([r for r in decode(consume_all(settings, settings.topics.predictions))
                           if r["model_version"] == champion], arrivals)
    shadow = labelled_p1([r for r in decode(consume_all(settings, settings.topics.shadow_predictions))
                          if r["model_version"] == challenger], arrivals)
    common = sorted(primary.keys() & shadow.keys())
    y = np.array([primary[e][1] for e in common])
    return (len(common), pairwise_auc(np.array([primary[e][0] for e in common]), y),
            pairwise_auc(np.array([shadow[e][0] for e in common]), y))


def retrain_audits(worker: Worker) -> list[dict]:
    return [r for r in decode(consume_all(worker.settings, worker.settings.topics.audit)) if r.get("type") == "retrain"]


def decide(worker: Worker, champion: int, challenger: int, outcome: str, step: str = "--decide") -> None:
    """``step`` (``--decide``, or ``--auto`` with a challenger in shadow) reaches ``outcome`` on the figures
    an independent computation gives."""
    out = run(worker, "retrain", "flight_delay", step, "--margin", MARGIN, "--min-labelled", str(MIN_LABELLED))
    assert out.startswith(f"{outcome}:") or f"\n{outcome}:" in out, out
    decided = [a for a in retrain_audits(worker) if a["step"] == "decided"][-1]
    n, ours, theirs = head_to_head_auc(worker, champion, challenger)
    print(f"v{challenger} against v{champion}: {out.strip()}; here: {n} events, AUC {ours:.4f} vs {theirs:.4f}")
    assert (decided["champion"], decided["challenger"], decided["result"]) == (champion, challenger, outcome)
    assert decided["labelled"] == n >= MIN_LABELLED
    assert decided["champion_value"] == pytest.approx(ours, abs=1e-9)
    assert decided["challenger_value"] == pytest.approx(theirs, abs=1e-9)
    assert (theirs - ours > float(MARGIN)) == (outcome == "promote")


def test_one_promotion_and_one_refusal(worker: Worker) -> None:
    produce_flights(worker.settings, limit=1500)
    worker.wait_for("departures", 1500)
    run(worker, "train", "--name", "flight_delay", *WEAK)
    champion = deploy_model(worker)  # the weak version just trained

    # no challenger yet: --decide says so and changes nothing
    refused = worker.cli("retrain", "flight_delay", "--decide")
    assert refused.returncode == 2 and "no challenger" in refused.stderr, refused.stderr

    run(worker, "retrain", "flight_delay", *STRONG)
    challenger = champion + 1
    deployed(worker, champion, challenger)
    publish_scored(worker, 1500)
    # too few labelled events for the rule: it waits, nothing changes
    waiting = run(worker, "retrain", "flight_delay", "--decide", "--min-labelled", "1000000")
    assert "wait:" in waiting, waiting
    decide(worker, champion, challenger, "promote")
    deployed(worker, challenger, None)

    # the second round as a scheduler runs it: the same tick trains (no challenger) and decides (one in shadow)
    champion, challenger = challenger, challenger + 1
    run(worker, "retrain", "flight_delay", "--auto", *WEAK)
    deployed(worker, champion, challenger)
    publish_scored(worker, 1500 + SLICE)
    decide(worker, champion, challenger, "retire", step="--auto")
    deployed(worker, champion, None)
    model = next(m for m in worker.get("/models")[1]["models"] if m["name"] == "flight_delay")
    assert model["deployed"]["previous"] == champion - 1  # the champion it beat is its rollback

    steps = [(a["step"], a["result"], a["challenger"]) for a in retrain_audits(worker)]
    assert steps == [
        ("trained", "ok", champion), ("shadowed", "applied", champion), ("decided", "wait", champion),
        ("decided", "promote", champion), ("promoted", "applied", champion),
        ("trained", "ok", challenger), ("shadowed", "applied", challenger),
        ("decided", "retire", challenger), ("retired", "applied", challenger),
    ], steps
    verdicts = [(a["action"], a["result"]) for a in decode(consume_all(worker.settings, worker.settings.topics.audit))
                if a.get("type") == "command" and a.get("action") in ("shadow", "promote", "unshadow")]
    assert verdicts == [("shadow", "applied"), ("promote", "applied"), ("shadow", "applied"),
                        ("unshadow", "applied")], verdicts
    print("audit:", json.dumps(retrain_audits(worker)[3]))

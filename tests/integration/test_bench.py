"""``featurestream bench --quick`` runs every stage on the test broker and
writes a JSON report in which every stage has a measured, positive value
(nothing is timed against a threshold: the numbers are the bench's job)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from kafka_plumbing.settings import Settings

# Row stages of the report (dev_tooling.bench_report), for --quick's rates.
STAGES = [
    "baselines.raw_consume", "baselines.raw_consume_produce", "baselines.faust_consume", "baselines.faust_table",
    "worker.ingest", "exactly_once.ingest", "monitor.ingest",
    "cross_source.plain", "cross_source.held", "cross_source.held_ms", "worker.messages",
    "reads.bare_faust.500", "reads.idle.500", "reads.loaded", "reads.quiet", "reads.loaded_ingest",
    "latency.prediction.20", "latency.freshness.20", "latency.prediction.200", "latency.freshness.200",
    "offline.replay", "offline.training_set",
]


def test_bench_quick_measures_every_stage(isolated: Settings, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "bench", "--quick", "--json-out", str(out)],
        env={**os.environ, **isolated.as_env()}, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "featurestream bench" in result.stdout  # the table

    report = json.loads(out.read_text())
    rows = {row["stage"]: row for row in report["rows"]}
    assert sorted(rows) == sorted(STAGES)
    # The test registry is empty: no model, and the bench says so instead of a number.
    for stage in ("latency.prediction.20", "latency.prediction.200", "cross_source.plain", "cross_source.held",
                  "cross_source.held_ms"):
        row = rows.pop(stage)
        assert row["value"] is None and ("no model" in row["note"] or "in the registry" in row["note"]), row
    for stage, row in rows.items():
        assert row["value"] is not None and row["value"] > 0, (stage, row)
    assert "no model" in rows["worker.ingest"]["label"]

    medians = report["medians"]
    # Every departure was consumed by each baseline and applied by the worker.
    events = report["config"]["events"]
    for name in ("raw_consume", "raw_consume_produce", "faust_consume", "faust_table"):
        assert medians[f"baselines.{name}.records"] == events, name
    assert medians["worker.ingest.departures"] == events == medians["monitor.ingest.departures"]
    # Outputs are 3 per departure (feature log, re-keyed copy, its feature log); the state
    # changelogs (one record per changed key per flush) come on top: they are counted.
    assert medians["worker.ingest.messages_per_departure"] > 3
    # Open-loop: every scheduled request was sent, and each one accounted for.
    for key in ("reads.idle.500", "reads.loaded.reads", "baselines.faust_web.500"):
        assert medians[f"{key}.sent"] == 500 == medians[f"{key}.ok"] + medians[f"{key}.errors"], key
        assert medians[f"{key}.ok"] > 0, key
    assert medians["offline.replay.records"] >= events
    assert medians["offline.training_set.records"] == events

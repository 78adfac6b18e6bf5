"""The monitor's wiring without a broker: prediction and label records in,
Prometheus figures and drift alerts out (the joins and figures themselves
are tested in test_quality.py and test_drift.py)."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from agents.quality_monitor import QualityCollector, QualityMonitor
from kafka_plumbing.settings import Settings
from models.baselines import numeric_baseline
from models.registry import METADATA_FILE, MOJO_FILE, Registry
from tables.definitions import load
from tables.model_spec import model_specs

H = 3_600_000


def message(topic: str, value: dict, headers: tuple = ()) -> SimpleNamespace:
    return SimpleNamespace(topic=topic, partition=0, value=json.dumps(value).encode(), headers=headers)


def test_predictions_and_labels_to_figures_and_alerts(tmp_path: Path) -> None:
    version_dir = tmp_path / "flight_delay" / "1"
    version_dir.mkdir(parents=True)
    (version_dir / MOJO_FILE).write_bytes(b"not read here")
    rng = np.random.default_rng(0)
    (version_dir / METADATA_FILE).write_text(json.dumps({
        "baselines": {"dep_delay": numeric_baseline(pd.Series(rng.normal(0, 10, 2000)))},
        "score_baseline": numeric_baseline(pd.Series(rng.uniform(0, 1, 2000)))}))
    settings = replace(Settings(), registry_dir=tmp_path, drift_window_s=3600, drift_min_events=10)
    definitions = load("tables.flights")
    monitor = QualityMonitor(settings, definitions, model_specs(definitions), Registry(tmp_path), "w1")
    topics = settings.topics
    for i in range(300):
        shift = 100 if 100 <= i < 200 else 0  # the second hour's dep_delay shifted
        t = (i // 100) * H + (i % 100) * 30_000
        p1 = 0.9 if i % 3 else 0.2
        monitor.take(message(topics.predictions, {
            "model": "flight_delay", "model_version": 1, "role": "primary", "event_id": f"dep-{i}",
            "event_time_ms": t, "probabilities": [1 - p1, p1], "labels": ["0", "1"], "label": str(int(p1 > 0.5)),
            "features": {"dep_delay": float(rng.normal(shift, 10))}, "join_key": f"f{i}"}))
        monitor.take(message(topics.events("arrivals"), {
            "flight_id": f"f{i}", "arr_delayed_15": int(i % 3 != 0 or i == 3), "event_time": t + 90 * 60_000}))
    monitor.take(message(topics.events("arrivals"), {"flight_id": "x"}, headers=(("fs-control", b"1"),)))
    monitor.take(message(topics.predictions, {"model": "flight_delay", "model_version": 1, "role": "primary",
                                              "event_id": "late", "event_time_ms": 5 * H, "probabilities": [0.5, 0.5],
                                              "labels": ["0", "1"], "label": "1", "features": {}}))
    registry = CollectorRegistry()
    registry.register(QualityCollector(monitor))
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(generate_latest(registry).decode())
               for s in family.samples}
    series = (("model", "flight_delay"), ("role", "primary"), ("version", "1"))
    assert samples[("featurestream_model_labelled", series)] == 300
    assert samples[("featurestream_model_accuracy", series)] == 299 / 300
    assert 0.9 < samples[("featurestream_model_auc", series)] < 1
    assert [a.recovered for a in monitor.alerts if a.where["feature"] == "dep_delay"] == [False, True]
    assert samples[("featurestream_drift_alert", (("feature", "dep_delay"), ("model", "flight_delay"),
                                                  ("version", "1")))] == 0

"""deploy/grafana/featurestream.json cannot rot: every expression names only
metrics documented in docs/monitoring.md's tables, the documented metrics
are the ones a worker's registry defines (same names, same types) and each
has a panel, and the
dashboard is one Grafana can import (ids, grid, datasource variable,
balanced expressions)."""
from __future__ import annotations

import json
import re
from pathlib import Path
from dataclasses import dataclass
from typing import Any

from agents.health_alerts import thresholds
from agents.health_rules import HealthCollector, HealthWatch
from agents.metrics import Metrics
from agents.quality_monitor import QualityCollector, QualityMonitor
from kafka_plumbing.settings import load
from models.registry import Registry
from tables.definitions import load as load_definitions

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "deploy" / "grafana" / "featurestream.json"
NAME = re.compile(r"featurestream_[a-z0-9_]+")
# A documented row of docs/monitoring.md: | `name` | ... (a metric, in its first column);
# a row may name two (`a`, `b`).
ROW = re.compile(r"^\|\s*(`featurestream_[a-z0-9_]+`(?:,\s*`featurestream_[a-z0-9_]+`)*)\s*\|\s*(\w+)", re.M)
SUFFIXES = ("_bucket", "_sum", "_count")


def documented() -> dict[str, str]:
    """Metric name (as exposed: counters with _total) -> its type, from docs/monitoring.md's tables."""
    out = {}
    for names, kind in ROW.findall((ROOT / "docs" / "monitoring.md").read_text()):
        for name in NAME.findall(names):
            out[name] = kind
    return out


def expressions() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [(panel["title"], target["expr"]) for panel in dashboard["panels"] for target in panel.get("targets", [])]


def family(name: str, docs: dict[str, str]) -> str | None:
    """The documented metric a series name belongs to (``x_bucket`` of histogram ``x``), if any."""
    if name in docs:
        return name
    for suffix in SUFFIXES:
        base = name.removesuffix(suffix)
        if base != name and docs.get(base) == "histogram":
            return base
    return None


def test_the_docs_table_is_read() -> None:
    docs = documented()
    assert docs["featurestream_events_total"] == "counter"
    assert docs["featurestream_event_to_prediction_seconds"] == "histogram"
    assert {"featurestream_model_mean_predicted", "featurestream_model_observed_rate"} <= docs.keys()
    assert len(docs) >= 25


def test_every_expression_names_documented_metrics_only() -> None:
    docs = documented()
    exprs = expressions()
    assert exprs
    for title, expr in exprs:
        names = NAME.findall(expr)
        assert names, f"{title}: {expr} names no featurestream metric"
        unknown = [n for n in names if family(n, docs) is None]
        assert not unknown, f"panel {title!r}: {unknown} are not in docs/monitoring.md's tables"
        assert expr.count("(") == expr.count(")") and expr.count("[") == expr.count("]"), f"{title}: {expr}"


def defined(tmp_path: Path) -> dict[str, str]:
    """Every family a worker's registry exposes (name as exposed -> type): its own metrics, the
    scrape-time collector, the quality monitor's and the health rules' (built empty: their families
    are always there)."""
    metrics = Metrics()
    metrics.watch({}, Idle(), dict)
    settings = load()
    monitor = QualityMonitor(settings, load_definitions(settings.features_module), {}, Registry(tmp_path), "w")
    metrics.registry.register(QualityCollector(monitor))
    metrics.registry.register(HealthCollector(HealthWatch(thresholds(settings), "w")))
    return {f"{f.name}_total" if f.type == "counter" else f.name: f.type for f in metrics.registry.collect()}


@dataclass
class Idle:
    consumer: None = None  # no ingest loop running


def test_every_documented_metric_is_defined_and_on_the_dashboard(tmp_path: Path) -> None:
    docs = documented()
    code = defined(tmp_path)
    shown = {family(n, docs) for _, expr in expressions() for n in NAME.findall(expr)}
    for name, kind in docs.items():
        assert code.get(name) == ("gauge" if kind.startswith("gauge") else kind), \
            f"{name} ({kind}) is documented, the code defines {code.get(name)}"
        assert name in shown, f"{name} is documented but has no panel in {DASHBOARD.relative_to(ROOT)}"
    assert not code.keys() - docs.keys(), f"defined but not documented in docs/monitoring.md: {code.keys() - docs.keys()}"


def test_grafana_can_import_it() -> None:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"] and dashboard["schemaVersion"] >= 30
    assert [v["name"] for v in dashboard["templating"]["list"]] == ["datasource"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
            assert [t["refId"] for t in panel["targets"]] == [chr(65 + i) for i in range(len(panel["targets"]))]

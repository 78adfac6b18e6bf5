"""The skew audit against a real worker's logs: on the definitions the worker
runs, the newest served features recompute exactly (0 mismatches, on
fs.metrics); with ``origin_traffic`` changed without a new version, a skew
alert on fs.alerts names the event, the view and the feature; the next audit
on the right definitions recovers it."""
from __future__ import annotations

import asyncio
import json

from agents.metrics_publisher import decode as decode_snapshot
from dev_tooling import flights_data
from kafka_plumbing.producer import produce
from models.alerts import Alert, decode
from tables.definitions import load as load_definitions
from tests.integration.conftest import Worker, consume_all
from tests.integration.flights_stream import deploy_model

SAMPLE = 15
SOURCES = ("departures", "arrivals", "weather", "departures.by_tailnum", "arrivals.by_carrier")


def audit_snapshots(worker: Worker) -> list:
    snapshots = [decode_snapshot(r.value) for r in consume_all(worker.settings, worker.settings.topics.metrics)]
    return [s for s in snapshots if s.worker.startswith("skew-audit@")]


def skew_alerts(worker: Worker) -> list[Alert]:
    return [a for a in (decode(r.value) for r in consume_all(worker.settings, worker.settings.topics.alerts))
            if a.kind == "skew"]


def publish(worker: Worker, skip: int, limit: int) -> None:
    settings = worker.settings
    by_source = flights_data.load_events(limit=limit, skip=skip, progress=False)
    asyncio.run(produce(settings, load_definitions(settings.features_module).key_fields(),
                        flights_data.iter_interleaved(by_source), sum(len(v) for v in by_source.values()),
                        progress=False))


def test_skew_audit_finds_nothing_then_a_changed_view_then_recovers(worker: Worker) -> None:
    settings = worker.settings
    publish(worker, 0, 1500)
    worker.wait_for("departures", 1500)
    deploy_model(worker)  # flight_delay reads origin_traffic: its predictions are audited too
    publish(worker, 1500, 300)
    worker.wait_for("departures", 1800)
    for derived, parent in (("departures.by_tailnum", "departures"), ("arrivals.by_carrier", "arrivals")):
        worker.wait_for(derived, worker.counts(parent)["applied"])
    scored = len(consume_all(settings, settings.topics.predictions))
    assert scored >= 250

    clean = worker.cli("skew-audit", "--sample", str(SAMPLE))
    assert clean.returncode == 0, clean.stdout + clean.stderr
    [snapshot] = audit_snapshots(worker)
    checked = sum(s.value for s in snapshot.samples if s.name == "featurestream_skew_audit_checked")
    print(f"skew audit: {checked:.0f} records recomputed from {sum(worker.counts(s)['applied'] for s in SOURCES)} "
          f"applied events of {len(SOURCES)} logs in {snapshot.value('featurestream_skew_audit_seconds'):.2f} s")
    for source in SOURCES:
        checked = snapshot.value("featurestream_skew_audit_checked", source=source, record="feature_log")
        assert checked is not None and checked >= SAMPLE, (source, checked)
        assert snapshot.value("featurestream_skew_audit_mismatch_rate", source=source) == 0.0
    predictions = snapshot.value("featurestream_skew_audit_checked", source="departures", record="prediction")
    assert predictions is not None and predictions >= min(SAMPLE, scored)
    assert snapshot.value("featurestream_skew_audit_mismatched", source="departures", record="prediction") == 0
    assert skew_alerts(worker) == []

    skewed = worker.cli("skew-audit", "--sample", str(SAMPLE), "--features", "tests.integration.features_skewed")
    assert skewed.returncode == 1, skewed.stdout + skewed.stderr
    [alert] = skew_alerts(worker)
    assert (alert.kind, alert.recovered, alert.series) == ("skew", False, "skew:departures:origin_traffic:max_dep_delay_3h")
    assert alert.where["view"] == "origin_traffic" and alert.where["feature"] == "max_dep_delay_3h"
    event_id = alert.where["event"].split(" ")[0]
    served = [json.loads(r.value) for r in consume_all(settings, settings.topics.features("departures"))]
    assert event_id in {r["event_id"] for r in served}
    assert alert.value >= 1 and alert.threshold == 0 and "online" in alert.detail and "offline" in alert.detail
    last = audit_snapshots(worker)[-1]
    rate = last.value("featurestream_skew_audit_mismatch_rate", source="departures")
    assert rate is not None and 0 < rate <= 1
    # the model was served the same origin_traffic values: its predictions differ from this replay as well
    assert last.value("featurestream_skew_audit_mismatched", source="departures", record="prediction") > 0

    again = worker.cli("skew-audit", "--sample", str(SAMPLE), "--source", "departures")
    assert again.returncode == 0, again.stdout + again.stderr
    raised, recovered = skew_alerts(worker)
    assert recovered.recovered and recovered.series == raised.series and recovered.since == raised.since

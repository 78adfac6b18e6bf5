"""The continuous skew audit as a process of its own (``featurestream
skew-audit``): each round audits every source with views
(``models.skew_audit``), writes its figures to ``fs.metrics`` as a snapshot
of its own (the writer ``skew-audit@<host>``) and its alerts and recoveries
to ``fs.alerts``.  It shares no process with a worker: the replay it runs
costs the hot path nothing but the broker reads.

Alert state carries over restarts: on start it reads the last ``skew``
record of every series on ``fs.alerts``, so a one-shot run (cron) recovers
an alert an earlier run raised."""
from __future__ import annotations

import asyncio
import logging
import socket
import time
from dataclasses import dataclass, field

import msgspec
from prometheus_client import CollectorRegistry, Gauge

from agents.control_records import now_iso
from agents.metrics_publisher import MetricsSnapshot, encode as encode_snapshot, take
from kafka_plumbing import clients, log_reader
from kafka_plumbing.settings import Settings
from models.alerts import Alert, AlertLedger, decode as decode_alert, encode as encode_alert
from models.skew import SkewReport, judge
from models.skew_audit import audit
from tables.definitions import Definitions

log = logging.getLogger(__name__)


def auditor_name() -> str:
    return f"skew-audit@{socket.gethostname()}"


@dataclass
class AuditFigures:
    """The audit's gauges, in a registry of its own (the process is not a worker)."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.checked = Gauge("featurestream_skew_audit_checked", "Records the last audit recomputed, by source "
                             "and record (feature_log, prediction)", ["source", "record"], registry=r)
        self.mismatched = Gauge("featurestream_skew_audit_mismatched", "Of those, records with at least one "
                                "feature that differs from the replay", ["source", "record"], registry=r)
        self.rate = Gauge("featurestream_skew_audit_mismatch_rate", "Mismatched over checked records of the "
                          "last audit (expected 0)", ["source"], registry=r)
        self.differences = Gauge("featurestream_skew_audit_differences", "Feature values that differ, by view "
                                 "and feature, in the last audit", ["source", "view", "feature"], registry=r)
        self.seconds = Gauge("featurestream_skew_audit_seconds", "Wall time of the last audit", registry=r)
        self.finished = Gauge("featurestream_skew_audit_last_run_timestamp_seconds", "When the last audit "
                              "finished (Unix time)", registry=r)

    def record(self, reports: list[SkewReport], seconds: float) -> None:
        self.differences.clear()  # a feature that agrees again is no longer listed
        for report in reports:
            for record, n in report.checked.items():
                self.checked.labels(report.source, record).set(n)
                self.mismatched.labels(report.source, record).set(report.mismatched[record])
            self.rate.labels(report.source).set(report.rate)
            for m in report.mismatches:
                self.differences.labels(report.source, m.view, m.feature).inc()
        self.seconds.set(seconds)
        self.finished.set(time.time())


@dataclass
class SkewAuditor:
    settings: Settings
    definitions: Definitions
    sample: int
    interval_s: float
    sources: list[str] | None = None
    who: str = field(default_factory=auditor_name)
    ledger: AlertLedger = field(default_factory=AlertLedger)
    figures: AuditFigures = field(default_factory=AuditFigures)
    seq: int = 0

    def resume(self) -> None:
        """The alert state the previous runs left on ``fs.alerts`` (every writer's: one truth per series)."""
        last: dict[str, Alert] = {}
        for message in asyncio.run(log_reader.read_all(self.settings, self.settings.topics.alerts)):
            try:
                alert = decode_alert(message.value)
            except msgspec.DecodeError:
                continue  # not an alert record of this version: not ours to judge
            if alert.kind == "skew":
                last[alert.series] = alert
        self.ledger.since = {series: a.since for series, a in last.items() if not a.recovered}

    def round(self) -> tuple[list[SkewReport], list[Alert], MetricsSnapshot]:
        started = time.perf_counter()
        reports = audit(self.settings, self.definitions, self.sample, self.sources)
        self.figures.record(reports, time.perf_counter() - started)
        at = now_iso()
        alerts = [alert for report in reports for alert in judge(report, self.ledger, at, self.who)]
        self.seq += 1
        return reports, alerts, take(self.figures.registry, self.who, self.seq, self.interval_s)

    def publish(self, alerts: list[Alert], snapshot: MetricsSnapshot) -> None:
        asyncio.run(self._send(alerts, snapshot))

    async def _send(self, alerts: list[Alert], snapshot: MetricsSnapshot) -> None:
        topics = self.settings.topics
        producer = clients.producer(self.settings)
        await producer.start()
        try:
            for alert in alerts:
                await producer.send_and_wait(topics.alerts, encode_alert(alert), key=alert.key())
            await producer.send_and_wait(topics.metrics, encode_snapshot(snapshot), key=self.who.encode())
        finally:
            await producer.stop()

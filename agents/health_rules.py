"""Alerts on a worker's own health, judged from its metrics snapshots (the
``fs.metrics`` samples, taken once per ``FS_METRICS_INTERVAL_S`` anyway), so
the hot path pays nothing and an alert always agrees with the figures
published beside it.

- ``error_rate`` per source: records that ended ``invalid``, ``error`` or
  ``output_error`` over the records read in the last ``window_s``, the
  denominator at least ``min_events`` (a handful of records cannot alert, a
  quiet window clears);
- ``lag`` per source: the sum of ``featurestream_consumer_lag`` over its partitions, now;
- ``latency``: p99 of ``featurestream_event_to_prediction_seconds`` per source
  and of ``featurestream_http_request_seconds`` per route over the last
  ``window_s`` (interpolated within a bucket as PromQL's
  ``histogram_quantile``); a window without observations clears (a stall is
  the lag alert's business).

A threshold of 0 (or less) turns its rule off."""
from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from agents.metrics_publisher import MetricSample, MetricsSnapshot
from models.alerts import Alert, AlertLedger, iso

ERROR_OUTCOMES = ("invalid", "error", "output_error")
EVENTS = "featurestream_events_total"
LAG = "featurestream_consumer_lag"
E2P = "featurestream_event_to_prediction_seconds_bucket"
HTTP = "featurestream_http_request_seconds_bucket"


@dataclass(frozen=True)
class Thresholds:
    window_s: float
    min_events: int
    error_rate: float
    lag: float
    latency_p99_s: float  # event to prediction
    http_p99_s: float


Buckets = dict[float, float]  # upper bound -> cumulative count


@dataclass(frozen=True)
class Figures:
    """What the rules need of one snapshot."""

    at_ms: int
    events: dict[str, tuple[float, float]]  # source -> (errors, all records)
    lag: dict[str, float]  # source -> records
    e2p: dict[str, Buckets]  # source -> buckets
    http: dict[str, Buckets]  # "<method> <route>" -> buckets (every server summed)


def figures(snapshot: MetricsSnapshot) -> Figures:
    events: dict[str, tuple[float, float]] = {}
    lag: dict[str, float] = {}
    e2p: dict[str, Buckets] = {}
    http: dict[str, Buckets] = {}
    for s in snapshot.samples:
        if s.name == EVENTS:
            errors, total = events.get(s.labels["source"], (0.0, 0.0))
            bad = s.value if s.labels.get("outcome") in ERROR_OUTCOMES else 0.0
            events[s.labels["source"]] = (errors + bad, total + s.value)
        elif s.name == LAG:
            lag[s.labels["source"]] = lag.get(s.labels["source"], 0.0) + s.value
        elif s.name == E2P:
            _add_bucket(e2p.setdefault(s.labels["source"], {}), s)
        elif s.name == HTTP:
            _add_bucket(http.setdefault(f"{s.labels['method']} {s.labels['route']}", {}), s)
    return Figures(snapshot.taken_at_ms, events, lag, e2p, http)


def _add_bucket(buckets: Buckets, sample: MetricSample) -> None:
    bound = float(sample.labels["le"])
    buckets[bound] = buckets.get(bound, 0.0) + sample.value


def quantile(q: float, now: Buckets, then: Buckets) -> tuple[float, float] | None:
    """(the q-quantile, observations) of the observations between two cumulative bucket sets,
    as ``histogram_quantile`` computes it; None without observations."""
    bounds = sorted(now)
    counts = [now[b] - then.get(b, 0.0) for b in bounds]
    if not counts or counts[-1] <= 0:
        return None
    total = counts[-1]
    rank = q * total
    lower, below = 0.0, 0.0
    for bound, cumulative in zip(bounds, counts):
        if cumulative >= rank:
            if math.isinf(bound):
                return lower, total  # the highest finite bound, as PromQL answers
            share = (rank - below) / (cumulative - below) if cumulative > below else 1.0
            return lower + (bound - lower) * share, total
        lower, below = bound, cumulative
    return lower, total


@dataclass
class HealthWatch:
    thresholds: Thresholds
    worker: str
    history: deque[Figures] = field(default_factory=deque)
    ledger: AlertLedger = field(default_factory=AlertLedger)
    values: dict[str, float] = field(default_factory=dict)  # series -> last judged value

    def judge(self, snapshot: MetricsSnapshot) -> list[Alert]:
        now = figures(snapshot)
        self.history.append(now)
        window_ms = self.thresholds.window_s * 1000
        # The oldest snapshot at least a window old is the window's start; until there is one, the oldest.
        while len(self.history) > 2 and now.at_ms - self.history[1].at_ms >= window_ms:
            self.history.popleft()
        then = self.history[0]
        at = snapshot.taken_at
        out: list[Alert] = []
        out += self._error_rates(now, then, at)
        out += self._lag(now, at)
        out += self._latency(now, then, at)
        return out

    def _error_rates(self, now: Figures, then: Figures, at: str) -> Iterable[Alert]:
        t = self.thresholds
        if t.error_rate <= 0:
            return
        for source, (errors, total) in sorted(now.events.items()):
            errors_then, total_then = then.events.get(source, (0.0, 0.0))
            bad, read = errors - errors_then, total - total_then
            rate = bad / max(read, t.min_events, 1)
            yield from self._judge("error_rate", "error_rate", {"source": source}, rate, t.error_rate, at,
                                   f"{bad:.0f} of {read:.0f} records invalid or failed (denominator at least "
                                   f"{t.min_events})", then, now, int(read))

    def _lag(self, now: Figures, at: str) -> Iterable[Alert]:
        t = self.thresholds
        if t.lag <= 0:
            return
        for source, records in sorted(now.lag.items()):
            yield from self._judge("lag", "consumer_lag", {"source": source}, records, t.lag, at,
                                   f"{records:.0f} records not yet applied over the partitions this worker owns")

    def _latency(self, now: Figures, then: Figures, at: str) -> Iterable[Alert]:
        t = self.thresholds
        rules = (("event_to_prediction", "source", now.e2p, then.e2p, t.latency_p99_s),
                 ("http", "route", now.http, then.http, t.http_p99_s))
        for what, label, current, before, threshold in rules:
            if threshold <= 0:
                continue
            for name, buckets in sorted(current.items()):
                found = quantile(0.99, buckets, before.get(name, {}))
                p99, seen = found if found is not None else (0.0, 0.0)
                where = {"latency": what, label: name}
                yield from self._judge("latency", "p99_seconds", where, p99, threshold, at,
                                       f"p99 {p99:.4f} s over {seen:.0f} observations", then, now, int(seen))

    def _judge(self, kind: str, metric: str, where: dict[str, str], value: float, threshold: float, at: str,
               detail: str, then: Figures | None = None, now: Figures | None = None,
               events: int | None = None) -> Iterable[Alert]:
        series = ":".join([kind, *where.values()])  # this worker's: its /metrics label
        self.values[series] = value
        changed = self.ledger.judge(series, value > threshold, at)
        if changed is None:
            return
        since, recovered = changed
        # On fs.alerts the worker is part of the identity: each worker judges its own partitions and
        # requests, so one worker's recovery must not read as the end of another's alert.
        yield Alert(kind=kind, metric=metric, series=f"{series}@{self.worker}", where=where, value=round(value, 6),
                    threshold=threshold, since=since, recovered=recovered, at=at, worker=self.worker,
                    detail=detail, window_start=iso(then.at_ms) if then else None,
                    window_end=iso(now.at_ms) if now else None, window_events=events)


@dataclass(eq=False)  # registered by identity: a registry keys its collectors by hash
class HealthCollector(Collector):
    """The rules' last judgement, in /metrics (and so in the next snapshot)."""

    watch: HealthWatch

    def collect(self) -> Iterator[Metric]:
        value = GaugeMetricFamily("featurestream_health_value", "The last value each health rule judged "
                                  "(error rate, lag in records, p99 in seconds), by alert series",
                                  labels=["kind", "series"])
        active = GaugeMetricFamily("featurestream_health_alert", "1 while the series is in alert (since its "
                                   "alert on fs.alerts, until its recovery)", labels=["kind", "series"])
        for series, judged in sorted(self.watch.values.items()):
            kind = series.split(":", 1)[0]
            value.add_metric([kind, series], judged)
            active.add_metric([kind, series], 1.0 if self.watch.ledger.active(series) else 0.0)
        yield value
        yield active

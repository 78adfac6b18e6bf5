"""The console's figures (``GET /console/data``), read from the worker's metric registry.

The page never parses the Prometheus text: this module reads the very
samples ``/metrics`` exposes (one ``registry.collect()``), so a figure on the
page is the figure a scrape would give.  The only figures computed here are
the charts' points: rates and latency quantiles between two successive reads
(``ConsoleHistory``), the way ``rate()`` and ``histogram_quantile()`` would
over that interval.  The history is kept per worker; it reads no registry
of its own when nobody watches (it rides on the ``fs.metrics`` snapshots).
"""
from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import msgspec
from prometheus_client import CollectorRegistry

from agents.console_feed import AlertShown, ConsoleFeed, DeadLetterSeen
from agents.metrics_publisher import MetricsSnapshot
from agents.quality_monitor import FAMILIES, FIGURES

HISTORY_POINTS = 300  # at one read a second at most: five minutes of chart
MIN_STEP_S = 1.0  # reads closer together than this share a point (two open pages do not double the cost)

Samples = dict[str, list[tuple[dict[str, str], float]]]


class SourceFigures(msgspec.Struct, kw_only=True):
    source: str
    events: dict[str, float]  # outcome -> featurestream_events_total
    dlq: dict[str, float]  # reason -> featurestream_dlq_total
    lag: float  # featurestream_consumer_lag summed over the partitions this worker owns


class DecisionCount(msgspec.Struct, kw_only=True):
    model: str
    version: str
    role: str
    predicted: str
    count: float  # featurestream_predictions_total


class ModelFigures(msgspec.Struct, kw_only=True):
    model: str
    version: str
    role: str
    deployed: bool  # featurestream_model_info
    quality: dict[str, float]  # featurestream_model_<figure>, for the figures the monitor has (FS_MONITOR=1)


class DriftFigure(msgspec.Struct, kw_only=True):
    model: str
    version: str
    feature: str
    psi: float
    alert: bool


class Point(msgspec.Struct, kw_only=True):
    at_ms: int
    events_per_s: float  # every outcome, every source
    applied_per_s: float
    lag: float
    e2p_p50_s: float | None  # event-to-prediction quantiles over the interval since the previous point
    e2p_p99_s: float | None


class ConsoleData(msgspec.Struct, kw_only=True):
    worker: str
    taken_at_ms: int
    sources: list[SourceFigures]
    decisions: list[DecisionCount]
    models: list[ModelFigures]
    drift: list[DriftFigure]
    history: list[Point]
    active_alerts: list[AlertShown]  # the newest record of each alert key that is not a recovery, newest first
    alerts: list[AlertShown]  # the last FS_CONSOLE_RECENT records, newest first
    dead_letters: list[DeadLetterSeen]  # newest first
    feed: bool  # False: FS_CONSOLE_RECENT=0, no alerts or dead letters are read


def read_samples(registry: CollectorRegistry) -> Samples:
    samples: Samples = {}
    for family in registry.collect():
        for s in family.samples:
            samples.setdefault(s.name, []).append((dict(s.labels), s.value))
    return samples


def total(samples: Samples, name: str, **labels: str) -> float:
    return sum(v for ls, v in samples.get(name, ()) if labels.items() <= ls.items())


def buckets(samples: Samples, name: str) -> list[tuple[float, float]]:
    """Cumulative counts per upper bound, summed over every series of the histogram ``name``."""
    by_le: dict[float, float] = {}
    for ls, v in samples.get(f"{name}_bucket", ()):
        le = float(ls["le"])
        by_le[le] = by_le.get(le, 0.0) + v
    return sorted(by_le.items())


def quantile(q: float, cumulative: list[tuple[float, float]]) -> float | None:
    """Prometheus's ``histogram_quantile``: linear within the bucket the rank falls in;
    in the ``+Inf`` bucket, the highest finite bound."""
    if not cumulative or cumulative[-1][1] <= 0:
        return None
    rank = q * cumulative[-1][1]
    lower, below = 0.0, 0.0
    for le, count in cumulative:
        if count >= rank:
            if math.isinf(le):
                return lower
            if count == below:
                return le
            return lower + (le - lower) * (rank - below) / (count - below)
        lower, below = le, count
    return lower


def _minus(now: list[tuple[float, float]], before: list[tuple[float, float]]) -> list[tuple[float, float]]:
    earlier = dict(before)
    return [(le, count - earlier.get(le, 0.0)) for le, count in now]


@dataclass
class ConsoleHistory:
    """The charts' points: sampled by each ``fs.metrics`` snapshot (the publisher's registry read,
    every ``FS_METRICS_INTERVAL_S``), so a page opened late still shows the past, and by each
    console read (at most one a second), so a watched page moves at its own pace."""

    points: deque[Point] = field(default_factory=lambda: deque(maxlen=HISTORY_POINTS))
    previous: tuple[float, float, float, list[tuple[float, float]]] | None = None  # at, events, applied, e2p

    async def snapshot(self, taken: MetricsSnapshot) -> None:  # a reader of the metrics publisher
        samples: Samples = {}
        for s in taken.samples:
            samples.setdefault(s.name, []).append((s.labels, s.value))
        self.sample(samples, taken.taken_at_ms / 1000)

    def sample(self, samples: Samples, now: float) -> None:
        events = total(samples, "featurestream_events_total")
        applied = total(samples, "featurestream_events_total", outcome="applied")
        e2p = buckets(samples, "featurestream_event_to_prediction_seconds")
        if self.previous is not None:
            at, events_before, applied_before, e2p_before = self.previous
            if now - at < MIN_STEP_S:
                return
            interval = _minus(e2p, e2p_before)
            self.points.append(Point(
                at_ms=int(now * 1000), events_per_s=(events - events_before) / (now - at),
                applied_per_s=(applied - applied_before) / (now - at),
                lag=total(samples, "featurestream_consumer_lag"),
                e2p_p50_s=quantile(0.5, interval), e2p_p99_s=quantile(0.99, interval)))
        self.previous = (now, events, applied, e2p)


def _models(samples: Samples) -> list[ModelFigures]:
    found: dict[tuple[str, str, str], ModelFigures] = {}

    def slot(ls: dict[str, str]) -> ModelFigures:
        key = (ls["model"], ls["version"], ls["role"])
        if key not in found:
            found[key] = ModelFigures(model=key[0], version=key[1], role=key[2], deployed=False, quality={})
        return found[key]

    for ls, v in samples.get("featurestream_model_info", ()):
        slot(ls).deployed = v > 0
    for figure in FIGURES:
        for ls, v in samples.get(f"featurestream_model_{figure}", ()):
            slot(ls).quality[figure] = v
    return [found[k] for k in sorted(found, key=lambda k: (k[0], -int(k[1]) if k[1].isdigit() else 0, k[2]))]


@dataclass(frozen=True)
class Visible:
    """What the caller may know of (a tenant's token: its own sources and models only)."""

    source: Callable[[str], bool]
    model: Callable[[str], bool]
    unnamed: bool  # alerts that name no model (lag, error rate): only for a token that sees everything


def figures(registry: CollectorRegistry, history: ConsoleHistory, feed: ConsoleFeed | None, worker: str,
            sources: Iterable[str], visible: Visible) -> ConsoleData:
    now = time.time()
    samples = read_samples(registry)
    history.sample(samples, now)
    if feed is not None and feed.monitor is not None and not any(n.startswith(FAMILIES) for n in samples):
        # This worker runs no monitor: quality and drift from the snapshot of the one that runs.
        for s in feed.monitor.samples:
            if s.name.startswith(FAMILIES):
                samples.setdefault(s.name, []).append((s.labels, s.value))
    rows = []
    for source in filter(visible.source, sources):
        events = {ls["outcome"]: v for ls, v in samples.get("featurestream_events_total", ())
                  if ls["source"] == source}
        dlq = {ls["reason"]: v for ls, v in samples.get("featurestream_dlq_total", ()) if ls["source"] == source}
        rows.append(SourceFigures(source=source, events=events, dlq=dlq,
                                  lag=total(samples, "featurestream_consumer_lag", source=source)))
    decisions = [DecisionCount(model=ls["model"], version=ls["version"], role=ls["role"],
                               predicted=ls["predicted"], count=v)
                 for ls, v in sorted(samples.get("featurestream_predictions_total", ()),
                                     key=lambda s: tuple(sorted(s[0].items())))
                 if visible.model(ls["model"])]
    alerting = {(ls["model"], ls["version"], ls["feature"]): v > 0
                for ls, v in samples.get("featurestream_drift_alert", ())}
    drift = [DriftFigure(model=ls["model"], version=ls["version"], feature=ls["feature"], psi=v,
                         alert=alerting.get((ls["model"], ls["version"], ls["feature"]), False))
             for ls, v in sorted(samples.get("featurestream_drift_psi", ()), key=lambda s: -s[1])
             if visible.model(ls["model"])]
    def sees(shown: AlertShown) -> bool:
        alert = shown.alert
        model, source = alert.model or alert.where.get("model"), alert.where.get("source")
        if model:
            return visible.model(str(model))
        return visible.source(str(source)) if source else visible.unnamed

    alerts = [a for a in reversed(feed.alerts) if sees(a)] if feed is not None else []
    active = [a for a in feed.active() if sees(a)] if feed is not None else []
    dead_letters = [d for d in reversed(feed.dead_letters) if visible.source(d.letter.source)] if feed is not None else []
    return ConsoleData(
        worker=worker, taken_at_ms=int(now * 1000), sources=rows, decisions=decisions,
        models=[m for m in _models(samples) if visible.model(m.model)], drift=drift, history=list(history.points),
        active_alerts=active, alerts=alerts, dead_letters=dead_letters, feed=feed is not None,
    )

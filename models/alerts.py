"""The one record of ``fs.alerts``, for every kind of alert (drift, skew,
error rate, lag, latency), and the ledger that turns a condition judged
again and again into one alert when it starts and one recovery when it ends.

Pure: no Faust, no Kafka.  Each monitor names its conditions by a
``series`` (the record's key, so a compacted or keyed reader sees the
latest state of each condition) and says where it holds in ``where``."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

import msgspec

KINDS = ("drift", "skew", "error_rate", "lag", "latency")


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat(timespec="milliseconds")


class Alert(msgspec.Struct, kw_only=True):
    """An alert (``recovered`` false) or its recovery (true)."""

    kind: str  # one of KINDS: what went wrong
    metric: str  # the figure judged: psi, mismatch_rate, error_rate, consumer_lag, p99_seconds
    series: str  # the condition's identity, also the record's key: ``<kind>:<where values>``
    where: dict[str, str]  # labels of the condition: model/version/feature, source, route, view/feature/event
    value: float  # the figure that raised (or cleared) the alert
    threshold: float  # what it was judged against (over it: alert; at or under: recovery)
    since: str  # when the condition began (ISO-8601; drift: event time, the others: wall time); kept in the recovery
    recovered: bool
    at: str  # wall time the record was written
    worker: str = ""  # who judged it: a worker's URL, or ``skew-audit@<host>``
    detail: str = ""  # one line for a person: the numbers behind ``value``
    window_start: str | None = None  # the span judged, when it is one (ISO-8601)
    window_end: str | None = None
    window_events: int | None = None

    def key(self) -> bytes:
        return self.series.encode()


def decode(raw: bytes) -> Alert:
    return msgspec.json.decode(raw, type=Alert)


def encode(alert: Alert) -> bytes:
    return msgspec.json.encode(alert)


@dataclass
class AlertLedger:
    """Which series are in alert, since when."""

    since: dict[str, str] = field(default_factory=dict)

    def judge(self, series: str, over: bool, began: str) -> tuple[str, bool] | None:
        """``(since, recovered)`` when the series changes state, None while it holds.
        ``began``: when the condition starts, if it starts now."""
        held = self.since.get(series)
        if over == (held is not None):
            return None
        if over:
            self.since[series] = began
            return began, False
        del self.since[series]
        assert held is not None
        return held, True

    def active(self, series: str) -> bool:
        return series in self.since

"""The newest alerts and dead letters, and the monitor's newest figures, for the console (``GET /``).

A plain consumer (``kafka_plumbing.clients``, no group: every partition)
reads ``fs.alerts`` from its beginning (a few records a day, kept for the
topic's retention) and ``fs.dlq`` from a little before its end; it keeps
the last ``FS_CONSOLE_RECENT`` of each, and the newest alert per key, which
says what is in alert now (an alert and its recovery share their key).  Alerts are read whatever
their kind (drift today; skew, error rate, lag, latency from other writers):
the fields every alert record shares are typed here, the rest are shown as
the record's key says (``drift:<model>:<version>:<feature>``).  From
``fs.metrics`` (from a little before its end) it keeps the newest snapshot
that carries model quality, so live quality shows on every worker's console
when ``featurestream monitor`` computes it in its own process.  Records that
do not decode are counted, never fatal: the console is a window, not a judge.
"""
from __future__ import annotations

import base64
import logging
from collections import deque
from dataclasses import dataclass, field

import faust
import msgspec
from aiokafka import AIOKafkaConsumer, ConsumerRecord

from agents.dead_letters import DeadLetter
from agents.metrics_publisher import MetricsSnapshot, decode as decode_snapshot
from agents.quality_monitor import FAMILIES
from kafka_plumbing import clients
from kafka_plumbing.settings import Settings

log = logging.getLogger(__name__)

# A snapshot with one of these names carries the monitor's figures (a worker's own carry
# featurestream_model_info, which is not one of them).
MONITOR_MARKS = tuple(f'"{name}'.encode() for name in FAMILIES)
MAX_ALERT_KEYS = 10_000  # alert keys remembered for the active list; past it the oldest are forgotten
PREVIEW_BYTES = 160  # of a rejected record's original bytes: enough to recognise it, never a 1 MB page


class AlertSeen(msgspec.Struct, kw_only=True):
    """What the console shows of an alert record: ``models.alerts.Alert`` (its labels in ``where``),
    read leniently: none is required, so drift alerts written before that one type (model,
    version, feature at the top level) still show, and a record the page cannot use is skipped."""

    kind: str = "?"
    metric: str = ""
    where: dict[str, str | int | float | bool | None] = {}  # the condition's labels: model, source, route, ...
    detail: str = ""  # one line for a person, when the record has one
    model: str | None = None
    version: int | str | None = None
    feature: str | None = None
    value: float | None = None
    threshold: float | None = None
    since: str | None = None
    recovered: bool = False
    at: str | None = None
    worker: str = ""


class AlertShown(msgspec.Struct, kw_only=True):
    """An alert record and its key (what and where: ``drift:<model>:<version>:<feature>``), kept apart
    so no field of any record kind can collide with the key."""

    key: str
    alert: AlertSeen


class DeadLetterSeen(msgspec.Struct, kw_only=True):
    """A dead letter as the console shows it: the record without its inline original, and the start of it."""

    letter: DeadLetter  # original_b64 dropped: up to 256 KiB a record, for a page that shows 160 bytes
    preview: str = ""


_alert_decoder = msgspec.json.Decoder(AlertSeen)
_dead_letter_decoder = msgspec.json.Decoder(DeadLetter)


def preview(original_b64: str | None) -> str:
    if not original_b64:
        return ""
    # base64 of PREVIEW_BYTES bytes: 4 characters per 3 bytes, rounded up to a whole group.
    head = base64.b64decode(original_b64[: (PREVIEW_BYTES + 2) // 3 * 4])
    return head[:PREVIEW_BYTES].decode("utf-8", "replace")


@dataclass
class ConsoleFeed:
    settings: Settings
    alerts: deque[AlertShown] = field(init=False)
    dead_letters: deque[DeadLetterSeen] = field(init=False)
    latest: dict[str, AlertShown] = field(default_factory=dict)  # key -> its newest record, oldest key first
    # The newest fs.metrics snapshot with model quality or drift in it, from `featurestream monitor`
    # (or a worker running FS_MONITOR=1): the console shows live quality wherever the monitor runs.
    monitor: MetricsSnapshot | None = None
    undecodable: int = 0

    def active(self) -> list[AlertShown]:
        """Alerts not recovered since, newest first."""
        return [a for a in reversed(self.latest.values()) if not a.alert.recovered]

    def __post_init__(self) -> None:
        self.alerts = deque(maxlen=self.settings.console_recent)
        self.dead_letters = deque(maxlen=self.settings.console_recent)

    def take(self, message: ConsumerRecord) -> None:
        try:
            if message.topic == self.settings.topics.alerts:
                alert = _alert_decoder.decode(message.value)
                shown = AlertShown(key=message.key.decode("utf-8", "replace") if message.key else alert.kind,
                                   alert=alert)
                self.alerts.append(shown)
                self.latest.pop(shown.key, None)  # re-inserted: the dict stays in order of the last record
                self.latest[shown.key] = shown
                if len(self.latest) > MAX_ALERT_KEYS:
                    del self.latest[next(iter(self.latest))]
            elif message.topic == self.settings.topics.metrics:
                # Most snapshots are workers' without model figures: skipped before any decoding.
                if any(mark in message.value for mark in MONITOR_MARKS):
                    snapshot = decode_snapshot(message.value)
                    if self.monitor is None or snapshot.taken_at_ms >= self.monitor.taken_at_ms:
                        self.monitor = snapshot
            else:
                letter = _dead_letter_decoder.decode(message.value)
                shown = preview(letter.original_b64)
                letter.original_b64 = None
                self.dead_letters.append(DeadLetterSeen(letter=letter, preview=shown))
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError, TypeError):
            self.undecodable += 1


async def run(feed: ConsoleFeed, app: faust.App) -> None:
    topics = feed.settings.topics
    consumer = clients.consumer(feed.settings, topics.alerts, topics.dlq, topics.metrics,
                                auto_offset_reset="latest")
    await clients.start_consumer(consumer)
    try:
        await _rewind(consumer, topics.alerts, feed.settings.console_recent)
        while not app.should_stop:
            batches = await consumer.getmany(timeout_ms=500, max_records=1000)
            # In timestamp order across partitions, so "the newest N" means the same for every worker.
            for message in sorted((m for ms in batches.values() for m in ms), key=lambda m: m.timestamp):
                feed.take(message)
    finally:
        await clients.stop_consumer(consumer)


async def _rewind(consumer: AIOKafkaConsumer, whole: str, recent: int) -> None:
    """The topic ``whole`` from its beginning, the others' partitions ``recent`` records before
    their ends (the newest N overall are among them)."""
    partitions = sorted(consumer.assignment())
    starts = await consumer.beginning_offsets(partitions)
    ends = await consumer.end_offsets(partitions)
    for tp in partitions:
        consumer.seek(tp, starts[tp] if tp.topic == whole else max(starts[tp], ends[tp] - recent))


def register_console_feed(app: faust.App, settings: Settings) -> ConsoleFeed | None:
    if settings.console_recent <= 0:
        return None
    feed = ConsoleFeed(settings)

    @app.task
    async def follow_alerts_and_dead_letters() -> None:
        try:
            await run(feed, app)
        except Exception:  # the console shows an empty list then; the log says why
            log.exception("console feed stopped")

    return feed

"""The hold: applied events whose models read other logs wait here until those reads are final.

An event at time T is released when every partition its inputs may read has
a watermark past T (``tables.cross_source``), then its inputs are read as of
T from the worker's replica: the values the training set computes.  After
``FS_XSOURCE_MAX_WAIT_S`` it is released anyway, read with what is known,
and its predictions say ``complete=false``.  Events without such a model
never enter it.

What a hold does not survive: held events live in this process only.  Their
offsets are committed with their flush, so a crash loses the predictions of
the events held at that moment; a rebalance or a stop releases them at once
(``release(everything=True)``), marked incomplete unless final.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace

from aiokafka import ConsumerRecord

from agents.cross_replica import CrossReplica
from agents.scoring import ScoreRequest
from tables.cross_source import inputs_final, read_inputs
from tables.dsl import FeatureView

log = logging.getLogger(__name__)
REPORT_EVERY_S = 10.0

# The held events are looked at no more often than this while the replica moves on:
# each look checks all of them.
LOOK_EVERY_S = 0.05


@dataclass
class Held:
    message: ConsumerRecord
    request: ScoreRequest
    since: float  # monotonic seconds


class Hold:
    def __init__(self, replica: CrossReplica, views: list[FeatureView], max_wait_s: float) -> None:
        self.replica = replica
        self.views = views
        self.max_wait_s = max_wait_s
        self.held: list[Held] = []
        self.released_incomplete = 0
        self.looked = 0.0  # monotonic time of the last release
        self.reported = 0.0
        self.fresh = False


    def __len__(self) -> int:
        return len(self.held)

    def add(self, message: ConsumerRecord, request: ScoreRequest) -> None:
        self.held.append(Held(message, request, time.monotonic()))
        self.fresh = True  # its inputs may be final already: looked at without waiting for the replica

    def due(self) -> bool:
        """Something may be released: the replica moved on or events came in, or the oldest waited its longest."""
        if not self.held:
            return False
        now = time.monotonic()
        return (((self.replica.advanced.is_set() or self.fresh) and now - self.looked >= LOOK_EVERY_S)
                or now - self.held[0].since >= self.max_wait_s)

    def release(self, everything: bool = False) -> list[tuple[ConsumerRecord, ScoreRequest]]:
        """The held events whose inputs are final, or that waited out, with their inputs read."""
        if not self.held:
            return []
        self.replica.advanced.clear()
        self.fresh = False
        now = self.looked = time.monotonic()
        logs = self.replica.logs
        out: list[tuple[ConsumerRecord, ScoreRequest]] = []
        kept: list[Held] = []
        bounds: dict[tuple[str, str], int | None] = {}
        ready: list[Held] = []
        for held in self.held:
            request = held.request
            at_ms = request.provenance.event_time_ms
            if everything or now - held.since >= self.max_wait_s or inputs_final(
                    logs, self.views, request.record, at_ms, bounds):
                ready.append(held)
            else:
                kept.append(held)
        # In event time order: each entity's reads then move forward.
        for held in sorted(ready, key=lambda h: h.request.provenance.event_time_ms):
            request = held.request
            at_ms = request.provenance.event_time_ms
            waited = now - held.since
            inputs = read_inputs(logs, self.views, request.record, at_ms)
            if not inputs.complete:
                self.released_incomplete += 1
            out.append((held.message, replace(request, cross=inputs, held_ms=round(waited * 1000, 1))))
        self.held = kept
        if now - self.reported >= REPORT_EVERY_S:  # why events wait, in the worker's log
            self.reported = now
            log.info("hold: %d held (oldest event time %s), %d released now, %d incomplete so far; watermarks %s",
                     len(kept), min((h.request.provenance.event_time_ms for h in kept), default=None), len(out),
                     self.released_incomplete,
                     {root: [x.watermark(p) for p in range(x.partitions)] for root, x in logs.items()})
        return out

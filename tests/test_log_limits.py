"""Repeated client errors are held to one line per interval, with a count."""
from __future__ import annotations

import logging

from app.log_limits import RepeatLimiter


def record(name: str, msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, args, None)


def test_repeats_of_a_kind_pass_once_per_interval_then_say_how_many_were_held() -> None:
    now = [0.0]
    limiter = RepeatLimiter(every_s=5.0, clock=lambda: now[0])
    passed = []
    for i in range(100):
        now[0] = i * 0.1  # 10 s of one error every 100 ms
        r = record("aiokafka.client", "Unable connect to node with id %s: %s", 1, "refused")
        if limiter.filter(r):
            passed.append(r.getMessage())
    assert passed == [
        "Unable connect to node with id 1: refused",
        "Unable connect to node with id 1: refused [49 more like it in the last 5s not logged]",
    ]


def test_kinds_are_counted_apart_and_other_loggers_pass() -> None:
    limiter = RepeatLimiter(clock=lambda: 0.0)
    assert limiter.filter(record("aiokafka.client", "Unable to update metadata from %s", [1]))
    assert limiter.filter(record("aiokafka.consumer.fetcher", "Failed fetch messages from %s", 1))
    assert not limiter.filter(record("aiokafka.client", "Unable to update metadata from %s", [2]))
    assert all(limiter.filter(record("agents.ingest", "flush of %s failed", "departures")) for _ in range(3))

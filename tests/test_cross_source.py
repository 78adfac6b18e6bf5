"""Cross-source reads (tables.cross_source): the watermark rule, markers, and
reads made online (interleaved with the log, only when final) equal to the
offline ones (the whole log first) bit for bit, and to the pandas oracle."""
from __future__ import annotations

import json
import math
from typing import Any

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tables import dsl
from tables.cross_source import CrossLog
from tables.dsl import FeatureView, Source
from tables.log_record import LogRecord, watermark_headers
from tables.partitioning import key_partition
from tests import oracle

BASE = 1_356_998_400_000  # 2013-01-01T00:00Z
HOUR = 3_600_000
PARTITIONS = 3
SOURCE = Source(name="s", key="k", fields={"event_id": "str", "event_time": "time", "k": "str", "g": "str",
                                           "v": "float"}, lateness="1h")
BY_K = FeatureView("by_k", 1, SOURCE, "k", [dsl.count(window="2h"), dsl.mean("v", window="2h"), dsl.last("v")])
BY_G = FeatureView("by_g", 1, SOURCE.keyed_by("g"), "g", [dsl.count(window="3h"), dsl.sum("v", window="3h"),
                                                           dsl.max("v", window="1h"), dsl.last("v")])


def event(i: int, k: str, g: str, t: int, v: float) -> dict[str, Any]:
    return {"event_id": f"e{i}", "event_time": t, "k": k, "g": g, "v": v}


def records(events: list[dict[str, Any]]) -> list[LogRecord]:
    """The events in publish order, each in its key's partition."""
    offsets = [0] * PARTITIONS
    out = []
    for e in events:
        p = key_partition(e["k"], PARTITIONS)
        out.append(LogRecord(p, offsets[p], json.dumps(e).encode()))
        offsets[p] += 1
    return out


def new_log() -> CrossLog:
    return CrossLog(SOURCE, [], [BY_K, BY_G], PARTITIONS, 64 * 1024)


def marker(partition: int, offset: int, at_ms: int) -> LogRecord:
    return LogRecord.of(partition, offset, None, watermark_headers(at_ms))


def test_watermark_is_newest_minus_lateness_and_final_is_strictly_past_it() -> None:
    log = new_log()
    p = key_partition("a", PARTITIONS)
    assert not log.final("by_k", "a", BASE)  # nothing known yet
    log.feed(records([event(0, "a", "x", BASE + 2 * HOUR, 1.0)])[0])
    assert log.watermark(p) == BASE + HOUR
    assert log.final("by_k", "a", BASE + HOUR - 1)
    # an event at exactly newest - L is still accepted, and a read as of T counts events at T
    assert not log.final("by_k", "a", BASE + HOUR)
    assert not log.final("by_g", "x", BASE)  # keyed by another entity: every partition matters


def test_marker_raises_an_idle_partition_and_a_broken_promise_is_not_read() -> None:
    log = new_log()
    p = key_partition("a", PARTITIONS)
    log.feed(marker(p, 0, BASE + 5 * HOUR))
    assert log.watermark(p) == BASE + 5 * HOUR and log.final("by_k", "a", BASE + 5 * HOUR - 1)
    log.feed(LogRecord(p, 1, json.dumps(event(1, "a", "x", BASE + HOUR, 7.0)).encode()))  # earlier than promised
    assert log.broken == 1
    assert log.read("by_k", "a", BASE + 2 * HOUR)["count_2h"] == 0
    for q in range(PARTITIONS):
        log.feed(marker(q, 10, BASE + 9 * HOUR))
    assert log.final("by_g", "x", BASE + 9 * HOUR - 1) and not log.final("by_g", "x", BASE + 9 * HOUR)


@st.composite
def streams(draw: Any) -> list[dict[str, Any]]:
    n = draw(st.integers(1, 60))
    out = []
    t = BASE
    for i in range(n):
        t += draw(st.integers(0, 40 * 60_000))
        jitter = draw(st.sampled_from([0, 0, 0, -10 * 60_000, -50 * 60_000, -3 * HOUR]))  # out of order, late
        out.append(event(i, draw(st.sampled_from("abcd")), draw(st.sampled_from("xy")), t + jitter,
                         draw(st.sampled_from([1.0, 2.5, -3.0, 0.1]))))
    # a repeated event: a duplicate, not applied twice
    if draw(st.booleans()):
        out.append(dict(out[draw(st.integers(0, n - 1))]))
    return out


def close(a: Any, b: Any) -> bool:
    if a is None or b is None or (isinstance(a, float) and math.isnan(a)):
        return (a is None or math.isnan(a)) and (b is None or (isinstance(b, float) and math.isnan(b)))
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams(), st.lists(st.tuples(st.sampled_from(["by_k", "by_g"]), st.sampled_from("abcdxy"),
                                     st.integers(-HOUR, 30 * HOUR)), min_size=1, max_size=10))
def test_final_reads_online_equal_offline_and_the_oracle(events: list[dict[str, Any]],
                                                         asks: list[tuple[str, str, int]]) -> None:
    logged = records(events) + [marker(p, 10_000, BASE + 40 * HOUR) for p in range(PARTITIONS)]
    online = new_log()
    served: list[tuple[str, str, int, dict[str, Any]]] = []
    pending = list(asks)
    for record in logged:  # reads interleaved with the log, each as soon as it is final
        online.feed(record)
        for ask in list(pending):
            ref, entity, offset = ask
            if online.final(ref, entity, BASE + offset):
                served.append((ref, entity, BASE + offset, online.read(ref, entity, BASE + offset)))
                pending.remove(ask)
    assert not pending  # the closing markers made every read final
    offline = new_log().feed_all(logged)
    applied = pd.DataFrame(
        sorted(({**e.record, "time_ms": e.time_ms, "_p": e.partition, "_o": e.offset}
                for e in {id(e): e for evs in offline.events.values() for e in evs}.values()),
               key=lambda r: (r["time_ms"], r["_p"], r["_o"])),
        columns=["event_id", "k", "g", "v", "time_ms", "_p", "_o"])
    for ref, entity, at, values in served:
        assert values == offline.read(ref, entity, at)  # bit for bit
        view = BY_K if ref == "by_k" else BY_G
        want = oracle.as_of(applied.drop_duplicates("event_id"), oracle.specs_of(view), view.entity, entity, at)
        for name, value in want.items():
            assert close(values[name], value), (ref, entity, at, name, values[name], value)

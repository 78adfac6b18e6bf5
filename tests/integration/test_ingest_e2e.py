"""Real flights through a real worker on a real broker: every record is
accounted for, malformed ones land in the DLQ with the right reason, and the
features served equal an independent pandas computation."""
from __future__ import annotations

import asyncio
import base64
import math
from typing import Any

import pandas as pd
import pytest

from dev_tooling import flights_data
from kafka_plumbing.producer import encode, produce, produce_raw
from tables.definitions import load as load_definitions
from tests import oracle
from tests.integration.conftest import Worker, consume_all, consume_until
from tests.integration.noise import iso, malformed

LIMIT = 3000
DUPLICATES = 20
LATE = 5


@pytest.fixture(scope="module")
def run(worker: Worker) -> dict[str, Any]:
    settings = worker.settings
    definitions = load_definitions(settings.features_module)
    by_source = flights_data.load_events(limit=LIMIT, progress=False)
    total = sum(len(v) for v in by_source.values())
    asyncio.run(produce(settings, definitions.key_fields(), flights_data.iter_interleaved(by_source), total, progress=False))

    departures = by_source["departures"]
    bad = malformed(departures[-1])
    last_ms = flights_data.event_time_ms(departures[-1])
    late = [
        {**departures[-1], "event_id": f"late-{i}", "event_time": iso(last_ms - 2 * 3600_000 - i * 60_000)}
        for i in range(LATE)
    ]
    dups = departures[-DUPLICATES:]
    raw = [(k.encode(), payload) for k, payload, _ in bad]
    raw += [(e["origin"].encode(), encode(e)) for e in late]
    raw += [(e["origin"].encode(), encode(e)) for e in dups]
    asyncio.run(produce_raw(settings, settings.topics.events("departures"), raw))

    sent_departures = len(departures) + len(raw)
    counts = worker.wait_for("departures", sent_departures)
    for source in ("arrivals", "weather"):
        worker.wait_for(source, len(by_source[source]))
    return {
        "by_source": by_source,
        "bad": bad,
        "late": late,
        "counts": counts,
        "sent_departures": sent_departures,
        "definitions": definitions,
    }


def departures_dlq(worker: Worker, expected: int) -> list[dict]:
    records = consume_until(worker.settings, worker.settings.topics.dlq,
                            lambda rs: sum(r["source"] == "departures" for r in rs) >= expected)
    return [r for r in records if r["source"] == "departures"]


def test_every_record_is_accounted_for(worker: Worker, run: dict[str, Any]) -> None:
    counts = run["counts"]
    assert counts["applied"] == len(run["by_source"]["departures"]) == LIMIT
    assert counts["invalid"] == len(run["bad"]) >= 30
    assert counts["late"] == LATE
    assert counts["duplicate"] == DUPLICATES
    dlq = departures_dlq(worker, counts["invalid"] + counts["late"])
    assert run["sent_departures"] == counts["applied"] + len(dlq) + counts["duplicate"]
    for source in ("arrivals", "weather"):
        assert worker.counts(source) == {
            "applied": len(run["by_source"][source]), "late": 0, "duplicate": 0, "invalid": 0,
        }


def test_dlq_holds_each_malformed_record_with_reason_and_position(worker: Worker, run: dict[str, Any]) -> None:
    topic = worker.settings.topics.events("departures")
    dlq = departures_dlq(worker, len(run["bad"]) + LATE)
    by_original = {}
    for record in dlq:
        by_original.setdefault(base64.b64decode(record["original_b64"]), []).append(record)
    for _, payload, reason in run["bad"]:
        [record] = by_original[payload]
        assert record["reason"] == reason, (payload[:80], record)
        assert record["topic"] == topic and record["detail"]
        assert isinstance(record["partition"], int) and isinstance(record["offset"], int)
    for event in run["late"]:
        [record] = by_original[encode(event)]
        assert record["reason"] == "late"

    # The recorded position really points at the original bytes in the log.
    log = consume_all(worker.settings, topic)
    at = {(m.partition, m.offset): m.value for m in log}
    for record in dlq:
        assert at[(record["partition"], record["offset"])] == base64.b64decode(record["original_b64"])


def _close(got: Any, want: Any) -> bool:
    if got is None or want is None:
        return got is None and want is None
    if isinstance(want, str):
        return got == want
    return math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-9)


def test_served_features_equal_pandas_oracle(worker: Worker, run: dict[str, Any]) -> None:
    view = run["definitions"].views["origin_traffic"]
    specs = oracle.specs_of(view)
    served = consume_until(worker.settings, worker.settings.topics.features("departures"), lambda rs: len(rs) >= LIMIT)
    assert len(served) == LIMIT
    served_by_id = {r["event_id"]: r for r in served}

    events = pd.DataFrame(run["by_source"]["departures"])
    events["time_ms"] = events.event_time.map(flights_data.event_time_ms)
    expected = oracle.per_event(events, specs, "origin", view.source.lateness_ms)
    checked = 0
    for event_id, want in zip(events.event_id, expected):
        got = served_by_id[event_id]["features"]["origin_traffic"]
        assert served_by_id[event_id]["versions"]["origin_traffic"] == view.version
        for spec in specs:
            assert _close(got[spec.name], want[spec.name]), (event_id, spec.name, got[spec.name], want[spec.name])
            checked += 1
    assert checked == LIMIT * len(specs)


@pytest.mark.parametrize("airport", ["EWR", "JFK", "LGA"])
def test_http_current_values_equal_pandas_oracle(worker: Worker, run: dict[str, Any], airport: str) -> None:
    view = run["definitions"].views["origin_traffic"]
    status, body = worker.get(f"/features/origin_traffic/{airport}")
    assert status == 200, body
    assert body["version"] == view.version and body["entity"] == airport
    events = pd.DataFrame(run["by_source"]["departures"])
    events["time_ms"] = events.event_time.map(flights_data.event_time_ms)
    # "Current" = at the partition's stream time; every applied event is <= it.
    assert body["as_of_ms"] >= events[events.origin == airport].time_ms.max()
    want = oracle.as_of(events, oracle.specs_of(view), "origin", airport, body["as_of_ms"])
    for name, value in want.items():
        assert _close(body["features"][name], value), (airport, name, body["features"][name], value)


def test_http_errors_are_json_4xx(worker: Worker) -> None:
    status, body = worker.get("/features/origin_traffic/NOPE")
    assert status == 404 and body["error"] == "unknown_entity"
    status, body = worker.get("/features/no_such_view/JFK")
    assert status == 404 and body["error"] == "unknown_view"
    status, body = worker.get("/no/such/route")
    assert status == 404 and set(body) == {"error", "detail"}
    status, body = worker.get("/healthz")
    assert status == 200 and body["ready"] is True
    for internal in ("/router/", "/table/", "/router/external/"):  # Faust's topology and raw-state pages are off
        status, body = worker.get(internal)
        assert status == 404 and body["error"] == "not_found", (internal, status, body)


def test_http_as_of_reads_equal_the_training_set_rule(worker: Worker, run: dict[str, Any]) -> None:
    view = run["definitions"].views["origin_traffic"]
    events = pd.DataFrame(run["by_source"]["departures"])
    events["time_ms"] = events.event_time.map(flights_data.event_time_ms)
    last = int(events.time_ms.max())
    answered = 0
    for airport in ("EWR", "JFK", "LGA"):
        for back_min in (0, 7, 20, 33, 50):
            at = last - back_min * 60_000
            status, body = worker.get(f"/features/origin_traffic/{airport}?as_of={iso(at)}")
            assert status == 200, body
            assert body["as_of_ms"] == at and body["version"] == view.version
            want = oracle.as_of(events, oracle.specs_of(view), "origin", airport, at)
            assert set(body["features"]) | set(body["unavailable"]) == set(want)
            for name, value in body["features"].items():
                assert _close(value, want[name]), (airport, at, name, value, want[name])
                answered += 1
    assert answered > 50
    status, body = worker.get("/features/origin_traffic/JFK?as_of=yesterday")
    assert status == 400 and body["error"] == "bad_as_of"
    status, body = worker.get(f"/features/origin_traffic/JFK?as_of={iso(last - 30 * 86_400_000)}")
    assert status == 409 and body["error"] == "outside_retained_history"

"""The client without a worker: what it retries and what it does not, and
``publish`` refusing events before anything reaches Kafka."""
from __future__ import annotations

import random

import httpx
import pytest

from app.client import Backoff, Client, FeatureStoreError, PublishRejected
from kafka_plumbing.settings import load

FAST = Backoff(attempts=3, base_s=0.001, max_s=0.001, rng=random.Random(0))
BODY = {"view": "v", "version": 1, "entity": "e", "entity_field": "f", "features": {"x": 1}, "as_of": None,
        "as_of_ms": None, "last_event_time": None, "events_applied": 3, "serving_version": 1}


def client(answers: list[httpx.Response | Exception]) -> tuple[Client, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    fs = Client("http://worker", backoff=FAST)
    fs.http = httpx.Client(base_url="http://worker", transport=httpx.MockTransport(handler))
    return fs, seen


def test_a_503_and_a_lost_connection_are_retried() -> None:
    fs, seen = client([httpx.Response(503, json={"error": "not_ready", "detail": "d"}),
                       httpx.ConnectError("refused"), httpx.Response(200, json=BODY)])
    assert fs.get_features("v", "a/b").features == {"x": 1}
    assert len(seen) == 3 and seen[0].url.raw_path == b"/features/v/a%2Fb"


def test_a_4xx_is_not_retried_and_the_last_failure_is_raised() -> None:
    fs, seen = client([httpx.Response(404, json={"error": "unknown_entity", "detail": "d"})])
    with pytest.raises(FeatureStoreError) as failed:
        fs.get_features("v", "e")
    assert (failed.value.status, failed.value.error, len(seen)) == (404, "unknown_entity", 1)
    fs, seen = client([httpx.ConnectError("refused")] * 3)
    with pytest.raises(FeatureStoreError) as failed:
        fs.get_features("v", "e")
    assert (failed.value.status, failed.value.error, len(seen)) == (0, "unreachable", 3)


def test_batches_are_split_and_answered_in_order() -> None:
    rows = [f"e{i}" for i in range(5)]
    answers = [httpx.Response(200, json={"rows": [{"row": r, "views": {}, "errors": {}} for r in part]})
               for part in (rows[:2], rows[2:4], rows[4:])]
    fs, seen = client(answers)
    assert [b.row for b in fs.get_features_batch(rows, ["v"], batch_rows=2)] == rows
    assert len(seen) == 3


def test_publish_refuses_invalid_events_before_connecting() -> None:
    fs = Client("http://worker", settings=load(), features="tables.flights")
    good = {"event_id": "1", "event_time": "2013-01-01T10:00:00Z", "flight_id": "1", "origin": "JFK", "dest": "LAX",
            "carrier": "AA", "dep_delay": 1.0}
    with pytest.raises(PublishRejected) as refused:
        fs.publish("departures", [good, {**good, "carrier": None}, {**good, "dep_delay": float("nan")}])
    assert [(r.index, r.reason) for r in refused.value.rejected] == [(1, "missing_field"), (2, "invalid_json")]
    with pytest.raises(KeyError):
        fs.publish("no_such_source", [good])

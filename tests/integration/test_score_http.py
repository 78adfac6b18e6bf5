"""``POST /score`` over HTTP against a real worker and a real H2O model: it
serves an event exactly what the stream serves it and scores it through the
same path, so its answer equals, bit for bit, the stream's prediction for that
event, and H2O's own ``predict`` on the same row.

``POST /score`` reads history only and does not apply the event, so an event
is scored over HTTP while the worker has applied exactly the events before it
on its entity: the stream is quiet, and the event is the next one of its
entity.  The slice after the training data is sent in rounds, each a run of
events with distinct entities in log order: every event of a round is scored
over HTTP, then the round is produced and the stream's predictions compared."""
from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from typing import Any, Iterator

import pytest

from dev_tooling import flights_data
from kafka_plumbing.producer import encode, produce
from tables.definitions import load as load_definitions
from tests.conftest import SUMMARY_LINES
from tests.integration.conftest import Worker, consume_all, decode
from tests.integration.test_scoring_e2e import h2o_predict, models, publish  # noqa: F401  (the models fixture)

TRAIN_DEPARTURES = 8_000  # the same slice as test_scoring_e2e: its models fixture trains on it
ROUND_EVENTS = 45  # events of the next slice scored over HTTP, then through the stream


def post(worker: Worker, path: str, body: bytes) -> tuple[int, Any]:
    request = urllib.request.Request(worker.url + path, data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def rounds(events: list[dict[str, Any]], key: str) -> Iterator[list[dict[str, Any]]]:
    """Consecutive runs of events whose entities differ, in log order."""
    current: list[dict[str, Any]] = []
    for event in events:
        if any(e[key] == event[key] for e in current):
            yield current
            current = []
        current.append(event)
    if current:
        yield current


def stream_predictions(worker: Worker, ids: set[str]) -> dict[str, dict[str, Any]]:
    """The stream's primary predictions of ``ids``, once every one is there."""
    deadline = time.monotonic() + 120
    while True:
        found = {p["event_id"]: p for p in decode(consume_all(worker.settings, worker.settings.topics.predictions))
                 if p["event_id"] in ids}
        if len(found) == len(ids) or time.monotonic() > deadline:
            assert len(found) == len(ids), f"{len(found)} of {len(ids)} predictions; log {worker.handle.log_path}"
            return found
        time.sleep(0.5)


def test_score_without_a_deployed_model_is_409_and_bad_bodies_are_4xx(worker: Worker) -> None:
    event = flights_data.load_events(limit=1, skip=TRAIN_DEPARTURES, sources=("departures",), progress=False)
    status, body = post(worker, "/score", encode(event["departures"][0]))
    assert (status, body["error"]) == (409, "no_model"), body
    for raw, code in ((b"{not json", 400), (b"[]", 400), (json.dumps({"event_id": "x"}).encode(), 400), (b"", 400)):
        status, body = post(worker, "/score", raw)
        assert status == code and set(body) == {"error", "detail"}, (raw, status, body)
    status, body = post(worker, "/score?source=nowhere", encode(event["departures"][0]))
    assert status == 404 and body["error"] == "unknown_source"


def test_score_over_http_equals_the_stream_and_h2o_predict(worker: Worker, models: dict[str, Any]) -> None:
    result = worker.cli("models", "deploy", "flight_delay", "1")
    assert result.returncode == 0, result.stdout + result.stderr
    settings = worker.settings
    definitions = load_definitions(settings.features_module)
    key = definitions.sources["departures"].key
    departures = flights_data.load_events(limit=ROUND_EVENTS, skip=TRAIN_DEPARTURES, sources=("departures",),
                                          progress=False)["departures"]
    sent = sum(worker.counts("departures").values())
    over_http: dict[str, dict[str, Any]] = {}
    for batch in rounds(departures, key):
        worker.wait_for("departures", sent)  # quiet: every earlier event has its outcome
        for event in batch:
            status, body = post(worker, "/score", encode(event))
            assert status == 200, body
            over_http[event["event_id"]] = body
        asyncio.run(produce(settings, definitions.key_fields(), [("departures", e) for e in batch], len(batch),
                            progress=False))
        sent += len(batch)
    streamed = stream_predictions(worker, set(over_http))

    assert len(over_http) == ROUND_EVENTS
    for event_id, http in over_http.items():
        stream = streamed[event_id]
        assert (http["topic"], http["partition"], http["offset"]) == (None, None, None)
        assert stream["offset"] is not None
        same = ("event_id", "source", "event_time", "event_time_ms", "model", "model_version", "role", "label",
                "probabilities", "labels", "unknown_levels", "features", "view_versions")
        assert {k: http[k] for k in same} == {k: stream[k] for k in same}, event_id
    assert any(p["features"]["origin_traffic.count_1h"] for p in over_http.values())  # history was served

    rows = list(over_http.values())
    reference = h2o_predict(models, 1, [p["features"] for p in rows])
    diffs = [abs(p["probabilities"][1] - float(r)) for p, r in zip(rows, reference["p1"])]
    assert max(diffs) <= 1e-9, max(diffs)
    assert [p["label"] for p in rows] == [str(v) for v in reference["predict"]]
    SUMMARY_LINES.append(f"POST /score vs the stream: {len(rows)} events identical; vs H2O predict max |p1 diff| "
                         f"= {max(diffs):.3g}")


def test_openapi_describes_every_route(worker: Worker) -> None:
    status, spec = worker.get("/openapi.json")
    assert status == 200
    routes = {"/features/{view}/{entity}", "/features", "/score", "/models", "/models/{name}/deploy", "/views", "/stats",
              "/healthz", "/metrics", "/", "/console.js", "/console.css", "/console/data", "/openapi.json"}
    assert set(spec["paths"]) == routes
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            assert operation["responses"], (path, method)
            if method == "post":
                assert operation["requestBody"]["content"]["application/json"], path
    # every route answers where the description says it is
    for path in ("/", "/console.js", "/console.css"):  # not JSON
        with urllib.request.urlopen(worker.url + path, timeout=10) as response:
            assert response.status == 200, path
    for path in ("/views", "/stats", "/healthz", "/models", "/openapi.json", "/console/data"):
        assert worker.get(path)[0] == 200, path

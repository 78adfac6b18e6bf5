"""``POST /features`` and the Python client against a real broker and worker
(its read process serving, as by default): a batch answers each row and view
exactly as the single read does, now and as of a time; what it cannot answer
is said per row; the limits are 4xx; the README's client example runs."""
from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from datetime import datetime, timedelta
from typing import Any, Iterator
from urllib.parse import quote

import httpx
import pytest

from app.client import AsyncClient, Client, FeatureStoreError, PublishRejected
from dev_tooling import flights_data
from dev_tooling.processes import http_json
from kafka_plumbing.settings import Settings
from kafka_plumbing.topics import ensure_topics_sync
from tables.definitions import load as load_definitions
from tests.integration.conftest import Worker, running_worker

DEPARTURES = 1500
MAX_ROWS = 60
MAX_BODY = 64 * 1024
VIEWS = ["origin_traffic", "dest_arrivals", "carrier_arrivals", "plane_recent"]
README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture(scope="module")
def served(isolated: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Worker, list[dict]]]:
    """A worker with small batch limits, fed through the client's ``publish``; and the departures sent."""
    ensure_topics_sync(isolated, list(load_definitions(isolated.features_module).sources))
    run = running_worker(isolated, tmp_path_factory.mktemp("worker"), env={
        "FS_HTTP_BATCH_MAX_ROWS": str(MAX_ROWS), "FS_HTTP_MAX_BODY_BYTES": str(MAX_BODY)})
    worker = next(run)
    try:
        events = flights_data.load_events(limit=DEPARTURES, sources=("departures", "arrivals"), progress=False)
        with Client(worker.url, settings=isolated) as fs:
            for source in ("departures", "arrivals"):
                assert fs.publish(source, events[source]).sent == len(events[source])
        for source in ("departures", "arrivals"):
            worker.wait_for(source, len(events[source]))
        settle(worker)
        yield worker, events["departures"]
    finally:
        run.close()


def settle(worker: Worker) -> None:
    """Until the re-keyed logs (plane_recent's, carrier_arrivals') have caught up too:
    every source's counts unchanged for two seconds."""
    last: Any = None
    while (counts := worker.get("/stats")[1]) != last:
        last = counts
        time.sleep(2)


def post(worker: Worker, body: Any) -> tuple[int, Any]:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = httpx.post(worker.url + "/features", content=content, timeout=30)
    return response.status_code, response.json()


def single(worker: Worker, view: str, entity: str, as_of: str | None) -> tuple[int, Any]:
    query = "" if as_of is None else f"?as_of={quote(as_of)}"
    return http_json(f"{worker.url}/features/{view}/{quote(entity, safe='')}{query}")


def as_single(row: dict, view: str) -> tuple[int, Any]:
    """A batch row's answer for ``view`` in the shape of a single read's (status, body)."""
    if view in row["views"]:
        return 200, row["views"][view]
    error = dict(row["errors"][view])
    return error.pop("status"), error


def recent(departures: list[dict]) -> str:
    """20 minutes before the last departure sent: inside the history the busiest
    entities keep (their latest event time less the source's 1 h lateness)."""
    last = max(datetime.fromisoformat(e["event_time"]) for e in departures)
    return (last - timedelta(minutes=20)).isoformat()


def entity_rows(departures: list[dict], n: int) -> list[dict]:
    keys = ("origin", "dest", "carrier", "tailnum")
    rows = list({tuple(e[k] for k in keys): None for e in departures[::7] if all(e.get(k) for k in keys)})[:n]
    return [dict(zip(keys, row)) for row in rows]


@pytest.mark.parametrize("point_in_time", [False, True])
def test_a_batch_answers_every_row_as_the_single_reads_do(served: tuple[Worker, list[dict]], point_in_time: bool) -> None:
    worker, departures = served
    as_of = recent(departures) if point_in_time else None
    rows = entity_rows(departures, MAX_ROWS)
    assert len(rows) == MAX_ROWS
    status, body = post(worker, {"views": VIEWS, "rows": rows, "as_of": as_of})
    assert status == 200, body
    assert [r["row"] for r in body["rows"]] == rows  # request order
    statuses: dict[int, int] = {}
    for row, answered in zip(rows, body["rows"]):
        for view in VIEWS:
            entity = row[load_definitions(worker.settings.features_module).versions(view)[1].entity]
            got = as_single(answered, view)
            assert got == single(worker, view, entity, as_of), (view, entity)
            statuses[got[0]] = statuses.get(got[0], 0) + 1
    assert statuses.get(200, 0) >= len(rows), statuses  # answers compared, not only errors
    print(f"batch of {len(rows)} rows x {len(VIEWS)} views (as_of={as_of}) equals the single reads: {statuses}")


def test_the_clients_batch_equals_its_single_reads_sync_and_async(served: tuple[Worker, list[dict]]) -> None:
    worker, departures = served
    rows = [{"origin": r["origin"], "carrier": r["carrier"]} for r in entity_rows(departures, 2 * MAX_ROWS)]
    views = ["origin_traffic", "carrier_arrivals"]
    as_of = recent(departures)
    with Client(worker.url) as fs:
        batch = fs.get_features_batch(rows, views, as_of=as_of, batch_rows=MAX_ROWS)  # two requests
        assert [b.row for b in batch] == rows and all(b.complete for b in batch)
        for b in batch[:10]:
            assert b.vectors["origin_traffic"] == fs.get_features("origin_traffic", b.row["origin"], as_of=as_of)
            assert b.vectors["carrier_arrivals"] == fs.get_features("carrier_arrivals", b.row["carrier"], as_of=as_of)

    async def read_async() -> list:
        async with AsyncClient(worker.url) as fs:
            return await fs.get_features_batch(rows, views, as_of=as_of, batch_rows=MAX_ROWS)

    assert asyncio.run(read_async()) == batch


def test_what_a_row_cannot_answer_is_said_per_row(served: tuple[Worker, list[dict]]) -> None:
    worker, _ = served
    status, body = post(worker, {"views": ["origin_traffic", "no_such_view"],
                                 "rows": ["JFK", {"carrier": "UA"}, "XXX", 42]})
    assert status == 200, body
    jfk, carrier_only, unknown, number = body["rows"]
    assert jfk["views"]["origin_traffic"]["entity"] == "JFK"
    assert jfk["errors"]["no_such_view"]["status"] == 404 and jfk["errors"]["no_such_view"]["error"] == "unknown_view"
    assert carrier_only["errors"]["origin_traffic"]["status"] == 400
    assert carrier_only["errors"]["origin_traffic"]["error"] == "missing_entity"
    assert unknown["errors"]["origin_traffic"]["error"] == "unknown_entity"
    assert number["row"] == "42" and number["errors"]["origin_traffic"]["error"] == "unknown_entity"
    assert body["rows_with_errors"] == 4
    status, body = post(worker, {"views": ["origin_traffic"], "rows": ["JFK"], "as_of": "2012-06-01T00:00:00Z"})
    assert (status, body["rows"][0]["errors"]["origin_traffic"]["status"]) == (200, 409)  # before the history kept


@pytest.mark.parametrize(("body", "status", "error"), [
    ({"views": ["origin_traffic"], "rows": ["JFK"] * (MAX_ROWS + 1)}, 413, "too_many_rows"),
    ({"views": [f"v{i}" for i in range(21)], "rows": ["JFK"]}, 413, "too_many_views"),
    (json.dumps({"views": ["origin_traffic"], "rows": ["J" * MAX_BODY]}).encode(), 413, "payload_too_large"),
    ({"views": ["origin_traffic"], "rows": ["JFK"], "as_of": "yesterday"}, 400, "bad_as_of"),
    ({"views": ["origin_traffic"], "rows": ["JFK"], "as_of": "2013-01-01T10:00:00"}, 400, "bad_as_of"),
    ({"views": [], "rows": ["JFK"]}, 400, "bad_request"),
    ({"views": ["origin_traffic"], "rows": [[1]]}, 400, "bad_request"),
    ({"views": ["origin_traffic"], "rows": [{"origin": True}]}, 400, "bad_request"),
    (b"[not json", 400, "bad_request"),
    (b'["a list"]', 400, "bad_request"),
])
def test_limits_and_malformed_requests_are_json_4xx(served: tuple[Worker, list[dict]], body: Any, status: int,
                                                    error: str) -> None:
    got_status, got = post(served[0], body)
    assert (got_status, got["error"]) == (status, error), got
    assert got["detail"]


def test_the_client_surfaces_refusals(served: tuple[Worker, list[dict]]) -> None:
    worker, departures = served
    with Client(worker.url, settings=worker.settings) as fs:
        with pytest.raises(FeatureStoreError) as refused:
            fs.get_features_batch(["JFK"] * (MAX_ROWS + 1), ["origin_traffic"], batch_rows=MAX_ROWS + 1)
        assert (refused.value.status, refused.value.error) == (413, "too_many_rows")
        with pytest.raises(FeatureStoreError) as missing:
            fs.get_features("origin_traffic", "XXX")
        assert (missing.value.status, missing.value.error) == (404, "unknown_entity")
        before = worker.counts("departures")
        good = departures[-1]
        with pytest.raises(PublishRejected) as rejected:
            fs.publish("departures", [good, {**good, "dep_delay": None}, {**good, "event_time": "soon"}])
        assert [(r.index, r.reason) for r in rejected.value.rejected] == [(1, "missing_field"), (2, "bad_timestamp")]
    assert worker.counts("departures") == before  # nothing of the refused batch was sent


def readme_example() -> str:
    found = re.search(r"<!-- client-example -->\s*```python\n(.*?)```", README.read_text(), re.S)
    assert found, "README.md has the client example block"
    return found.group(1)


def test_the_readme_client_example_runs(served: tuple[Worker, list[dict]]) -> None:
    worker, _ = served
    before = worker.counts("departures")["applied"]
    result = subprocess.run([sys.executable, "-c", readme_example()], capture_output=True, text=True, timeout=120,
                            env={**os.environ, **worker.settings.as_env(), "FEATURESTREAM_URL": worker.url})
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "refused, nothing sent: [(1, 'wrong_type')]" in out and "sent: 1" in out, out
    assert "score: 409 no_model" in out, out
    print(out)
    assert _eventually(lambda: worker.counts("departures")["applied"] == before + 1), "the one event was applied"


def _eventually(check: Any, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.3)
    return False

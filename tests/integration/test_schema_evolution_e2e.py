"""Schema evolution against the real broker: version 1 events (no header, as a
plain JSON producer sends them), then version 2 events (published through the
client, which sets ``fs-schema``), and one event of a version the definitions
do not know.  A worker on the version 2 definitions serves exactly what
``featurestream replay --from-topic`` computes, on the source and on its
re-keyed log, and the unknown version is in the dead-letter topic."""
from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator

import pytest

from app.client.publish import publish
from kafka_plumbing.producer import produce_raw
from kafka_plumbing.settings import Settings
from kafka_plumbing.topics import ensure_topics_sync
from tables.definitions import load as load_definitions
from tables.log_record import SCHEMA_HEADER
from tables.validation import UNKNOWN_SCHEMA_VERSION
from tests.integration.conftest import Worker, consume_until, running_worker
from tests.integration.flights_stream import assert_equals_replay

MODULE = "tests.integration.features_schema"
SITES = ("north", "south", "east", "west", "pier")
T0 = 1_700_000_000_000
V1_EVENTS, V2_EVENTS = 300, 300


def _v1(i: int) -> dict[str, Any]:
    return {"event_id": f"v1-{i}", "event_time": T0 + i * 20_000, "site": SITES[i % 5], "zone": f"z{i % 3}",
            "temp": 10.0 + (i % 7), "count": i % 4, "firmware": "1.0"}


def _v2(i: int) -> dict[str, Any]:
    return {"event_id": f"v2-{i}", "event_time": T0 + (V1_EVENTS + i) * 20_000, "site": SITES[i % 5],
            "zone": f"z{i % 3}", "temp_c": 20.0 + (i % 5), "count": 0.5 * (i % 3), "unit": "K" if i % 2 else "C"}


@pytest.fixture(scope="module")
def settings(isolated: Settings) -> Settings:
    settings = replace(isolated, features_module=MODULE)
    ensure_topics_sync(settings, list(load_definitions(MODULE).sources))
    return settings


@pytest.fixture(scope="module")
def worker(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    topic = settings.topics.events("readings")
    v1 = [(e["site"].encode(), json.dumps(e).encode()) for e in map(_v1, range(V1_EVENTS))]
    asyncio.run(produce_raw(settings, topic, v1))  # no header: version 1
    asyncio.run(publish(load_definitions(MODULE), settings, "readings", [_v2(i) for i in range(V2_EVENTS)]))
    future = {**_v2(V2_EVENTS), "event_id": "from-the-future"}
    asyncio.run(produce_raw(settings, topic, [(b"north", json.dumps(future).encode())],
                            headers=[(SCHEMA_HEADER, b"3")]))
    yield from running_worker(settings, tmp_path_factory.mktemp("worker"))


def test_v1_and_v2_events_serve_what_the_replay_computes(worker: Worker, tmp_path: Path) -> None:
    counts = worker.wait_for("readings", V1_EVENTS + V2_EVENTS + 1)
    assert counts == {"applied": V1_EVENTS + V2_EVENTS, "late": 0, "duplicate": 0, "invalid": 1}
    assert_equals_replay(worker, "readings", tmp_path)
    # Forwarded with their fs-schema header: read as version 1, the v2 events would be rejected there.
    zone_counts = worker.wait_for("readings.by_zone", V1_EVENTS + V2_EVENTS)
    assert zone_counts == {"applied": V1_EVENTS + V2_EVENTS, "late": 0, "duplicate": 0, "invalid": 0}
    assert_equals_replay(worker, "readings.by_zone", tmp_path)

    # By hand, not by the engine: the upgraded v1 values count under their new names and defaults.
    events = [*map(_v1, range(V1_EVENTS)), *map(_v2, range(V2_EVENTS))]
    for site in SITES:
        mine = [e for e in events if e["site"] == site]
        status, body = worker.get(f"/features/site_stats/{site}")
        assert status == 200, body
        values = body["features"]
        assert values["count"] == len(mine)
        assert values["sum_count"] == pytest.approx(sum(e["count"] for e in mine))
        assert values["mean_temp_c"] == pytest.approx(sum(e.get("temp_c", e.get("temp")) for e in mine) / len(mine))
        assert values["distinct_count_unit"] == 2  # "C" (v1's default, and v2) and "K"


def test_the_unknown_version_is_a_dead_letter(worker: Worker) -> None:
    worker.wait_for("readings", V1_EVENTS + V2_EVENTS + 1)
    letters = consume_until(worker.settings, worker.settings.topics.dlq,
                            lambda records: any(r["reason"] == UNKNOWN_SCHEMA_VERSION for r in records))
    mine = [r for r in letters if r["reason"] == UNKNOWN_SCHEMA_VERSION]
    assert len(mine) == 1 and len(letters) == 1, letters
    assert mine[0]["source"] == "readings" and "says 3" in mine[0]["detail"]
    assert json.loads(base64.b64decode(mine[0]["original_b64"]))["event_id"] == "from-the-future"

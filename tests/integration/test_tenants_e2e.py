"""Tenants against a real worker: a tenant's token reads and changes only the
sources, views and models its tenant owns; other tenants' names answer 404,
exactly as names that do not exist."""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import replace
from typing import Any

import pytest

from kafka_plumbing.settings import Settings
from tests.integration.conftest import Worker, consume_all, decode

# acme owns the departures (their views, their re-keyed log's views, the model); wx the weather.
TENANTS = "acme:departures;wx:weather"
TOKENS = "ann@acme:read,score:acme-secret-1;wes@wx:read,score,admin:wx-secret-1;root:admin:root-secret-1"


@pytest.fixture(scope="module")
def isolated(isolated: Settings) -> Settings:
    return replace(isolated, tenants=TENANTS, tokens=TOKENS)


def call(worker: Worker, path: str, token: str | None, body: Any = None) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(worker.url + path, data=data, method="GET" if body is None else "POST",
                                     headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_with_tenants_reads_need_a_token(worker: Worker) -> None:
    status, body = call(worker, "/features/origin_traffic/EWR", None)
    assert (status, body["error"]) == (401, "unauthorized")
    assert call(worker, "/views", None)[0] == 401


def test_a_tenant_sees_its_own_views_and_not_the_others(worker: Worker) -> None:
    status, body = call(worker, "/features/origin_traffic/EWR", "wx-secret-1")
    assert (status, body["error"]) == (404, "unknown_view")
    assert body["detail"].endswith("known: ['origin_weather']"), body  # other tenants' names stay unknown
    status, body = call(worker, "/features/origin_traffic/EWR", "acme-secret-1")
    assert body.get("error") != "unknown_view" and status not in (401, 403), body
    views = {v["ref"] for v in call(worker, "/views", "wx-secret-1")[1]["views"]}
    assert views == {"origin_weather"}
    acme = {v["ref"] for v in call(worker, "/views", "acme-secret-1")[1]["views"]}
    assert {"origin_traffic", "plane_recent"} <= acme and not acme & {"origin_weather", "carrier_arrivals"}
    everything = {v["ref"] for v in call(worker, "/views", "root-secret-1")[1]["views"]}
    assert everything >= acme | views


def test_a_tenant_cannot_see_score_or_deploy_another_tenants_model(worker: Worker) -> None:
    assert [m["name"] for m in call(worker, "/models", "wx-secret-1")[1]["models"]] == []
    # flight_delay_xs scores departures too, but reads wx's weather: not acme's model.
    assert [m["name"] for m in call(worker, "/models", "acme-secret-1")[1]["models"]] == ["flight_delay"]
    assert {m["name"] for m in call(worker, "/models", "root-secret-1")[1]["models"]} >= {"flight_delay",
                                                                                        "flight_delay_xs"}
    status, body = call(worker, "/score?source=departures", "wx-secret-1", {"event_id": "x"})
    assert (status, body["error"]) == (404, "unknown_source")
    status, body = call(worker, "/models/flight_delay/deploy", "wx-secret-1", {"version": 1})
    assert (status, body["error"]) == (404, "unknown_model")
    deadline = time.monotonic() + 30
    while True:
        audit = [a for a in decode(consume_all(worker.settings, worker.settings.topics.audit))
                 if a.get("by") == "wes" and a.get("reason") == "unknown_model"]
        if audit or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert audit and audit[0]["target"] == "flight_delay" and audit[0]["result"] == "refused"


def test_the_console_shows_a_tenant_its_own_sources(worker: Worker) -> None:
    assert call(worker, "/console/data", None)[0] == 401
    status, wx = call(worker, "/console/data", "wx-secret-1")
    assert status == 200 and [s["source"] for s in wx["sources"]] == ["weather"]
    acme = {s["source"] for s in call(worker, "/console/data", "acme-secret-1")[1]["sources"]}
    assert "departures" in acme and "departures.by_tailnum" in acme and not acme & {"weather", "arrivals"}

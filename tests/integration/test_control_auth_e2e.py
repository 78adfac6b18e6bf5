"""Signed control records and scoped tokens against the real broker and a real
worker: records written straight to the control and deployments topics
without the key are refused (and audited) or ignored, scoring goes on, a
signed deploy still works, and the HTTP write route wants an admin token."""
from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from dataclasses import replace
from typing import Any, Callable

import pytest

from agents.control_client import issue
from agents.control_records import FILLING, FillStatus, ModelDeployment, encode, fill_key
from kafka_plumbing.producer import produce_raw
from kafka_plumbing.settings import Settings
from kafka_plumbing.signing import CONTROL, DEPLOYMENTS, Signer
from models.h2o_session import h2o_session
from models.registry import Registry
from models.train import TrainConfig, train
from models.training_set import model_frame
from tables.definitions import load as load_definitions
from tables.model_spec import model_specs
from tables.processor import forward_key
from tests.integration.conftest import Worker, consume_all, decode
from tests.integration.test_scoring_e2e import publish, wait_predictions

MODEL = "flight_delay"
TRAIN_DEPARTURES = 2_000
TOKENS = "reader:read:reader-secret-1;ops:admin:ops-secret-1"


@pytest.fixture(scope="module")
def isolated(isolated: Settings) -> Settings:
    """The module's worker holds scoped tokens (and the session's control key)."""
    return replace(isolated, tokens=TOKENS)


def post(worker: Worker, path: str, body: dict[str, Any], token: str | None = None) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(worker.url + path, data=json.dumps(body).encode(), method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def audits_until(worker: Worker, enough: Callable[[list[dict]], bool], timeout: float = 30) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        records = [a for a in decode(consume_all(worker.settings, worker.settings.topics.audit))
                   if a.get("type") == "command"]
        if enough(records) or time.monotonic() > deadline:
            return records
        time.sleep(0.5)


def rejected_metric(worker: Worker, topic: str) -> float:
    with urllib.request.urlopen(worker.url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    prefix = f'featurestream_control_rejected_total{{topic="{topic}"}} '
    return sum(float(line[len(prefix):]) for line in text.splitlines() if line.startswith(prefix))


def test_forged_control_records_are_refused_and_audited_as_forged(worker: Worker) -> None:
    settings = worker.settings
    command = {"model": MODEL, "action": "deploy", "primary": 1, "by": "mallory", "id": "forged-1"}
    value = json.dumps(command).encode()
    wrong_key = Signer(b"w" * 40, "mallory").headers(CONTROL, MODEL.encode(), value)
    asyncio.run(produce_raw(settings, settings.topics.control, [(MODEL.encode(), value)]))
    asyncio.run(produce_raw(settings, settings.topics.control, [(MODEL.encode(), value)], headers=wrong_key))
    forged = audits_until(worker, lambda r: len([a for a in r if (a.get("command") or {}).get("id") == "forged-1"]) >= 2)
    forged = [a for a in forged if (a.get("command") or {}).get("id") == "forged-1"]
    assert len(forged) == 2, forged
    for verdict in forged:
        assert (verdict["result"], verdict["by"], verdict["reason"]) == ("refused", "forged", "bad_signature"), verdict
        assert (verdict["action"], verdict["target"], verdict["state"]) == ("deploy", MODEL, None)
    assert rejected_metric(worker, "control") >= 2
    status, body = worker.get("/models")
    assert status == 200 and next(m for m in body["models"] if m["name"] == MODEL)["deployed"] is None


def test_http_deploy_needs_an_admin_token_and_refusals_are_audited(worker: Worker) -> None:
    status, body = post(worker, f"/models/{MODEL}/deploy", {"version": 1})
    assert (status, body["error"]) == (401, "unauthorized") and set(body) == {"error", "detail"}
    status, body = post(worker, f"/models/{MODEL}/deploy", {"version": 1}, token="not-a-token")
    assert (status, body["error"]) == (401, "unauthorized")
    status, body = post(worker, f"/models/{MODEL}/deploy", {"action": "rollback"}, token="reader-secret-1")
    assert (status, body["error"]) == (403, "forbidden") and "reader" in body["detail"]
    refused = audits_until(worker, lambda r: any(a.get("by") == "reader" for a in r))
    mine = [a for a in refused if a.get("reason") in ("unauthorized", "forbidden")]
    assert {(a["by"], a["reason"], a["target"]) for a in mine} == {
        ("anonymous", "unauthorized", MODEL), ("reader", "forbidden", MODEL)}
    assert any(a["by"] == "reader" and a["action"] == "rollback" for a in mine)


@pytest.fixture(scope="module")
def trained(worker: Worker) -> int:
    """A small model (version 1) trained on the first departures."""
    sent = publish(worker, 0, TRAIN_DEPARTURES)
    worker.wait_for("departures", sent["departures"])
    worker.wait_for("arrivals", sent["arrivals"])
    settings = worker.settings
    definitions = load_definitions(settings.features_module)
    spec = model_specs(definitions)[MODEL]
    numeric, categorical, feature_views = spec.feature_columns(definitions)
    frame = model_frame(settings, definitions, spec)
    frame = frame[frame["label"].notna()]
    with h2o_session() as _:
        config = TrainConfig(name=MODEL, label="label", time_column="event_time", numeric_features=numeric,
                             categorical_features=categorical, feature_views=feature_views, ntrees=3)
        mv = train(frame, config, Registry(settings.registry_dir), {"origin_traffic": 1}, progress=False)
    return mv.version


def test_signed_deploys_work_and_a_forged_deployment_is_ignored(worker: Worker, trained: int) -> None:
    settings = worker.settings
    status, body = post(worker, f"/models/{MODEL}/deploy", {"version": trained}, token="ops-secret-1")
    assert status == 202, body
    command_id = body["command"]["id"]
    verdicts = audits_until(worker, lambda r: any((a.get("command") or {}).get("id") == command_id for a in r))
    verdict = next(a for a in verdicts if (a.get("command") or {}).get("id") == command_id)
    assert (verdict["result"], verdict["by"]) == ("applied", "ops"), verdict

    # the command line signs as FS_ADMIN_NAME, whatever the command says about itself
    cli = asyncio.run(issue(replace(settings, admin_name="carol"), MODEL, "deploy", trained, by="mallory"))
    assert (cli.result, cli.by) == ("applied", "carol"), cli

    before = len(decode(consume_all(settings, settings.topics.predictions)))
    forged = encode(ModelDeployment(model=MODEL, primary=999, previous=trained))
    asyncio.run(produce_raw(settings, settings.topics.deployments, [(MODEL.encode(), forged)]))
    deadline = time.monotonic() + 30
    while rejected_metric(worker, "deployments") < 1 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert rejected_metric(worker, "deployments") >= 1
    status, body = worker.get("/models")
    assert next(m for m in body["models"] if m["name"] == MODEL)["deployed"]["primary"] == trained

    dlq_before = len(consume_all(settings, settings.topics.dlq))
    publish(worker, TRAIN_DEPARTURES, 300, sources=("departures",))
    after = wait_predictions(worker, before + 300)[before:]
    assert len(after) >= 300 and {p["model_version"] for p in after} == {trained}
    errors = [d for d in decode(consume_all(settings, settings.topics.dlq)[dlq_before:])
              if d.get("reason") == "scoring_error"]
    assert errors == []

    # the key's latest record is a verified one again, so compaction keeps that state, not the forgery
    signer = Signer(settings.control_key.encode(), "test")
    deadline = time.monotonic() + 30
    while True:
        latest = [m for m in consume_all(settings, settings.topics.deployments) if m.key == MODEL.encode()][-1]
        try:
            signer.verify(DEPLOYMENTS, latest.key, latest.value, latest.headers)
            break
        except ValueError:
            assert time.monotonic() < deadline, "the forged record is still the key's latest"
            time.sleep(0.5)
    assert json.loads(latest.value)["primary"] == trained


def test_a_forged_fill_record_does_not_make_a_view_answer_503(worker: Worker, trained: int) -> None:
    """``plane_recent`` reads the re-keyed log departures.by_tailnum: a fill record saying a
    departures partition does not feed it yet made the view answer 503 view_filling."""
    settings = worker.settings
    path = "/features/plane_recent/N14228"
    status, body = worker.get(path)
    assert status in (200, 404), body
    derived = load_definitions(settings.features_module).version("plane_recent", 1).source
    key = forward_key(derived.name)
    rejected = rejected_metric(worker, "deployments")
    forged = [(fill_key(key, p).encode(),
               encode(FillStatus(state_key=key, source=derived.parent, partition=p, status=FILLING,
                                 derived=derived.name, detail="forged")))
              for p in range(settings.partitions)]
    asyncio.run(produce_raw(settings, settings.topics.deployments, forged))
    start = time.monotonic()
    while time.monotonic() - start < 5 or (
            rejected_metric(worker, "deployments") < rejected + settings.partitions and time.monotonic() - start < 30):
        status, body = worker.get(path)
        assert status in (200, 404), body  # a follower of the forgery answers 503 view_filling
        time.sleep(0.5)
    assert rejected_metric(worker, "deployments") >= rejected + settings.partitions

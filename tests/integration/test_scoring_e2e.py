"""Scoring in the stream with the real H2O runtime: parity with H2O's own
predict over more than 10,000 real events, hot swap and rollback under load,
shadow scoring, and bad models / bad commands refused while serving goes on."""
from __future__ import annotations

import asyncio
import json
import shutil
import threading
import time
from typing import Any, Iterator

import pandas as pd
import pytest

from dev_tooling import flights_data
from kafka_plumbing.producer import produce, produce_raw
from kafka_plumbing.signing import CONTROL, Signer
from models.registry import Registry
from tables.model_spec import model_specs
from models.h2o_session import h2o_session, upload_frame
from models.train import TrainConfig, train
from models.training_set import model_frame
from tables.definitions import load as load_definitions
from tests.conftest import SUMMARY_LINES
from tests.integration.conftest import Worker, consume_all, consume_until, decode

TRAIN_DEPARTURES = 8_000
PARITY_DEPARTURES = 10_500
SWAP_DEPARTURES = 4_000


def publish(worker: Worker, skip: int, limit: int, rate: float | None = None, sources=("departures", "arrivals", "weather")) -> dict[str, int]:
    definitions = load_definitions(worker.settings.features_module)
    by_source = flights_data.load_events(limit=limit, skip=skip, sources=sources, progress=False)
    total = sum(len(v) for v in by_source.values())
    asyncio.run(produce(worker.settings, definitions.key_fields(), flights_data.iter_interleaved(by_source), total,
                        rate=rate, progress=False))
    return {name: len(events) for name, events in by_source.items()}


def predictions(worker: Worker, role: str = "primary") -> list[dict[str, Any]]:
    topics = worker.settings.topics
    topic = topics.predictions if role == "primary" else topics.shadow_predictions
    return decode(consume_all(worker.settings, topic))


def wait_predictions(worker: Worker, n: int, timeout: float = 240) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = predictions(worker)
        if len(got) >= n:
            return got
        time.sleep(1)
    raise AssertionError(f"only {len(got)} of {n} predictions; worker log {worker.handle.log_path}")


@pytest.fixture(scope="module")
def models(worker: Worker) -> Iterator[dict[str, Any]]:
    """Versions 1 and 2 trained on the first slice; the H2O models stay loaded."""
    sent = publish(worker, 0, TRAIN_DEPARTURES)
    worker.wait_for("departures", sent["departures"])
    worker.wait_for("arrivals", sent["arrivals"])
    settings = worker.settings
    definitions = load_definitions(settings.features_module)
    spec = model_specs(definitions)["flight_delay"]
    numeric, categorical, feature_views = spec.feature_columns(definitions)
    frame = model_frame(settings, definitions, spec)
    frame = frame[frame["label"].notna()]
    registry = Registry(settings.registry_dir)
    with h2o_session() as _:
        import h2o

        trained = {}
        for version, trees in ((1, 20), (2, 5)):
            config = TrainConfig(name="flight_delay", label="label", time_column="event_time",
                                 numeric_features=numeric, categorical_features=categorical,
                                 feature_views=feature_views, ntrees=trees)
            mv = train(frame, config, registry, {"origin_traffic": 1}, progress=False, keep_model=True)
            assert mv.version == version
            trained[version] = h2o.get_model(mv.metadata["h2o_model_id"])
        yield {"h2o": h2o, "models": trained, "numeric": numeric, "categorical": categorical}


def h2o_predict(models: dict[str, Any], version: int, rows: list[dict[str, Any]]) -> pd.DataFrame:
    """H2O's own predict on the feature rows the worker scored."""
    h2o = models["h2o"]
    columns = models["numeric"] + models["categorical"]
    frame = pd.DataFrame([{c: row.get(c) for c in columns} for row in rows], columns=columns)
    types = {c: "real" for c in models["numeric"]} | {c: "enum" for c in models["categorical"]}
    hf = upload_frame(h2o, frame, types, f"parity_{version}_{int(time.time() * 1000)}")
    return models["models"][version].predict(hf).as_data_frame(use_multi_thread=False)


def test_worker_scores_equal_h2o_predict(worker: Worker, models: dict[str, Any]) -> None:
    result = worker.cli("models", "deploy", "flight_delay", "1")
    assert result.returncode == 0, result.stdout + result.stderr
    before = len(predictions(worker))
    sent = publish(worker, TRAIN_DEPARTURES, PARITY_DEPARTURES, sources=("departures",))
    got = wait_predictions(worker, before + sent["departures"])[before:]
    assert len(got) == PARITY_DEPARTURES >= 10_000
    assert {p["model_version"] for p in got} == {1}
    for p in got[:50]:  # provenance on every record
        assert {"event_id", "topic", "partition", "offset", "event_time", "features", "view_versions",
                "model", "model_version", "probabilities", "label", "score_latency_us"} <= set(p)
    reference = h2o_predict(models, 1, [p["features"] for p in got])
    diffs = [abs(p["probabilities"][1] - float(r)) for p, r in zip(got, reference["p1"])]
    assert max(diffs) <= 1e-9, max(diffs)
    SUMMARY_LINES.append(f"MOJO scoring in the worker vs H2O predict: {len(got)} events, max |p1 diff| = {max(diffs):.3g}")
    assert [p["label"] for p in got] == [str(v) for v in reference["predict"]]


def test_hot_swap_and_rollback_under_load(worker: Worker, models: dict[str, Any]) -> None:
    start = TRAIN_DEPARTURES + PARITY_DEPARTURES
    before = {p["event_id"] for p in predictions(worker)}
    producer = threading.Thread(target=publish, args=(worker, start, SWAP_DEPARTURES, 300.0, ("departures",)))
    producer.start()
    time.sleep(4)
    deployed = worker.cli("models", "deploy", "flight_delay", "2")
    time.sleep(4)
    rolled = worker.cli("models", "rollback", "flight_delay")
    producer.join()
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    assert rolled.returncode == 0, rolled.stdout + rolled.stderr

    everything = wait_predictions(worker, len(before) + SWAP_DEPARTURES)
    new = [p for p in everything if p["event_id"] not in before]
    ids = [p["event_id"] for p in new]
    assert len(ids) == len(set(ids)) == SWAP_DEPARTURES  # exactly one primary prediction per event
    assert {p["model_version"] for p in new} == {1, 2}

    changes: dict[int, set] = {}
    for partition in {p["partition"] for p in new}:
        mine = sorted((p for p in new if p["partition"] == partition), key=lambda p: p["offset"])
        versions = [p["model_version"] for p in mine]
        runs = [v for i, v in enumerate(versions) if i == 0 or v != versions[i - 1]]
        assert runs in ([1, 2, 1], [1, 2], [2, 1], [1], [2]), runs  # one switch each way at most
        changes[partition] = {(p["offset"], p["model_version"]) for i, p in enumerate(mine)
                              if i and p["model_version"] != mine[i - 1]["model_version"]}

    def recorded(audit: list[dict]) -> dict[int, set]:
        topic = worker.settings.topics.events("departures")
        out: dict[int, set] = {}
        for r in audit:
            if r.get("type") == "switch" and r["topic"] == topic:
                out.setdefault(r["partition"], set()).add((r["first_offset"], r["to"]))
        return out

    def covered(audit: list[dict]) -> bool:
        seen = recorded(audit)
        return all(c <= seen.get(p, set()) for p, c in changes.items())

    audit = consume_until(worker.settings, worker.settings.topics.audit, covered)
    # every change of version is exactly where an audit switch record says
    assert covered(audit), (changes, recorded(audit))


def test_shadow_scores_same_events_without_touching_primary(worker: Worker, models: dict[str, Any]) -> None:
    assert worker.cli("models", "shadow", "flight_delay", "2").returncode == 0
    start = TRAIN_DEPARTURES + PARITY_DEPARTURES + SWAP_DEPARTURES
    before = {p["event_id"] for p in predictions(worker)}
    shadow_before = len(predictions(worker, "shadow"))
    publish(worker, start, 500, sources=("departures",))
    primary = [p for p in wait_predictions(worker, len(before) + 500) if p["event_id"] not in before]
    assert worker.cli("models", "unshadow", "flight_delay").returncode == 0
    shadow = predictions(worker, "shadow")[shadow_before:]
    assert {p["model_version"] for p in primary} == {1} and {p["role"] for p in primary} == {"primary"}
    assert {p["event_id"] for p in shadow} == {p["event_id"] for p in primary}
    assert {p["model_version"] for p in shadow} == {2}


def test_bad_models_and_commands_are_refused_while_serving_goes_on(worker: Worker, models: dict[str, Any]) -> None:
    registry = worker.settings.registry_dir / "flight_delay"
    unknown = worker.cli("models", "deploy", "flight_delay", "99")
    assert unknown.returncode == 2 and "no version 99" in unknown.stdout + unknown.stderr

    corrupt = registry / "3"
    corrupt.mkdir()
    (corrupt / "model.zip").write_bytes(b"PK\x03\x04 this is not a zip")
    shutil.copy(registry / "1" / "metadata.json", corrupt / "metadata.json")
    refused = worker.cli("models", "deploy", "flight_delay", "3")
    assert refused.returncode == 1 and "refused" in refused.stdout + refused.stderr

    missing = registry / "4"
    missing.mkdir()
    shutil.copy(registry / "1" / "metadata.json", missing / "metadata.json")
    gone = worker.cli("models", "deploy", "flight_delay", "4")
    assert gone.returncode == 2

    # a hand-written command for a version that does not exist reaches the worker directly, signed by a key holder
    signer = Signer(worker.settings.control_key.encode(), "tester")
    command = json.dumps({"model": "flight_delay", "primary": 77, "shadow": None, "previous": 1, "id": "raw-1",
                          "action": "deploy"}).encode()
    for value in (command, b"{broken json"):
        asyncio.run(produce_raw(worker.settings, worker.settings.topics.control, [(b"flight_delay", value)],
                                headers=signer.headers(CONTROL, b"flight_delay", value)))
    time.sleep(2)
    audit = decode(consume_all(worker.settings, worker.settings.topics.audit))
    verdicts = [a for a in audit if a.get("type") == "command" and a.get("result") == "refused"]
    assert any("77" in a["reason"] for a in verdicts)
    assert len(verdicts) >= 3  # corrupt zip, version 77, broken JSON

    start = TRAIN_DEPARTURES + PARITY_DEPARTURES + SWAP_DEPARTURES + 500
    before = {p["event_id"] for p in predictions(worker)}
    publish(worker, start, 200, sources=("departures",))
    after = [p for p in wait_predictions(worker, len(before) + 200) if p["event_id"] not in before]
    assert {p["model_version"] for p in after} == {1}
    status, body = worker.get("/healthz")
    assert status == 200

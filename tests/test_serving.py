"""One entity read and one scoring path, without Kafka: ``SourceProcessor.read``
is what the stream serves each event, and a view still filling is refused by
the stream and by ``POST /score`` with the same reason."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from agents.control_records import ModelDeployment
from agents.control_plane import ControlState
from agents.metrics import Metrics
from agents.outbox import Outbox
from agents.scoring import (
    SCORING_FAILED, VIEW_FILLING, ModelCache, PredictionRecord, Provenance, ScoreRequest, ScoringRuntime,
)
from app.web_scoring import scored_response
from models.registry import Registry
from tables import aggregations as aggs
from tables.definitions import Definitions
from tables.dsl import Feature, FeatureView, Source
from tables.model_spec import ModelSpec
from tables.processor import APPLIED, SourceProcessor, Stores

MIN = 60_000
T0 = 1_700_000_000_000
SOURCE = Source("s", {"event_id": "str", "t": "int", "k": "str", "v": "float"},
                key="k", time_field="t", lateness=30 * MIN)
V1 = FeatureView("p", 1, SOURCE, "k", [Feature("n_10m", aggs.Count(), 10 * MIN, 2 * MIN),
                                         Feature("sum_v", aggs.Sum("v"))])
V2 = FeatureView("p", 2, SOURCE, "k", [Feature("max_30m", aggs.Max("v"), 30 * MIN, 5 * MIN),
                                         Feature("last_v", aggs.Last("v"))], ref="p@v2")
SPEC = ModelSpec("m", "s", numeric=("v",), categorical=(), views=("p@v2",), label_source="s", join_key="k",
                 label_field="v")


def event(i: int, key: str, minutes: float, v: float) -> dict:
    return {"event_id": f"e{i}", "t": T0 + int(minutes * MIN), "k": key, "v": v}


# in order, ties, out of order within the lateness, a duplicate, a late one, across window edges
LOG = [event(0, "a", 0, 1), event(1, "a", 3, 2), event(2, "b", 3, 5), event(3, "a", 3, 7), event(4, "a", 1, 4),
       event(1, "a", 3, 2), event(5, "a", 14, 3), event(6, "b", 60, 1), event(7, "a", 70, 9), event(8, "a", 20, 1),
       event(9, "a", 71, 2)]


def test_read_is_what_the_stream_serves_each_event() -> None:
    processor = SourceProcessor(SOURCE, [V1, V2])
    stores = Stores.in_memory([V1, V2])
    applied = 0
    for offset, record in enumerate(LOG):
        clock = stores.clocks.get(processor.clock_key(0))
        read = processor.read(stores, clock, record["k"], record["t"])
        outcome = processor.process(stores, 0, record, record["t"], offset=offset)
        if outcome.status == APPLIED:
            applied += 1
            assert outcome.features == read.values and read.filling == []
    assert applied == 9
    # after the log: a's events in the tiles of [floor(t - 10m, 2m), tile(t)] are the ones at 70 and 71 min
    read = processor.read(stores, stores.clocks.get(processor.clock_key(0)), "a", T0 + 71 * MIN)
    assert read.values["p"]["n_10m"] == 2 and read.states["p"].seq == 7


def filling_partition() -> tuple[SourceProcessor, Stores]:
    """A partition live with v1 only: v2 was defined after it held events."""
    stores = Stores.in_memory([V1, V2])
    first = SourceProcessor(SOURCE, [V1])
    for offset, record in enumerate(LOG[:4]):
        first.process(stores, 0, record, record["t"], offset=offset)
    return SourceProcessor(SOURCE, [V1, V2]), stores


def test_a_view_still_filling_is_named_and_never_served() -> None:
    processor, stores = filling_partition()
    clock = stores.clocks.get(processor.clock_key(0))
    read = processor.read(stores, clock, "a", T0 + 5 * MIN)
    assert [v.ref for v in read.filling] == ["p@v2"] and set(read.values) == {"p"}
    only_v2 = processor.read(stores, clock, "a", T0 + 5 * MIN, [V2])
    assert only_v2.filling_refs() == ["p@v2"] and only_v2.values == {}
    outcome = processor.process(stores, 0, event(10, "a", 5, 1), T0 + 5 * MIN, offset=4)
    assert outcome.features == read.values  # the stream serves the same: v2 absent


def scoring(tmp_path: Path, deployed: dict | None) -> ScoringRuntime:
    definitions = Definitions("tests", {"s": SOURCE}, {"p": V1, "p@v2": V2})
    plane = ControlState(definitions)
    if deployed:
        plane.models["m"] = ModelDeployment(**deployed)
    return ScoringRuntime(
        settings=None, definitions=definitions, specs={"m": SPEC}, cache=ModelCache(Registry(tmp_path)),  # type: ignore[arg-type]
        plane=plane, audit=None, metrics=Metrics(),  # type: ignore[arg-type]
    )


def provenance(record: dict, offset: int | None) -> Provenance:
    return Provenance(record["event_id"], "s", None if offset is None else "fs.events.s", None if offset is None else 0,
                      offset, record["t"], record["t"])


def test_stream_and_http_refuse_a_filling_view_with_the_same_reason(tmp_path: Path) -> None:
    processor, stores = filling_partition()
    runtime = scoring(tmp_path, {"model": "m", "primary": 1, "shadow": None, "previous": None})
    record = event(10, "a", 5, 1)
    # POST /score: history only, through the one read and the one scoring path
    read = processor.read(stores, stores.clocks.get(processor.clock_key(0)), "a", record["t"])
    scored = runtime.score_event("s", record, read.values, provenance(record, None), roles=("primary",))
    status, body = scored_response(scored, "s")
    # the stream: the same event applied, scored from what it was served
    outcome = processor.process(stores, 0, record, record["t"], offset=4)
    dlq = runtime.score_in_stream([ScoreRequest("s", record, outcome.features, provenance(record, 4))], [b"a"], Outbox())[0]
    assert [r.reason for r in scored.refusals] == [VIEW_FILLING] and scored.predictions == []
    assert status == 503 and body == {"error": "view_filling", "detail": dlq[0]}
    assert dlq == ["m: view p@v2 is not filled on this partition yet"]


def test_a_scoring_error_is_a_dlq_text_on_the_stream_and_a_422_over_http(tmp_path: Path) -> None:
    runtime = scoring(tmp_path, {"model": "m", "primary": 1, "shadow": None, "previous": None})  # v1 not in the registry
    record = event(0, "a", 0, 1)
    features = {"p": {"n_10m": 0, "sum_v": 0}, "p@v2": {"max_30m": None, "last_v": None}}
    scored = runtime.score_event("s", record, features, provenance(record, None), roles=("primary",))
    dlq = runtime.score_in_stream([ScoreRequest("s", record, features, provenance(record, 0))], [b"a"], Outbox())[0]
    assert [r.reason for r in scored.refusals] == [SCORING_FAILED]
    assert scored_response(scored, "s") == (422, {"error": "scoring_error", "detail": dlq[0]})
    assert dlq[0].startswith("m v1 (primary): RegistryError")


@pytest.mark.parametrize("deployed", [None, {"model": "m", "primary": None, "shadow": 2, "previous": None}])
def test_no_deployed_primary_is_no_prediction_and_a_409(tmp_path: Path, deployed: dict | None) -> None:
    runtime = scoring(tmp_path, deployed)
    record = event(0, "a", 0, 1)
    scored = runtime.score_event("s", record, {}, provenance(record, None))
    assert scored.predictions == [] and scored.refusals == []
    assert runtime.score_in_stream([ScoreRequest("s", record, {}, provenance(record, 0))], [b"a"], Outbox()) == [[]]
    assert scored_response(scored, "s")[0] == 409


def test_prediction_record_json_fields_and_codec() -> None:
    record = PredictionRecord(
        provenance=Provenance("e1", "s", "fs.events.s", 3, 17, T0, "2023-11-14T22:13:20.000Z"),
        model="m", model_version=2, role="primary", label="1", probabilities=[0.25, 0.75], labels=["0", "1"],
        unknown_levels={}, features={"v": 1.5, "p@v2.last_v": None}, view_versions={"p@v2": 2},
        score_latency_us=71.3, scored_at="2026-01-01T00:00:00.000Z",
    )
    data = json.loads(record.encode())
    assert list(data) == ["event_id", "source", "topic", "partition", "offset", "event_time_ms", "event_time",
                          "model", "model_version", "role", "label", "probabilities", "labels", "unknown_levels",
                          "features", "view_versions", "score_latency_us", "scored_at", "join_key",
                          "complete", "held_ms"]
    assert PredictionRecord.decode(record.encode()) == record == PredictionRecord.decode(data)

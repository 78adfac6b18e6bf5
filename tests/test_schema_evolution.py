"""Schema evolution without Kafka: each kind of change through the engine the
online agent runs (``tables.replay.take`` over encoded stores, as the partition
store holds them) and through the offline replay; incompatible histories
refused when the definitions load; unknown versions rejected; the flights
definitions untouched."""
from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tables import aggregations as aggs
from tables import definitions as defs
from tables.dsl import Feature, FeatureView, Source
from tables.log_record import INVALID_SCHEMA, SCHEMA_HEADER, LogRecord, lane_headers, schema_of
from tables.processor import SourceProcessor, Stores
from tables.replay import ReplayCounts, replay, take
from tables.schema import SchemaError, SchemaVersion
from tables.validation import MISSING_FIELD, UNKNOWN_SCHEMA_VERSION, WRONG_TYPE, Rejection, Valid, validate

MIN = 60_000
T0 = 1_700_000_000_000

FIELDS_V1 = {"event_id": "str", "t": "int", "k": "str", "delay": "float", "seats": "int", "tag": "str",
             "legacy": "str"}
# Version 2: delay renamed dep_delay, seats widened to float, legacy removed, gate added (default "A"),
# note added (optional, no default).
FIELDS_V2 = {"event_id": "str", "t": "int", "k": "str", "dep_delay": "float", "seats": "float", "tag": "str",
             "gate": "str", "note": "str"}
HISTORY = (SchemaVersion(1, FIELDS_V1, required=("delay",), renamed={"delay": "dep_delay"}),)

SOURCE_V1 = Source("s", FIELDS_V1, key="k", time_field="t", required=("delay",), lateness=30 * MIN)
SOURCE_V2 = Source("s", FIELDS_V2, key="k", time_field="t", required=("dep_delay",), lateness=30 * MIN,
                   history=HISTORY, defaults={"gate": "A"})


def _view(source: Source) -> FeatureView:
    delay = "delay" if "delay" in source.fields else "dep_delay"
    features = [Feature("n", aggs.Count()), Feature("mean_delay", aggs.Mean(delay)),
                Feature("sum_seats", aggs.Sum("seats")), Feature("last_tag", aggs.Last("tag"))]
    if "gate" in source.fields:
        features += [Feature("gates", aggs.DistinctCount("gate")), Feature("last_note", aggs.Last("note"))]
    return FeatureView("v", 1, source, "k", features)


def _v1(i: int, **fields: Any) -> dict[str, Any]:
    return {"event_id": f"a{i}", "t": T0 + i * MIN, "k": "x", "delay": float(i), "seats": 100 + i,
            "tag": f"t{i}", "legacy": "old", **fields}


def _v2(i: int, **fields: Any) -> dict[str, Any]:
    return {"event_id": f"b{i}", "t": T0 + i * MIN, "k": "x", "dep_delay": float(i), "seats": 0.5 + i,
            "tag": f"u{i}", "gate": "B", **fields}


def _record(offset: int, event: dict[str, Any], version: int | None) -> LogRecord:
    headers = [] if version is None else [(SCHEMA_HEADER, str(version).encode())]
    return LogRecord.of(0, offset, json.dumps(event).encode(), headers)


def _online(source: Source, views: list[FeatureView], log: list[LogRecord]) -> list[Any]:
    """The agent's path: ``take`` over stores of bytes, as the partition store holds them."""
    processor = SourceProcessor(source, views)
    stores = Stores.encoded({v.state_key: {} for v in views}, {}, {})
    out = []
    for record in log:
        taken = take(processor, stores, record, 1 << 20)
        out.append(taken.rejection.reason if taken.rejection else (taken.checked.record, taken.outcome.features))
    return out


def _offline(source: Source, views: list[FeatureView], log: list[LogRecord]) -> tuple[list[dict], ReplayCounts]:
    counts = ReplayCounts()
    return list(replay(source, views, log, 1 << 20, counts, include_record=True)), counts


# -- each kind of change, online and offline --------------------------------


def test_v1_then_v2_events_upgrade_and_serve_the_same_online_and_in_replay() -> None:
    view = _view(SOURCE_V2)
    log = [_record(0, _v1(0), None), _record(1, _v1(1, note="undeclared in v1"), 1),
           _record(2, _v2(2), 2), _record(3, _v2(3, note="hi"), 2)]
    online = _online(SOURCE_V2, [view], log)
    rows, counts = _offline(SOURCE_V2, [view], log)
    assert counts.applied == 4 and counts.invalid == 0
    assert [r["record"] for r in rows] == [rec for rec, _ in online]
    assert [{k: r[k] for k in r if k.startswith("v.")} for r in rows] == [
        {f"v.{n}": val for n, val in feats["v"].items()} for _, feats in online]

    upgraded = [rec for rec, _ in online]
    # rename: v1's delay is read as dep_delay; remove: legacy is gone; add: gate gets its default
    assert upgraded[0] == {"event_id": "a0", "t": T0, "k": "x", "dep_delay": 0.0, "seats": 100, "tag": "t0",
                           "gate": "A"}
    # a v1 event's undeclared field named like a newer field is not that field
    assert "note" not in upgraded[1]
    assert upgraded[2] == _v2(2)  # newest events are untouched
    # served before each event is applied, by hand
    last = rows[3]
    assert last["v.n"] == 3
    assert last["v.mean_delay"] == pytest.approx((0 + 1 + 2) / 3)
    assert last["v.sum_seats"] == 100 + 101 + 2.5  # widened: v1 ints and v2 floats in one sum
    assert last["v.last_tag"] == "u2"
    assert last["v.gates"] == 2  # "A" (default of both v1 events), "B"
    assert last["v.last_note"] is None


def test_added_optional_field_default_applies_to_older_events_only() -> None:
    checked = validate(SOURCE_V2, json.dumps(_v1(0)).encode(), 1 << 20, schema_version=1)
    assert isinstance(checked, Valid) and checked.record["gate"] == "A"
    checked = validate(SOURCE_V2, json.dumps(_v1(0, gate=None)).encode(), 1 << 20, schema_version=1)
    assert isinstance(checked, Valid) and checked.record["gate"] == "A"
    newest = {**_v2(0), "gate": None}
    checked = validate(SOURCE_V2, json.dumps(newest).encode(), 1 << 20, schema_version=2)
    assert isinstance(checked, Valid) and checked.record["gate"] is None  # optional in v2: null stays null


def test_a_field_made_required_with_a_default_fills_older_nulls() -> None:
    """Else an old event its own version accepted (tag null) would be rejected under v2."""
    source = _v2_source(required=("dep_delay", "tag"), defaults={"gate": "A", "tag": "none"})
    checked = validate(source, json.dumps(_v1(0, tag=None)).encode(), 1 << 20)
    assert isinstance(checked, Valid) and checked.record["tag"] == "none"
    checked = validate(source, json.dumps(_v2(0, tag=None)).encode(), 1 << 20, schema_version=2)
    assert isinstance(checked, Rejection) and checked.reason == MISSING_FIELD


def test_removed_field_is_not_checked_in_newer_events_nor_kept_from_older_ones() -> None:
    checked = validate(SOURCE_V2, json.dumps(_v2(0, legacy=5)).encode(), 1 << 20, schema_version=2)
    assert isinstance(checked, Valid)  # undeclared in v2: any value
    checked = validate(SOURCE_V2, json.dumps(_v1(0, legacy=5)).encode(), 1 << 20, schema_version=1)
    assert checked == Rejection(WRONG_TYPE, "legacy: expected str, got int (schema version 1)")


def test_widened_field_keeps_old_values_as_they_are_and_old_events_keep_their_own_type_rule() -> None:
    checked = validate(SOURCE_V2, json.dumps(_v1(0, seats=7)).encode(), 1 << 20, schema_version=1)
    assert isinstance(checked, Valid) and checked.record["seats"] == 7 and type(checked.record["seats"]) is int
    # a v1 event with a float where v1 said int was invalid then, and stays invalid
    checked = validate(SOURCE_V2, json.dumps(_v1(0, seats=7.5)).encode(), 1 << 20, schema_version=1)
    assert isinstance(checked, Rejection) and checked.reason == WRONG_TYPE and "schema version 1" in checked.detail


def test_renamed_field_is_required_under_its_old_name_in_old_events() -> None:
    old = _v1(0)
    del old["delay"]
    old["dep_delay"] = 1.0  # the new name in an old event means nothing
    assert validate(SOURCE_V2, json.dumps(old).encode(), 1 << 20) == Rejection(
        MISSING_FIELD, "delay (schema version 1)")


def test_no_header_is_version_1_and_a_v1_worker_decides_old_events_as_the_v2_worker_does() -> None:
    """Accept/reject is judged by the event's own version, so switching the
    definitions to v2 changes no decision on the events already in the log."""
    events = [_v1(0), {**_v1(1), "delay": None}, {**_v1(2), "seats": 1.5}, _v1(3), {**_v1(4), "legacy": 1}]
    old_log = [_record(i, e, None) for i, e in enumerate(events)]
    before = _online(SOURCE_V1, [_view(SOURCE_V1)], old_log)
    after = _online(SOURCE_V2, [_view(SOURCE_V2)], old_log)
    decisions = [x if isinstance(x, str) else "applied" for x in before]
    assert decisions == [x if isinstance(x, str) else "applied" for x in after]
    assert decisions == ["applied", MISSING_FIELD, WRONG_TYPE, "applied", WRONG_TYPE]
    # the features both views compute from unchanged fields are the same
    assert [x[1]["v"]["n"] for x in before if not isinstance(x, str)] == [
        x[1]["v"]["n"] for x in after if not isinstance(x, str)]


@pytest.mark.parametrize("header,version", [(b"3", 3), (b"0", 0), (b"x", INVALID_SCHEMA), (b"", INVALID_SCHEMA),
                                            (b" 2", INVALID_SCHEMA), (b"9" * 5000, INVALID_SCHEMA)])
def test_unknown_or_malformed_versions_are_rejected_online_and_in_replay(header: bytes, version: int) -> None:
    assert schema_of([(SCHEMA_HEADER, header)]) == version
    record = LogRecord.of(0, 0, json.dumps(_v2(0)).encode(), [(SCHEMA_HEADER, header)])
    processor = SourceProcessor(SOURCE_V2, [_view(SOURCE_V2)])
    taken = take(processor, Stores.in_memory([_view(SOURCE_V2)]), record, 1 << 20)
    assert taken.rejection is not None and taken.rejection.reason == UNKNOWN_SCHEMA_VERSION
    assert "defines versions 1 to 2" in taken.rejection.detail
    rows, counts = _offline(SOURCE_V2, [_view(SOURCE_V2)], [record])
    assert rows == [] and counts.invalid == 1


def test_a_single_version_source_takes_version_1_and_refuses_2() -> None:
    event = json.dumps(_v1(0)).encode()
    assert isinstance(validate(SOURCE_V1, event, 1 << 20, schema_version=1), Valid)
    assert validate(SOURCE_V1, event, 1 << 20, schema_version=2).reason == UNKNOWN_SCHEMA_VERSION


def test_re_keyed_logs_carry_the_version_and_upgrade_the_same() -> None:
    assert lane_headers(3, 1) == [("fs-lane", b"3"), (SCHEMA_HEADER, b"1")]
    assert lane_headers(3) == [("fs-lane", b"3")]
    derived = SOURCE_V2.keyed_by("tag")
    view = FeatureView("by_tag", 1, derived, "tag", [Feature("mean_delay", aggs.Mean("dep_delay"))])
    log = [LogRecord.of(0, 0, json.dumps(_v1(0, tag="z")).encode(), lane_headers(1, 1)),
           LogRecord.of(0, 1, json.dumps(_v2(1, tag="z")).encode(), lane_headers(2, 2))]
    rows, counts = _offline(derived, [view], log)
    assert counts.applied == 2 and rows[1]["by_tag.mean_delay"] == 0.0
    assert rows[0]["record"]["dep_delay"] == 0.0


# -- incompatible histories refused at load -----------------------------------


def _v2_source(fields: dict[str, str] | None = None, required: tuple[str, ...] = ("dep_delay",),
               renamed: dict[str, str] | None = None, defaults: dict[str, Any] | None = None) -> Source:
    return Source("s", fields or FIELDS_V2, key="k", time_field="t", required=required,
                  history=(SchemaVersion(1, FIELDS_V1, ("delay",), {"delay": "dep_delay"} if renamed is None
                                         else renamed),),
                  defaults={"gate": "A"} if defaults is None else defaults)


@pytest.mark.parametrize("make,words", [
    (lambda: _v2_source({**FIELDS_V2, "dep_delay": "int"}), ["'dep_delay' (was 'delay')", "narrows type float to int"]),
    (lambda: _v2_source({**FIELDS_V2, "tag": "float"}), ["'tag'", "changes type str to float"]),
    (lambda: _v2_source({**FIELDS_V2, "seats": "str"}), ["'seats'", "changes type int to str"]),
    (lambda: _v2_source(required=("dep_delay", "note")), ["'note'", "required in version 2 and absent"]),
    (lambda: _v2_source(required=("dep_delay", "tag")), ["'tag'", "required in version 2 and optional in version 1"]),
    (lambda: _v2_source({**FIELDS_V2, "k": "int"}), ["'k'", "id, time or key"]),
    (lambda: _v2_source(renamed={"delay": "dep_delay", "t": "t2"}), ["'t'", "renames"]),
    (lambda: _v2_source(renamed={"delay": "nowhere"}), ["'nowhere'", "not a field of version 2"]),
    (lambda: _v2_source(renamed={"delay": "dep_delay", "legacy": "dep_delay"}), ["'dep_delay'", "another field"]),
    (lambda: _v2_source(defaults={"gate": 5}), ["'gate'", "is not a str"]),
    (lambda: _v2_source(defaults={"k": "x"}), ["'k'", "cannot have a default"]),
])
def test_incompatible_changes_are_refused_naming_source_versions_and_field(make: Any, words: list[str]) -> None:
    with pytest.raises(SchemaError) as raised:
        make()
    message = str(raised.value)
    assert message.startswith("source s")
    for word in words:
        assert word in message, message


def test_the_compatible_history_loads() -> None:
    assert set(_v2_source().upgrades) == {1} and SOURCE_V2.schema_version == 2


def test_definitions_load_refuses_an_incompatible_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "schema_bad_defs.py").write_text(textwrap.dedent("""
        from tables.dsl import Source
        from tables.schema import SchemaVersion
        s = Source("readings", {"event_id": "str", "event_time": "time", "site": "str", "value": "int"}, key="site",
                   history=(SchemaVersion(1, {"event_id": "str", "event_time": "time", "site": "str",
                                              "value": "float"}),))
        SOURCES, VIEWS = [s], []
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(defs.DefinitionError, match=r"source readings: version 1 -> 2: field 'value' narrows type "
                                                   r"float to int"):
        defs.load("schema_bad_defs")
    sys.modules.pop("schema_bad_defs", None)


# -- state keys ----------------------------------------------------------------


def test_state_keys_change_only_for_views_reading_a_changed_field() -> None:
    def keyed(source: Source, *features: Feature) -> str:
        return FeatureView("w", 1, source, "k", list(features)).state_key

    unchanged = (Feature("n", aggs.Count()), Feature("last_tag", aggs.Last("tag")))
    assert keyed(SOURCE_V1, *unchanged) == keyed(SOURCE_V2, *unchanged)
    widened = Feature("s", aggs.Sum("seats"))
    assert keyed(SOURCE_V1, widened) != keyed(SOURCE_V2, widened)
    # a later version that changes nothing the view reads keeps its key
    v3 = Source("s", FIELDS_V2, key="k", time_field="t", required=("dep_delay",), lateness=30 * MIN,
                history=(*HISTORY, SchemaVersion(2, FIELDS_V2, ("dep_delay",))), defaults={"gate": "A"})
    assert keyed(v3, widened) == keyed(SOURCE_V2, widened)
    assert keyed(v3, *unchanged) == keyed(SOURCE_V1, *unchanged)
    # changing a default changes what old events hold: the views reading it refill
    other_default = Source("s", FIELDS_V2, key="k", time_field="t", required=("dep_delay",), lateness=30 * MIN,
                           history=HISTORY, defaults={"gate": "Z"})
    gate = Feature("g", aggs.Last("gate"))
    assert keyed(other_default, gate) != keyed(SOURCE_V2, gate)


def test_flights_state_keys_and_headers_are_what_they_were() -> None:
    loaded = defs.load("tables.flights")
    assert {ref: v.state_key for ref, v in loaded.views.items()} == {
        "origin_traffic": "origin_traffic.v1.593afa02", "dest_arrivals": "dest_arrivals.v1.e9d87f24",
        "origin_weather": "origin_weather.v1.3978cc6e", "carrier_arrivals": "carrier_arrivals.v1.2a5f46fd",
        "plane_recent": "plane_recent.v1.25b9a034"}
    assert loaded.schema_headers() == {}
    assert all(s.schema_version == 1 and s.upgrades == {} for s in loaded.sources.values())


def test_the_producer_headers_name_the_newest_version() -> None:
    assert defs.Definitions("m", {"s": SOURCE_V2}, {}).schema_headers() == {"s": [(SCHEMA_HEADER, b"2")]}

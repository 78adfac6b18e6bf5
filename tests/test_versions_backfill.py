"""Versions side by side, and the backfill handover, without Kafka: a view
filled from a log prefix and handed over at any offset serves exactly what a
replay of the whole log with both versions serves."""
from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agents.control_plane import CommandError, ControlState
from agents.control_records import encode
from tables import aggregations as aggs
from tables import definitions as defs
from tables.dsl import Feature, FeatureView, Source
from tables.processor import SourceProcessor, Stores
from tables.log_record import CONTROL_HEADER, LogRecord, is_control
from tables.replay import replay, take
from tables.state import Counts, PartitionClock, decode_clock

MIN = 60_000
SOURCE = Source("s", {"event_id": "str", "t": "int", "k": "str", "v": "float"},
                key="k", time_field="t", lateness=30 * MIN)
V1 = FeatureView("p", 1, SOURCE, "k", [Feature("n_10m", aggs.Count(), 10 * MIN, 2 * MIN),
                                         Feature("sum_v", aggs.Sum("v"))])
V2 = FeatureView("p", 2, SOURCE, "k", [Feature("n_10m", aggs.Count(), 10 * MIN, 2 * MIN),
                                         Feature("n_life", aggs.Count()),
                                         Feature("max_30m", aggs.Max("v"), 30 * MIN, 5 * MIN),
                                         Feature("last_v", aggs.Last("v"))], ref="p@v2")


@st.composite
def logs(draw: st.DrawFn) -> list[dict[str, Any]]:
    """A partition's log: events forward, tied, out of order, late, re-sent, malformed."""
    t = 1_700_000_000_000
    records: list[dict[str, Any]] = []
    for i in range(draw(st.integers(1, 60))):
        t += draw(st.one_of(st.integers(0, 4 * MIN), st.integers(-40 * MIN, 0), st.integers(0, 3 * 3600_000)))
        kind = draw(st.sampled_from(["event"] * 6 + ["dup", "bad"]))
        if kind == "dup" and records:
            records.append(copy.deepcopy(draw(st.sampled_from(records))))
        elif kind == "bad":
            records.append({"event_id": f"x{i}", "t": "not a time", "k": "a", "v": 1.0})
        else:
            records.append({"event_id": f"e{i}", "t": t, "k": draw(st.sampled_from("ab")),
                            "v": draw(st.one_of(st.none(), st.floats(-1e6, 1e6, allow_nan=False)))})
    return records


def _stored(clock: dict[str, Any]) -> PartitionClock:
    """A clock as an earlier build wrote it to its table."""
    return decode_clock(json.dumps(clock).encode())


def _log(records: list[dict[str, Any]]) -> list[LogRecord]:
    return [LogRecord(0, offset, json.dumps(r).encode()) for offset, r in enumerate(records)]


def _take(processor: SourceProcessor, stores: Stores, record: LogRecord) -> dict[str, Any] | None:
    """The agent's step, as replay and the fill job take it; the features served if applied."""
    outcome = take(processor, stores, record, 1 << 20).outcome
    return outcome.features if outcome is not None and outcome.status == "applied" else None


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(logs(), st.data())
def test_fill_handed_over_at_any_offset_serves_what_a_full_replay_serves(records, data) -> None:
    log = _log(records)
    cut = data.draw(st.integers(1, len(log)))  # the agent has taken log[:cut] with v1 only

    # Online: the worker ran v1 alone on the prefix, then restarted with v1 and v2.
    online = Stores.in_memory([V1, V2])
    first = SourceProcessor(SOURCE, [V1])
    for record in log[:cut]:
        _take(first, online, record)
    both = SourceProcessor(SOURCE, [V1, V2])
    clock = online.clocks[both.clock_key(0)]
    assert [v.state_key for v in both.pending(clock)] == [V2.state_key]

    # The fill job: the same prefix, v2 only, then the handover at offset `cut`.
    filled = Stores.in_memory([V2])
    job = SourceProcessor(SOURCE, [V2])
    for record in log[:cut]:
        _take(job, filled, record)
    assert filled.clocks[job.clock_key(0)].counts == clock.counts  # the check the handover makes
    online.views[V2.state_key].update(copy.deepcopy(filled.views[V2.state_key]))
    clock.live[V2.state_key] = cut
    online.clocks[both.clock_key(0)] = clock
    assert both.pending(online.clocks[both.clock_key(0)]) == []

    served = [_take(both, online, record) for record in log[cut:]]

    # The oracle here is a replay of the whole log with both versions from the start.
    expected = {row["offset"]: row for row in replay(SOURCE, [V1, V2], log, 1 << 20)}
    for record, features in zip(log[cut:], served):
        if features is None:
            assert record.offset not in expected
            continue
        row = expected[record.offset]
        for view in (V1, V2):
            for feat in view.features:
                got, want = features[view.ref][feat.name], row[f"{view.ref}.{feat.name}"]
                assert got == want and type(got) is type(want), (record.offset, view.ref, feat.name)
    assert online.views[V2.state_key] == _final_states(log, V2)


def _final_states(log: list[LogRecord], view: FeatureView) -> dict[str, Any]:
    stores = Stores.in_memory([view])
    processor = SourceProcessor(SOURCE, [view])
    for record in log:
        _take(processor, stores, record)
    return stores.views[view.state_key]


def test_a_partition_seen_for_the_first_time_starts_every_view() -> None:
    stores = Stores.in_memory([V1, V2])
    processor = SourceProcessor(SOURCE, [V1, V2])
    assert processor.pending(None) == []
    _take(processor, stores, LogRecord(0, 7, json.dumps({"event_id": "a", "t": 1_700_000_000_000, "k": "a", "v": 1}).encode()))
    clock = stores.clocks[processor.clock_key(0)]
    assert clock.live == {V1.state_key: 7, V2.state_key: 7} and clock.offset == 7
    # A clock written before live views were recorded: established versions are live, newer ones filled.
    legacy = _stored({"lanes": {}, "counts": {"applied": 1, "late": 0, "duplicate": 0, "invalid": 0}})
    assert processor.pending(legacy) == [V2]
    stores.clocks[processor.clock_key(1)] = legacy
    processor.touch(stores, 1, 3)  # a marker: the clock learns its offset, nothing is counted
    clock = stores.clocks[processor.clock_key(1)]
    assert clock.offset == 3 and clock.live == {V1.state_key: 0} and clock.counts == Counts(applied=1)
    processor.touch(stores, 2, 5)  # no clock, nothing to take
    assert processor.clock_key(2) not in stores.clocks


def test_replay_skips_backfill_markers() -> None:
    event = json.dumps({"event_id": "a", "t": 1_700_000_000_000, "k": "a", "v": 1}).encode()
    log = [LogRecord(0, 0, event), LogRecord(0, 1, b'{"fs_control": "fill"}', control=True)]
    rows = list(replay(SOURCE, [V1], log, 1 << 20))
    assert [r["offset"] for r in rows] == [0]
    assert is_control([(CONTROL_HEADER, b"fill")]) and not is_control([("fs-lane", b"1")]) and not is_control(None)


def _module(tmp_path, monkeypatch, body: str) -> str:
    name = f"my_views_{tmp_path.name}"  # a fresh module per test: imports are cached
    (tmp_path / f"{name}.py").write_text(
        "from tables import dsl\nfrom tables.dsl import FeatureView, Source\n"
        "src = Source('s', {'event_id': 'str', 'event_time': 'time', 'k': 'str', 'v': 'float'}, key='k')\n"
        "SOURCES = [src]\n" + body
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def test_the_lowest_version_keeps_the_bare_name(tmp_path, monkeypatch) -> None:
    name = _module(tmp_path, monkeypatch, (
        "VIEWS = [FeatureView('p', 3, src, 'k', [dsl.count('1h')]), FeatureView('p', 2, src, 'k', [dsl.count('2h')]),\n"
        "         FeatureView('q', 1, src, 'k', [dsl.sum('v')])]\n"
    ))
    definitions = defs.load(name)
    assert sorted(definitions.views) == ["p", "p@v3", "q"]
    assert definitions.views["p"].version == 2 and definitions.views["p@v3"].version == 3
    assert list(definitions.versions("p")) == [2, 3]
    assert definitions.names == ["p", "q"]
    with pytest.raises(defs.DefinitionError, match="no version 1"):
        definitions.version("p", 1)
    with pytest.raises(defs.DefinitionError, match="unknown view"):
        definitions.versions("nope")


def test_a_version_declared_twice_is_refused(tmp_path, monkeypatch) -> None:
    name = _module(tmp_path, monkeypatch, (
        "VIEWS = [FeatureView('p', 1, src, 'k', [dsl.count('1h')]), FeatureView('p', 1, src, 'k', [dsl.count('2h')])]\n"
    ))
    with pytest.raises(defs.DefinitionError, match="version 1 declared twice"):
        defs.load(name)
    with pytest.raises(ValueError, match="positive integer"):
        FeatureView("p", 0, SOURCE, "k", [])


def _state(module: str) -> ControlState:
    return ControlState(defs.load(module))


def test_cut_over_needs_the_version_filled_on_every_partition_with_events(tmp_path, monkeypatch) -> None:
    name = _module(tmp_path, monkeypatch, (
        "VIEWS = [FeatureView('p', 1, src, 'k', [dsl.count('1h')]), FeatureView('p', 2, src, 'k', [dsl.count('2h')])]\n"
    ))
    state = _state(name)
    v1, v2 = state.definitions.version("p", 1), state.definitions.version("p", 2)
    assert state.serving("p") == v1  # the established version serves until a cut-over

    def fill(view: FeatureView, partition: int, status: str) -> None:
        state.follow_record(json.dumps({"kind": "fill", "state_key": view.state_key, "partition": partition,
                                        "source": "s", "status": status}).encode())

    fill(v1, 0, "live")
    fill(v1, 2, "live")
    fill(v2, 0, "live")
    fill(v2, 2, "filling")
    with pytest.raises(CommandError, match="not filled on every partition"):
        state.check_cutover({"view": "p", "version": 2})
    with pytest.raises(CommandError, match="no version 5"):
        state.check_cutover({"view": "p", "version": 5})
    with pytest.raises(CommandError, match="integer"):
        state.check_cutover({"view": "p", "version": "2"})
    fill(v2, 2, "live")
    accepted = state.check_cutover({"view": "p", "version": 2, "id": "c1"})
    assert accepted.previous == 1 and accepted.version == 2
    state.follow_record(encode(accepted))
    assert state.serving("p") == v2
    # A model record and an unreadable one do not disturb view state.
    state.follow_record(b'{"model": "m", "primary": 1}')
    state.follow_record(b"not json")
    assert state.models["m"].primary == 1 and state.serving("p") == v2


def test_a_re_keyed_log_added_later_waits_for_its_history() -> None:
    fresh = SourceProcessor(SOURCE, [V1], forwards=("s.by_c",))
    stores = Stores.in_memory([V1])
    event = {"event_id": "a", "t": 1_700_000_000_000, "k": "a", "v": 1.0}
    outcome = fresh.process(stores, 0, event, event["t"], offset=0)
    assert outcome.forwards == ["s.by_c"]  # a partition's first event: every log is fed from the start
    old_clock = _stored({"lanes": {}, "counts": {"applied": 3, "late": 0, "duplicate": 0, "invalid": 0},
                         "offset": 2, "live": {V1.state_key: 0}})
    stores.clocks[fresh.clock_key(1)] = old_clock
    assert fresh.pending_forwards(old_clock) == ["s.by_c"]
    outcome = fresh.process(stores, 1, {**event, "event_id": "b"}, event["t"], offset=3)
    assert outcome.status == "applied" and outcome.forwards == []  # nothing forwarded before its history
    legacy = _stored({"lanes": {}, "counts": {}})
    assert fresh.pending_forwards(legacy) == []  # older clocks fed every log they had


def test_history_is_merged_by_event_time_keeping_each_partition_in_order() -> None:
    from agents.rekey_history import merged_by_time

    rows = {
        0: [{"event_time_ms": t, "id": f"0-{i}"} for i, t in enumerate([10, 30, 20, 50])],  # out of order inside
        1: [{"event_time_ms": t, "id": f"1-{i}"} for i, t in enumerate([15, 25, 60])],
    }
    merged = merged_by_time(rows)
    assert [row["id"] for _, row in merged] == ["0-0", "1-0", "1-1", "0-1", "0-2", "0-3", "1-2"]
    for lane in rows:
        assert [row["id"] for l, row in merged if l == lane] == [row["id"] for row in rows[lane]]


def test_history_is_written_only_for_partitions_whose_worker_waits_for_it() -> None:
    from agents.rekey_history import plan

    derived = SOURCE.keyed_by("v")
    state = ControlState(defs.Definitions("m", {"s": SOURCE, derived.name: derived}, {}))
    key = f"fwd:{derived.name}"
    for partition, status in ((0, "filling"), (1, "live"), (3, "filling")):
        state.follow_record(json.dumps({"kind": "fill", "state_key": key, "source": "s",
                                        "partition": partition, "status": status}).encode())
    state.follow_record(json.dumps({"kind": "history", "derived": derived.name, "partition": 3,
                                    "through": 9}).encode())
    sizes = {0: (0, 40), 1: (0, 12), 2: (0, 0), 3: (0, 10), 4: (0, 7)}
    rekey = plan(state, sizes, derived, SOURCE)
    # 0 waits for it; 1 is fed live; 2 has no events; 3 has it already; 4 has not said yet
    assert rekey.ends == {0: 40} and rekey.waiting == [4]
    assert state.unfed(derived.name, "s") == [0, 3]

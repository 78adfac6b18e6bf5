"""Tumbling windows (hop == window): the DSL, the tile engine against the
hand-checked and generated vectors in tests/data/tumbling_windows.json, the
pandas oracle on random streams and on real flights, and replay equality
through the state codec the online path uses."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tables import aggregations as aggs
from tables import dsl
from tables.dsl import Feature, FeatureView, Source
from tables.point_in_time import as_of_values
from tables.processor import APPLIED, LATE, SourceProcessor, Stores
from tables.state import encode_view_state
from tests import oracle
from tests.test_aggregations_property import SOURCE, _scale, check_per_event_oracle, close, streams
from tests.test_window_semantics import build, check_per_event, close as _near

MIN = 60_000
HOUR = 60 * MIN
VECTORS = Path(__file__).with_name("data") / "tumbling_windows.json"
CASES = ["hand_checked", "in_order_with_ties", "out_of_order_and_late"]


# ------------------------------------------------------------------ the DSL


def test_hop_equal_to_window_is_tumbling_and_named_so() -> None:
    current = dsl.count(window="1h", hop="1h")
    closed = dsl.mean("v", window="1h", hop="60m", closed=True)
    sliding = dsl.count(window="1h", hop="5m")
    assert current.tumbling and not current.closed and current.name == "count_1h_current"
    assert closed.tumbling and closed.closed and closed.name == "mean_v_1h_closed"
    assert not sliding.tumbling and sliding.name == "count_1h"
    assert not dsl.count(window="1h").tumbling  # default hop W/12


def test_closed_needs_a_tumbling_window() -> None:
    with pytest.raises(ValueError, match="closed=True needs a tumbling window"):
        dsl.count(window="1h", hop="5m", closed=True)
    with pytest.raises(ValueError, match="closed=True needs a tumbling window"):
        dsl.count(closed=True)


def test_a_default_hop_equal_to_the_window_is_refused() -> None:
    """W <= 1 minute: the default hop (at least a minute) would equal W and make
    the window tumbling without the user asking."""
    with pytest.raises(ValueError, match="give a hop"):
        dsl.count(window="1m")
    with pytest.raises(ValueError, match="give a hop"):
        dsl.count(window="30s")
    assert dsl.count(window="1m", hop="1m").tumbling
    assert not dsl.count(window="1m", hop="10s").tumbling


def test_state_key_tells_tumbling_from_sliding_and_keeps_sliding_keys() -> None:
    source = Source("s", {"event_id": "str", "t": "int", "k": "str"}, key="k", time_field="t")

    def key(*features: Feature) -> str:
        return FeatureView("v", 1, source, "k", list(features)).state_key

    # Before tumbling windows, hop == window was read as two tiles (sliding);
    # the same parameters now compute something else, so their state moves.
    assert key(Feature("n", aggs.Count(), HOUR, HOUR)) != key(Feature("n", aggs.Count(), HOUR, HOUR, closed=True))
    assert "tumbling" in Feature("n", aggs.Count(), HOUR, HOUR).params()
    assert "tumbling" not in Feature("n", aggs.Count(), HOUR, 5 * MIN).params()
    assert "closed" not in Feature("n", aggs.Count(), HOUR, HOUR).params()


def test_flights_views_keep_their_state_keys() -> None:
    """Recorded before tumbling windows existed: a changed key would refill every view."""
    from tables import flights_v2

    assert {v.ref if v.version == 1 else f"{v.name}@v2": v.state_key for v in flights_v2.VIEWS} == {
        "origin_traffic": "origin_traffic.v1.593afa02",
        "dest_arrivals": "dest_arrivals.v1.e9d87f24",
        "origin_weather": "origin_weather.v1.3978cc6e",
        "carrier_arrivals": "carrier_arrivals.v1.2a5f46fd",
        "plane_recent": "plane_recent.v1.25b9a034",
        "origin_traffic@v2": "origin_traffic.v2.7b7862c8",
    }


# ------------------------------------------------------------ the vectors


@pytest.fixture(scope="module")
def vectors() -> dict:
    return json.loads(VECTORS.read_text())


@pytest.mark.parametrize("case_name", CASES)
def test_per_event_values_match_vectors(vectors: dict, case_name: str) -> None:
    checked = check_per_event(vectors, vectors["cases"][case_name])
    assert checked >= (60 if case_name == "hand_checked" else 5000)


@pytest.mark.parametrize("case_name", CASES)
def test_as_of_values_match_vectors(vectors: dict, case_name: str) -> None:
    """Training-set path (point_in_time) and online tiles (ViewWindows.as_of)."""
    case = vectors["cases"][case_name]
    view, processor = build(vectors, case)
    stores = Stores.in_memory([view])
    applied = [(e, e["time_ms"]) for e in case["events"]
               if processor.process(stores, 0, e, e["time_ms"]).status == APPLIED]
    queries = [(q["key"], q["as_of_ms"]) for q in case["as_of"]]
    windows = processor.windows[view.state_key]
    online_answers = 0
    for query, got in zip(case["as_of"], as_of_values(view, applied, queries)):
        for name, want in query["values"].items():
            assert _near(got[name], want), (query, name, got[name])
        try:
            online, unavailable = windows.as_of(stores.views[view.state_key].get(query["key"]), query["as_of_ms"])
        except ValueError:
            continue  # older than the retained history
        for name, value in online.items():
            if name in query["values"]:
                assert _near(value, query["values"][name]), (query, name, value)
                online_answers += 1
        assert not any(name.endswith("_closed") for name in unavailable), unavailable
    assert online_answers > 0


def test_oracle_reproduces_the_hand_checked_case(vectors: dict) -> None:
    """Values worked out by hand: the oracle that generated the other cases must agree."""
    case = vectors["cases"]["hand_checked"]
    specs = [oracle.Spec(f["name"], f["agg"], f["field"], f["window_ms"], f["hop_ms"], f["closed"])
             for f in vectors["features"]]
    events = pd.DataFrame(case["events"])
    got = dict(zip(events.event_id, oracle.per_event(events, specs, "key", case["lateness_ms"])))
    for name, rows in case["per_event"].items():
        for row in rows:
            assert got[row["event_id"]]["late"] == bool(row.get("late")), row
            if not row.get("late"):
                assert _near(got[row["event_id"]][name], row["value"]), (name, row, got[row["event_id"]][name])
    applied = events[[not got[i]["late"] for i in events.event_id]]
    for query in case["as_of"]:
        values = oracle.as_of(applied, specs, "key", query["key"], query["as_of_ms"])
        for name, want in query["values"].items():
            assert _near(values[name], want), (query, name, values[name])


def test_tumbling_is_not_the_old_two_tile_reading() -> None:
    """What hop == window did before: the window of t and the one before it."""
    source = Source("s", {"event_id": "str", "t": "int", "k": "str"}, key="k", time_field="t")
    view = FeatureView("v", 1, source, "k", [Feature("n", aggs.Count(), HOUR, HOUR)])
    processor, stores = SourceProcessor(source, [view]), Stores.in_memory([view])
    start = 1_700_000_000_000 // HOUR * HOUR
    served = [processor.process(stores, 0, {"event_id": str(i), "t": t, "k": "a"}, t).features["v"]["n"]
              for i, t in enumerate([start + 10, start + HOUR - 1, start + HOUR + 5, start + 2 * HOUR + 5])]
    assert served == [0, 1, 0, 0]  # sliding two tiles would give [0, 1, 2, 1]


# ------------------------------------------------------ oracle, random streams

TUMBLING = [
    Feature("n_10m", aggs.Count(), 10 * MIN, 10 * MIN),
    Feature("n_10m_closed", aggs.Count(), 10 * MIN, 10 * MIN, closed=True),
    Feature("sum_10m", aggs.Sum("v"), 10 * MIN, 10 * MIN),
    Feature("mean_30m_closed", aggs.Mean("v"), 30 * MIN, 30 * MIN, closed=True),
    Feature("min_30m", aggs.Min("v"), 30 * MIN, 30 * MIN),
    Feature("max_1h_closed", aggs.Max("v"), HOUR, HOUR, closed=True),
    Feature("std_1h", aggs.Stddev("v"), HOUR, HOUR),
    Feature("distinct_10m_closed", aggs.DistinctCount("c"), 10 * MIN, 10 * MIN, closed=True),
    Feature("last_10m", aggs.Last("v"), 10 * MIN, 10 * MIN),
    Feature("last_1h_closed", aggs.Last("v"), HOUR, HOUR, closed=True),
    Feature("n_30m_sliding", aggs.Count(), 30 * MIN, 10 * MIN),  # shares the 10 min tiles
    Feature("n_life", aggs.Count()),
]
VIEW = FeatureView("t", 1, SOURCE, "k", TUMBLING)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams())
def test_per_event_values_equal_oracle(events: list[dict]) -> None:
    check_per_event_oracle(VIEW, events)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams(), st.lists(st.tuples(st.sampled_from("ab"), st.integers(-2 * HOUR, 30 * HOUR)), min_size=1, max_size=8))
def test_as_of_equals_oracle_offline_and_online(events: list[dict], asks: list[tuple[str, int]]) -> None:
    processor, stores = SourceProcessor(SOURCE, [VIEW]), Stores.in_memory([VIEW])
    applied = [(e, e["t"]) for e in events if processor.process(stores, 0, e, e["t"]).status == APPLIED]
    queries = [(key, events[0]["t"] + offset) for key, offset in asks]
    frame = pd.DataFrame([e for e, _ in applied], columns=["event_id", "t", "k", "v", "c"]).rename(columns={"t": "time_ms"})
    windows = processor.windows[VIEW.state_key]
    scale = _scale(events)
    for (key, at), offline in zip(queries, as_of_values(VIEW, applied, queries)):
        want = oracle.as_of(frame, oracle.specs_of(VIEW), "k", key, at)
        for name, value in want.items():
            assert close(offline[name], value, scale), (key, at, name, offline[name], value)
        state = stores.views[VIEW.state_key].get(key)
        try:
            online, unavailable = windows.as_of(state, at)
        except ValueError:
            assert state is not None and at < state.horizon
            continue
        assert set(online) | set(unavailable) == set(want)
        for name, value in online.items():
            assert close(value, want[name], scale), (key, at, name, value, want[name])
        # a closed window ends before tile(T): it never needs a later as_of
        assert not {f.name for f in TUMBLING if f.closed} & set(unavailable)


# ----------------------------------------------------- real flights, replay

LIMIT = 3000


def _iso(time_ms: int) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(time_ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@pytest.fixture(scope="module")
def flights() -> tuple[FeatureView, list[tuple[dict, int]], pd.DataFrame]:
    """Real departures as one log, with some records moved 30 places later
    (out of order, within the 1 h lateness) and some late copies (2 h back)."""
    from dev_tooling import flights_data
    from tables.flights_tumbling import origin_hourly

    log = list(flights_data.load_events(limit=LIMIT, sources=["departures"], progress=False)["departures"])
    for i in range(40, len(log) - 30, 97):
        log.insert(i + 30, log.pop(i))
    for i in range(500, len(log), 450):
        log.insert(i, {**log[i], "event_id": f"late-{i}",
                       "event_time": _iso(flights_data.event_time_ms(log[i]) - 2 * HOUR)})
    timed = [(e, flights_data.event_time_ms(e)) for e in log]
    frame = pd.DataFrame([e for e, _ in timed])
    frame["time_ms"] = [t for _, t in timed]
    return origin_hourly, timed, frame


def _run(view: FeatureView, timed: list[tuple[dict, int]], stores: Stores) -> list:
    processor = SourceProcessor(view.source, [view])
    return [processor.process(stores, 0, e, t, offset=i) for i, (e, t) in enumerate(timed)]


def test_real_flights_served_values_equal_oracle(flights: tuple) -> None:
    view, timed, frame = flights
    outcomes = _run(view, timed, Stores.in_memory([view]))
    expected = oracle.per_event(frame, oracle.specs_of(view), "origin", view.source.lateness_ms)
    assert sum(w["late"] for w in expected) >= 5
    assert sum(a < b for (_, a), (_, b) in zip(timed, timed[1:])) > 0  # really out of order
    compared = nonzero = 0
    for outcome, want in zip(outcomes, expected):
        assert (outcome.status == LATE) == want["late"], want
        if want["late"]:
            continue
        got = outcome.features[view.ref]
        for feat in view.features:
            assert _near(got[feat.name], want[feat.name]), (want["order"], feat.name, got[feat.name], want[feat.name])
            compared += 1
            nonzero += got[feat.name] not in (None, 0)
    applied = sum(o.status == APPLIED for o in outcomes)
    assert applied > LIMIT - 20 and compared == applied * len(view.features) and nonzero > compared // 2
    print(f"real flights, tumbling: {compared} served values equal the oracle")


def test_real_flights_as_of_equal_oracle(flights: tuple) -> None:
    view, timed, frame = flights
    stores = Stores.in_memory([view])
    outcomes = _run(view, timed, stores)
    applied = [(e, t) for (e, t), o in zip(timed, outcomes) if o.status == APPLIED]
    applied_frame = frame[[o.status == APPLIED for o in outcomes]]
    newest = max(t for _, t in applied)
    oldest = min(t for _, t in applied)
    step = (newest - oldest) // 60
    queries = [(airport, oldest + k * step + k * 7919) for airport in ("EWR", "JFK", "LGA") for k in range(61)]
    compared = 0
    for (airport, at), got in zip(queries, as_of_values(view, applied, queries)):
        want = oracle.as_of(applied_frame, oracle.specs_of(view), "origin", airport, at)
        for name, value in want.items():
            assert _near(got[name], value), (airport, at, name, got[name], value)
            compared += 1
    # the online tiles answer the recent past exactly, closed windows always
    windows = SourceProcessor(view.source, [view]).windows[view.state_key]
    for airport in ("EWR", "JFK", "LGA"):
        for back in range(0, 55 * MIN, 5 * MIN + 17):
            at = newest - back
            values, unavailable = windows.as_of(stores.views[view.state_key][airport], at)
            assert not [name for name in unavailable if name.endswith("_closed")]
            want = oracle.as_of(applied_frame, oracle.specs_of(view), "origin", airport, at)
            for name, value in values.items():
                assert _near(value, want[name]), (airport, at, name, value, want[name])
                compared += 1
    print(f"real flights, tumbling as_of: {compared} values equal the oracle")


def test_real_flights_replay_through_the_online_codec_is_identical(flights: tuple) -> None:
    """The online agent keeps state as bytes (Stores.encoded), the replay as
    objects: the same log gives the same outcomes, values and state bytes."""
    view, timed, _ = flights
    offline = Stores.in_memory([view])
    tables: dict[str, dict[str, bytes]] = {view.state_key: {}}
    online = Stores.encoded(tables, {}, {})
    for a, b in zip(_run(view, timed, offline), _run(view, timed, online)):
        assert (a.status, a.features) == (b.status, b.features)
        assert json.dumps(a.features, sort_keys=True) == json.dumps(b.features, sort_keys=True)
    assert {k: encode_view_state(s) for k, s in offline.views[view.state_key].items()} == tables[view.state_key]

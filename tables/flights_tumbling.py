"""The flights definitions plus a view of tumbling (clock-hour) windows.

Run the workers with ``--features tables.flights_tumbling`` (or
``FS_FEATURES``): the flights views are unchanged, and ``origin_hourly`` is
filled from the log like any new view.  ``hop`` equal to ``window`` makes a
window tumbling: ``count_1h_current`` counts the origin's departures so far in
the UTC hour of the event, ``count_1h_closed`` those of the hour before.
"""
from __future__ import annotations

from tables import dsl
from tables.dsl import FeatureView
from tables.flights import MODELS, SOURCES, departures
from tables.flights import VIEWS as FLIGHTS_VIEWS

origin_hourly = FeatureView(
    name="origin_hourly",
    version=1,
    source=departures,
    entity="origin",
    features=[
        dsl.count(window="1h", hop="1h"),
        dsl.count(window="1h", hop="1h", closed=True),
        dsl.mean("dep_delay", window="1h", hop="1h"),
        dsl.mean("dep_delay", window="1h", hop="1h", closed=True),
        dsl.max("dep_delay", window="1h", hop="1h", closed=True),
        dsl.distinct_count("dest", window="1d", hop="1d", closed=True),  # yesterday's (UTC) destinations
    ],
)

VIEWS = [*FLIGHTS_VIEWS, origin_hourly]
__all__ = ["SOURCES", "VIEWS", "MODELS"]

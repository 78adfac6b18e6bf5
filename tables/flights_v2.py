"""The flights definitions with a second version of ``origin_traffic``: how a
user changes a view without a cold start or a gap in serving.

Run the workers with ``--features tables.flights_v2`` (or ``FS_FEATURES``):
they keep serving version 1 under ``origin_traffic``, fill version 2 from the
whole log, then maintain both.  ``featurestream backfill origin_traffic
--features tables.flights_v2`` shows the fill, ``--cutover`` (or ``featurestream
views cutover origin_traffic 2``) makes version 2 the one the name serves.
Version 2 is referred to as ``origin_traffic@v2`` in feature logs, training
sets and model inputs until version 1 is removed from the module.
"""
from __future__ import annotations

from tables import dsl
from tables.dsl import FeatureView
from tables.flights import MODELS, SOURCES, departures
from tables.flights import VIEWS as FIRST_VIEWS

origin_traffic_v2 = FeatureView(
    name="origin_traffic",
    version=2,
    source=departures,
    entity="origin",
    features=[
        dsl.count(window="1h"),
        dsl.mean("dep_delay", window="1h"),
        dsl.count(window="6h"),
        dsl.approx_quantile("dep_delay", q=0.9, window="6h", name="p90_dep_delay_6h"),
        dsl.distinct_count("carrier", window="24h"),
        dsl.count(name="departures_total"),  # lifetime: any event a fill missed would show here
        dsl.last("dep_delay"),
    ],
)

VIEWS = [*FIRST_VIEWS, origin_traffic_v2]
__all__ = ["SOURCES", "VIEWS", "MODELS"]  # models unchanged: they keep using origin_traffic v1

"""For the backfill test: a third version of ``origin_traffic`` (version 2's
features plus a median, so the features both share must read the same), and a
new view on departures by destination, an entity departures were never keyed
by, so its re-keyed log starts empty over a log with history."""
from __future__ import annotations

import dataclasses

from tables import dsl
from tables.dsl import FeatureView
from tables.flights import departures
from tables.flights_v2 import MODELS, SOURCES, origin_traffic_v2
from tables.flights_v2 import VIEWS as V2_VIEWS

origin_traffic_v3 = dataclasses.replace(
    origin_traffic_v2, version=3, ref="",
    features=[*origin_traffic_v2.features, dsl.approx_quantile("dep_delay", q=0.5, window="6h", name="p50_dep_delay_6h")],
)

dest_departures = FeatureView(
    name="dest_departures", version=1, source=departures, entity="dest",
    features=[dsl.count(window="24h"), dsl.count(name="total"), dsl.mean("dep_delay", window="6h")],
)

VIEWS = [*V2_VIEWS, origin_traffic_v3, dest_departures]
__all__ = ["SOURCES", "VIEWS", "MODELS"]

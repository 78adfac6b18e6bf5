"""A third version of ``origin_traffic`` for the backfill test: version 2's
features plus a median, so the features both share must read the same."""
from __future__ import annotations

import dataclasses

from tables import dsl
from tables.flights_v2 import MODELS, SOURCES, origin_traffic_v2
from tables.flights_v2 import VIEWS as V2_VIEWS

origin_traffic_v3 = dataclasses.replace(
    origin_traffic_v2, version=3, ref="",
    features=[*origin_traffic_v2.features, dsl.approx_quantile("dep_delay", q=0.5, window="6h", name="p50_dep_delay_6h")],
)

VIEWS = [*V2_VIEWS, origin_traffic_v3]
__all__ = ["SOURCES", "VIEWS", "MODELS"]

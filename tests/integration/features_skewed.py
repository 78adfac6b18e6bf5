"""For the skew audit test: the flights module with ``origin_traffic``
changed without a new version (its ``max_dep_delay_3h`` now looks back 6
hours): what an edit deployed to the offline side only looks like."""
from __future__ import annotations

import dataclasses

from tables import dsl
from tables.flights import MODELS, SOURCES, VIEWS, origin_traffic

changed = dataclasses.replace(origin_traffic, ref="", features=[
    dsl.max("dep_delay", window="6h", name="max_dep_delay_3h") if f.name == "max_dep_delay_3h" else f
    for f in origin_traffic.features
])
VIEWS = [changed if v is origin_traffic else v for v in VIEWS]
__all__ = ["SOURCES", "VIEWS", "MODELS"]

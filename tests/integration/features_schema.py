"""For the schema-evolution test: a ``readings`` source at version 2, with its
version 1 in ``history``.  Version 2 renamed ``temp`` to ``temp_c``, widened
``count`` from int to float, removed ``firmware`` and added ``unit`` (default
``"C"``).  ``site_stats`` reads changed fields, ``zone_stats`` (keyed by
another field: a re-keyed log) reads only unchanged ones."""
from __future__ import annotations

from tables import dsl
from tables.dsl import FeatureView, Source
from tables.schema import SchemaVersion

COMMON = {"event_id": "str", "event_time": "time", "site": "str", "zone": "str"}
FIELDS_V1 = {**COMMON, "temp": "float", "count": "int", "firmware": "str"}

readings = Source(
    name="readings",
    key="site",
    fields={**COMMON, "temp_c": "float", "count": "float", "unit": "str"},
    required=("zone", "temp_c"),
    history=(SchemaVersion(1, FIELDS_V1, required=("zone", "temp"), renamed={"temp": "temp_c"}),),
    defaults={"unit": "C"},
)

site_stats = FeatureView(
    name="site_stats", version=1, source=readings, entity="site",
    features=[dsl.count(), dsl.mean("temp_c"), dsl.sum("count"), dsl.last("unit"),
              dsl.distinct_count("unit"), dsl.mean("temp_c", window="1h")],
)

zone_stats = FeatureView(
    name="zone_stats", version=1, source=readings, entity="zone",
    features=[dsl.count(), dsl.distinct_count("site")],
)

SOURCES = [readings]
VIEWS = [site_stats, zone_stats]
MODELS: list = []

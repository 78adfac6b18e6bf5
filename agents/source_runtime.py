"""One source's live state in a worker: its views, the processor that
applies its log, and the stores (Faust tables) that processor writes."""
from __future__ import annotations

from dataclasses import dataclass

import faust

from tables.dsl import FeatureView, Source
from tables.processor import SourceProcessor, Stores


@dataclass
class SourceRuntime:
    """What the web views, the fill jobs and tests need to see of one source's agent."""

    source: Source
    views: list[FeatureView]
    processor: SourceProcessor
    stores: Stores
    tables: dict[str, faust.Table]  # view ref -> table (raw JSON bytes; read through ``stores``)

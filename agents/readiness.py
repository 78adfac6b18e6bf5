"""Whether a worker can answer from its tables."""
from __future__ import annotations

import faust

from agents.placement import Placement


def is_ready(app: faust.App, placement: Placement) -> bool:
    """Both groups joined (Faust's: the control plane; the ingest group's: the
    source logs) and the assigned partitions restored: reads are answerable."""
    return app.tables.recovery.completed.is_set() and not app.rebalancing and placement.ready

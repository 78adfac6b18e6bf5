"""Whether a worker can answer from its tables."""
from __future__ import annotations

import faust


def is_ready(app: faust.App) -> bool:
    """Partitions assigned and tables recovered: reads are answerable."""
    return app.tables.recovery.completed.is_set() and not app.rebalancing

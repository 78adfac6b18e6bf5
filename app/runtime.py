"""The built worker: its Faust app and the handles the web views read."""
from __future__ import annotations

from dataclasses import dataclass, field

import faust

from agents.backfill import Backfill
from agents.console_feed import ConsoleFeed
from agents.control_plane import ControlPlane
from agents.metrics import Metrics
from agents.placement import Placement
from agents.scoring import ScoringRuntime
from agents.source_runtime import SourceRuntime
from kafka_plumbing.partition_store import PartitionStore
from app.console_figures import ConsoleHistory
from app.tokens import TokenTable
from kafka_plumbing.settings import Settings
from tables.definitions import Definitions


@dataclass
class Runtime:
    app: faust.App
    settings: Settings
    definitions: Definitions
    sources: dict[str, SourceRuntime]
    metrics: Metrics
    scoring: ScoringRuntime | None
    plane: ControlPlane
    backfill: Backfill
    placement: Placement
    store: PartitionStore  # the partition store every source's state is flushed to
    tokens: TokenTable
    console_feed: ConsoleFeed | None = None  # the newest alerts and dead letters (FS_CONSOLE_RECENT=0: none)
    console_history: ConsoleHistory = field(default_factory=ConsoleHistory)  # the console's chart points

"""One source's live state in a worker: its views, the processor that
applies its log, and the per-partition state that processor writes."""
from __future__ import annotations

from dataclasses import dataclass

from agents.source_state import SourceState
from tables.dsl import FeatureView, Source
from tables.processor import SourceProcessor, Stores
from tables.state import PartitionClock


@dataclass
class SourceRuntime:
    """What the web views, the fill jobs and tests need to see of one source's agent."""

    source: Source
    views: list[FeatureView]
    processor: SourceProcessor
    state: SourceState
    topic: str  # the source's log; its partitions' owners answer reads

    def owns(self, partition: int) -> bool:
        return self.state.owns(partition)

    def clock(self, partition: int) -> PartitionClock | None:
        """The agent's clock of a partition: through the record it took last."""
        return self.state.clock(partition, self.processor.clock_key(partition))

    def flushed(self, partition: int) -> Stores:
        """What reads see of an owned partition: its last flush."""
        return self.state.flushed(partition)

    def flushed_clock(self, partition: int) -> PartitionClock | None:
        if not self.owns(partition):
            return None
        return self.flushed(partition).clocks.get(self.processor.clock_key(partition))

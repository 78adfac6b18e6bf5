"""What one ``featurestream bench`` run measures: sizes, rates, stages."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

STAGES = ("baselines", "worker", "exactly_once", "monitor", "cross_source", "reads", "latency", "offline")


@dataclass(frozen=True)
class BenchConfig:
    events: int = 20_000
    rounds: int = 3
    skip: frozenset[str] = frozenset()
    train: bool = False
    json_out: Path = Path(".featurestream/bench.json")
    phase_seconds: float = 5.0  # each paced or read-load phase
    read_rates: tuple[int, ...] = (500, 1000)
    ingest_rate: int = 2000  # publishing rate while reads are measured
    latency_rates: tuple[int, ...] = (100, 2000)

    @classmethod
    def quick(cls, **overrides: Any) -> "BenchConfig":
        """Small and short: checks the harness, measures nothing worth keeping."""
        return cls(**{"events": 500, "rounds": 1, "phase_seconds": 1.0, "read_rates": (500,),
                      "ingest_rate": 200, "latency_rates": (20, 200), **overrides})

    def runs(self, stage: str) -> bool:
        if stage in ("reads", "latency", "exactly_once", "monitor", "cross_source") and "worker" in self.skip:
            return False
        return stage not in self.skip

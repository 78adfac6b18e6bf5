"""Scoring throughput of a MOJO, per row against batches, measured in one run.

For ``featurestream bench`` and for a quick look by hand::

    python -m models.scoring_rate MODEL.zip ROWS.jsonl [--rounds 3] [--batch-sizes 1,64,512,4096]

Rounds alternate between the modes (per-row ``score`` calls, then
``score_many`` over batches of each size), after one warm-up pass over all of
them, so JIT warm-up and the noise of a shared machine fall on every mode
alike; each mode reports the median of its rounds, and its best round (the
least disturbed by other processes).
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from models.mojo_scorer import MojoScorer

__all__ = ["ScoringRate", "measure_scoring"]

PER_ROW = "per_row"
BATCH = "batch"


@dataclass(frozen=True)
class ScoringRate:
    mode: str  # PER_ROW: one score() call per row; BATCH: score_many over batches of batch_size
    batch_size: int
    rows: int
    rounds: int
    median_seconds: float
    rows_per_second: float  # at the median round
    best_rows_per_second: float


def _per_row(scorer: MojoScorer, rows: Sequence[Mapping[str, Any]]) -> None:
    for row in rows:
        scorer.score(row)


def _batched(scorer: MojoScorer, rows: Sequence[Mapping[str, Any]], size: int) -> None:
    for start in range(0, len(rows), size):
        scorer.score_many(rows[start:start + size])


def measure_scoring(
    scorer: MojoScorer,
    rows: Sequence[Mapping[str, Any]],
    batch_sizes: Sequence[int] = (1, 64, 512, 4096),
    rounds: int = 3,
) -> list[ScoringRate]:
    """Rows/s of per-row scoring and of batches of each size, over the same rows."""
    if not rows or rounds < 1:
        raise ValueError("need rows to score and at least one round")
    modes: list[tuple[str, int]] = [(PER_ROW, 1)] + [(BATCH, size) for size in batch_sizes]
    seconds: dict[tuple[str, int], list[float]] = {mode: [] for mode in modes}
    for round_ in range(rounds + 1):  # round 0 warms up and is not counted
        for mode, size in modes:
            start = time.perf_counter()
            if mode == PER_ROW:
                _per_row(scorer, rows)
            else:
                _batched(scorer, rows, size)
            if round_:
                seconds[(mode, size)].append(time.perf_counter() - start)
    rates = []
    for mode, size in modes:
        median = statistics.median(seconds[(mode, size)])
        best = min(seconds[(mode, size)])
        rates.append(ScoringRate(mode, size, len(rows), rounds, median, len(rows) / median, len(rows) / best))
    return rates


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mojo", type=Path)
    parser.add_argument("rows", type=Path, help="JSON lines, one row (column -> value) per line")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-sizes", default="1,64,512,4096")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    rows = [json.loads(line) for line in args.rows.read_text().splitlines() if line.strip()]
    scorer = MojoScorer.load(args.mojo)
    sizes = [int(s) for s in args.batch_sizes.split(",")]
    rates = measure_scoring(scorer, rows, sizes, args.rounds)
    print(f"{scorer!r}: {len(rows)} rows, median of {args.rounds} rounds")
    print(f"{'mode':<8} {'batch':>6} {'rows/s median':>14} {'rows/s best':>12}")
    for rate in rates:
        print(f"{rate.mode:<8} {rate.batch_size:>6} {rate.rows_per_second:>14,.0f} {rate.best_rows_per_second:>12,.0f}")
    if args.json is not None:
        args.json.write_text(json.dumps([asdict(rate) for rate in rates], indent=2) + "\n")


if __name__ == "__main__":
    main()

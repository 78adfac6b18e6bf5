"""Mergeable aggregations: pure functions over plain data, no Faust.

Each aggregation keeps an *intermediate representation* (IR) that is plain
JSON data (numbers, strings, lists), so the same state is written to RocksDB
by the online agents, built by the offline replay, and compared byte for byte.

Shape (Chronon's IR): ``init() -> ir``, ``update(ir, value, time_ms, seq) ->
ir``, ``merge(a, b) -> ir`` and ``finalize(ir) -> value``.  ``update`` and
``merge`` may mutate and return their first argument: callers own the IR.
``seq`` is the event's position in the entity's log, the tie-breaker for
"latest" when event times are equal.
"""
from __future__ import annotations

import base64
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import datasketches

IR = Any


@dataclass(frozen=True)
class Aggregation:
    """Base: subclasses define the IR operations. ``field`` None means "the event"."""

    field: str | None = None
    kind: ClassVar[str] = ""
    # count and sum are 0 over an empty window; everything else is null.
    needs_value: ClassVar[bool] = True

    def params(self) -> dict[str, Any]:
        return {"kind": self.kind, "field": self.field}

    def init(self) -> IR:
        raise NotImplementedError

    def update(self, ir: IR, value: Any, time_ms: int, seq: int) -> IR:
        raise NotImplementedError

    def merge(self, a: IR, b: IR) -> IR:
        raise NotImplementedError

    def merge_all(self, irs: list[IR]) -> IR:
        """``init`` merged with each IR in order (what a window read does over its tiles)."""
        acc = self.init()
        for ir in irs:
            acc = self.merge(acc, ir)
        return acc

    def finalize(self, ir: IR) -> Any:
        raise NotImplementedError


@dataclass(frozen=True)
class Count(Aggregation):
    kind: ClassVar[str] = "count"
    needs_value: ClassVar[bool] = False

    def init(self) -> int:
        return 0

    def update(self, ir: int, value: Any, time_ms: int, seq: int) -> int:
        return ir + 1

    def merge(self, a: int, b: int) -> int:
        return a + b

    def finalize(self, ir: int) -> int:
        return ir


@dataclass(frozen=True)
class Sum(Aggregation):
    kind: ClassVar[str] = "sum"

    def init(self) -> float:
        return 0.0

    def update(self, ir: float, value: float, time_ms: int, seq: int) -> float:
        return ir + value

    def merge(self, a: float, b: float) -> float:
        return a + b

    def finalize(self, ir: float) -> float:
        return ir


@dataclass(frozen=True)
class Mean(Aggregation):
    kind: ClassVar[str] = "mean"

    def init(self) -> list[float]:
        return [0.0, 0]

    def update(self, ir: list, value: float, time_ms: int, seq: int) -> list:
        ir[0] += value
        ir[1] += 1
        return ir

    def merge(self, a: list, b: list) -> list:
        a[0] += b[0]
        a[1] += b[1]
        return a

    def finalize(self, ir: list) -> float | None:
        return ir[0] / ir[1] if ir[1] else None


@dataclass(frozen=True)
class Min(Aggregation):
    kind: ClassVar[str] = "min"

    def init(self) -> None:
        return None

    def update(self, ir: float | None, value: float, time_ms: int, seq: int) -> float:
        return value if ir is None or value < ir else ir

    def merge(self, a: float | None, b: float | None) -> float | None:
        return a if b is None else self.update(a, b, 0, 0)

    def finalize(self, ir: float | None) -> float | None:
        return ir


@dataclass(frozen=True)
class Max(Aggregation):
    kind: ClassVar[str] = "max"

    def init(self) -> None:
        return None

    def update(self, ir: float | None, value: float, time_ms: int, seq: int) -> float:
        return value if ir is None or value > ir else ir

    def merge(self, a: float | None, b: float | None) -> float | None:
        return a if b is None else self.update(a, b, 0, 0)

    def finalize(self, ir: float | None) -> float | None:
        return ir


@dataclass(frozen=True)
class Stddev(Aggregation):
    """Population standard deviation via Welford/Chan: stable and mergeable."""

    kind: ClassVar[str] = "stddev"

    def init(self) -> list:
        return [0, 0.0, 0.0]  # n, mean, M2

    def update(self, ir: list, value: float, time_ms: int, seq: int) -> list:
        n = ir[0] + 1
        delta = value - ir[1]
        mean = ir[1] + delta / n
        ir[0], ir[1], ir[2] = n, mean, ir[2] + delta * (value - mean)
        return ir

    def merge(self, a: list, b: list) -> list:
        if b[0] == 0:
            return a
        if a[0] == 0:
            a[0], a[1], a[2] = b
            return a
        n = a[0] + b[0]
        delta = b[1] - a[1]
        a[1] = a[1] + delta * b[0] / n
        a[2] = a[2] + b[2] + delta * delta * a[0] * b[0] / n
        a[0] = n
        return a

    def finalize(self, ir: list) -> float | None:
        if ir[0] == 0:
            return None
        return math.sqrt(max(ir[2], 0.0) / ir[0])


@dataclass(frozen=True)
class Last(Aggregation):
    """Value of the latest event by event time; equal times go to the later in the log."""

    kind: ClassVar[str] = "last"

    def init(self) -> None:
        return None

    def update(self, ir: list | None, value: Any, time_ms: int, seq: int) -> list:
        if ir is None or (time_ms, seq) >= (ir[0], ir[1]):
            return [time_ms, seq, value]
        return ir

    def merge(self, a: list | None, b: list | None) -> list | None:
        return a if b is None else self.update(a, b[2], b[0], b[1])

    def finalize(self, ir: list | None) -> Any:
        return None if ir is None else ir[2]


@dataclass(frozen=True)
class LastK(Aggregation):
    """The k latest values, newest first, ordered like ``last``."""

    k: int = 5
    kind: ClassVar[str] = "last_k"

    def params(self) -> dict[str, Any]:
        return {**super().params(), "k": self.k}

    def init(self) -> list:
        return []

    def update(self, ir: list, value: Any, time_ms: int, seq: int) -> list:
        ir.append([time_ms, seq, value])
        ir.sort(key=lambda item: (item[0], item[1]), reverse=True)
        del ir[self.k :]
        return ir

    def merge(self, a: list, b: list) -> list:
        for item in b:
            self.update(a, item[2], item[0], item[1])
        return a

    def finalize(self, ir: list) -> list | None:
        return [item[2] for item in ir] or None


@dataclass(frozen=True)
class DistinctCount(Aggregation):
    """Exact distinct count; the IR is the sorted set of values (as strings)."""

    kind: ClassVar[str] = "distinct_count"

    def init(self) -> list:
        return []

    def update(self, ir: list, value: Any, time_ms: int, seq: int) -> list:
        key = str(value)
        if key not in ir:
            ir.append(key)
            ir.sort()
        return ir

    def merge(self, a: list, b: list) -> list:
        return sorted(set(a).union(b))

    def merge_all(self, irs: list[list]) -> list:  # one union, not one sort per tile
        return sorted(set().union(*irs))

    def finalize(self, ir: list) -> int | None:
        return len(ir) or None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text)


@dataclass(frozen=True)
class ApproxDistinct(Aggregation):
    """HyperLogLog distinct count; the IR is the compact sketch, base64."""

    lg_k: int = 12
    kind: ClassVar[str] = "approx_distinct"

    def params(self) -> dict[str, Any]:
        return {**super().params(), "lg_k": self.lg_k}

    def init(self) -> None:
        return None

    def update(self, ir: str | None, value: Any, time_ms: int, seq: int) -> str:
        sketch = (
            datasketches.hll_sketch(self.lg_k)
            if ir is None
            else datasketches.hll_sketch.deserialize(_unb64(ir))
        )
        sketch.update(str(value))
        return _b64(sketch.serialize_compact())

    def merge(self, a: str | None, b: str | None) -> str | None:
        if a is None or b is None:
            return a if b is None else b
        union = datasketches.hll_union(self.lg_k)
        union.update(datasketches.hll_sketch.deserialize(_unb64(a)))
        union.update(datasketches.hll_sketch.deserialize(_unb64(b)))
        return _b64(union.get_result().serialize_compact())

    def finalize(self, ir: str | None) -> float | None:
        if ir is None:
            return None
        return round(datasketches.hll_sketch.deserialize(_unb64(ir)).get_estimate(), 6)


@dataclass(frozen=True)
class ApproxQuantile(Aggregation):
    """Quantile within a relative error, from log-spaced buckets (DDSketch's
    mapping).  The IR is ``[zeros, {bucket: n} for x > 0, {bucket: n} for x < 0]``.

    Not KLL: KLL compacts with random coin flips, so two identical streams give
    different sketches (datasketches' ``kll_doubles_sketch`` does) and a replay
    could never equal the online value.  Counting buckets is deterministic,
    mergeable, and exact to ``relative_accuracy``."""

    q: float = 0.5
    relative_accuracy: float = 0.01
    kind: ClassVar[str] = "approx_quantile"

    def params(self) -> dict[str, Any]:
        return {**super().params(), "q": self.q, "relative_accuracy": self.relative_accuracy}

    @property
    def _gamma(self) -> float:
        return (1 + self.relative_accuracy) / (1 - self.relative_accuracy)

    def init(self) -> list:
        return [0, {}, {}]

    def update(self, ir: list, value: float, time_ms: int, seq: int) -> list:
        if value == 0:
            ir[0] += 1
            return ir
        buckets = ir[1] if value > 0 else ir[2]
        key = str(math.ceil(math.log(abs(value)) / math.log(self._gamma)))
        buckets[key] = buckets.get(key, 0) + 1
        return ir

    def merge(self, a: list, b: list) -> list:
        a[0] += b[0]
        for side in (1, 2):
            for key, count in b[side].items():
                a[side][key] = a[side].get(key, 0) + count
        return a

    def finalize(self, ir: list) -> float | None:
        total = ir[0] + sum(ir[1].values()) + sum(ir[2].values())
        if total == 0:
            return None
        gamma = self._gamma
        # ascending values: most negative first, then zero, then positives
        ordered = [(-2 * gamma ** int(k) / (gamma + 1), n) for k, n in sorted(ir[2].items(), key=lambda kv: -int(kv[0]))]
        ordered.append((0.0, ir[0]))
        ordered += [(2 * gamma ** int(k) / (gamma + 1), n) for k, n in sorted(ir[1].items(), key=lambda kv: int(kv[0]))]
        rank = self.q * (total - 1)
        seen = 0
        for value, count in ordered:
            seen += count
            if seen > rank:
                return value
        return ordered[-1][0]


KINDS: dict[str, type[Aggregation]] = {
    cls.kind: cls
    for cls in (
        Count, Sum, Mean, Min, Max, Stddev, Last, LastK,
        DistinctCount, ApproxDistinct, ApproxQuantile,
    )
}

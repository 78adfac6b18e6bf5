"""A histogram fed a batch at a time, for the ingest hot path.

prometheus-client's ``Histogram.observe`` takes a lock and walks its buckets
per value (a couple of µs); a flush that holds a thousand predictions would
pay that a thousand times.  Here a flush's values are binned with ``bisect``
into plain counters, and the family is built at scrape time, so the
exposition is the same as a ``Histogram``'s (cumulative ``_bucket``,
``_count`` and ``_sum``)."""
from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from prometheus_client.metrics_core import HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

Labels = tuple[str, ...]


@dataclass
class Bins:
    counts: list[int]
    total: float = 0.0


@dataclass(eq=False)  # registered by identity: a registry keys its collectors by hash
class BatchHistogram(Collector):
    name: str
    documentation: str
    buckets: tuple[float, ...]
    label_names: tuple[str, ...] = ()
    series: dict[Labels, Bins] = field(default_factory=dict)

    def _bins(self, labels: Labels) -> Bins:
        bins = self.series.get(labels)
        if bins is None:
            # One more slot than bounds: values above the last bound (the +Inf bucket).
            bins = self.series[labels] = Bins([0] * (len(self.buckets) + 1))
        return bins

    def observe_many(self, values: Iterable[float], labels: Labels = ()) -> None:
        bins, bounds = self._bins(labels), self.buckets
        counts = bins.counts
        total = 0.0
        for value in values:
            counts[bisect_left(bounds, value)] += 1  # "le": a value equal to a bound falls in it
            total += value
        bins.total += total

    def observe(self, value: float, count: int = 1, labels: Labels = ()) -> None:
        """``count`` observations of one value (a batch's share of one call)."""
        bins = self._bins(labels)
        bins.counts[bisect_left(self.buckets, value)] += count
        bins.total += value * count

    def count(self, labels: Labels = ()) -> int:
        bins = self.series.get(labels)
        return 0 if bins is None else sum(bins.counts)

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=list(self.label_names))
        bounds = [*(floatToGoString(b) for b in self.buckets), "+Inf"]
        for labels, bins in sorted(self.series.items()):
            cumulative, running = [], 0
            for bound, n in zip(bounds, bins.counts):
                running += n
                cumulative.append((bound, running))
            family.add_metric(list(labels), cumulative, bins.total)
        yield family

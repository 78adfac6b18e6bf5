"""The bench's table rows: each measured value next to the baseline it is
judged against, read from the medians of the rounds (flat ``a.b.c`` keys).

A stage that did not run, or had nothing to measure (no model deployed, so
no predictions), is a row with no value and a note saying why: the table
and the JSON always name every stage.
"""
from __future__ import annotations

from dataclasses import dataclass

from dev_tooling.bench_config import BenchConfig


@dataclass
class Row:
    stage: str  # the JSON key family, e.g. "baselines.raw_consume"
    label: str
    value: float | None
    unit: str
    baseline: str | None = None
    ratio: float | None = None
    note: str = ""
    detail: str = ""  # extra percentiles, shown after the value

    @property
    def shown(self) -> str:
        if self.value is None:
            return self.note or "-"
        text = f"{self.value:,.0f}" if self.value >= 100 else f"{self.value:,.2f}"
        return f"{text} ({self.detail})" if self.detail else text


def _ratio(values: dict[str, float], key: str, base_key: str) -> float | None:
    value, base = values.get(key), values.get(base_key)
    return value / base if value is not None and base else None


def _rate(values: dict[str, float], stage: str, label: str, key: str, unit: str = "events/s",
          baseline: tuple[str, str] | None = None, missing: str = "skipped") -> Row:
    value = values.get(key)
    return Row(stage, label, value, unit, baseline[0] if baseline else None,
               _ratio(values, key, baseline[1]) if baseline else None, "" if value is not None else missing)


def _latency(values: dict[str, float], stage: str, label: str, prefix: str, tail: str,
             baseline: tuple[str, str] | None = None, missing: str = "skipped") -> Row:
    """p50 as the value, p99 and the tail (p99.9 or max) beside it; the ratio is of p99s."""
    p50, p99, end = (values.get(f"{prefix}.{k}") for k in ("p50_ms", "p99_ms", tail))
    detail = f"p99 {p99:,.1f}, {tail[:-3]} {end:,.1f}" if p99 is not None and end is not None else ""
    ratio = _ratio(values, f"{prefix}.p99_ms", f"{baseline[1]}.p99_ms") if baseline else None
    return Row(stage, label, p50, "ms p50", baseline[0] if baseline else None, ratio,
               "" if p50 is not None else missing, detail)


def rows_of(values: dict[str, float], config: BenchConfig) -> list[Row]:
    bare = ("bare Faust consume", "baselines.faust_consume.per_second")
    worker = ("worker", "worker.ingest.events_per_s")
    model = "with flight_delay" if values.get("model_deployed") else "no model"
    rows = [
        _rate(values, "baselines.raw_consume", "raw aiokafka consume + json.loads", "baselines.raw_consume.per_second"),
        _rate(values, "baselines.raw_consume_produce", "raw aiokafka consume + parse + one produce per event",
              "baselines.raw_consume_produce.per_second", baseline=("raw consume", "baselines.raw_consume.per_second")),
        _rate(values, "baselines.faust_consume", "bare Faust agent, consume only", bare[1],
              baseline=("raw consume", "baselines.raw_consume.per_second")),
        _rate(values, "baselines.faust_table", "bare Faust + one RocksDB table write per event",
              "baselines.faust_table.per_second", baseline=bare),
        _rate(values, "worker.ingest", f"full worker, departures + re-keyed copies applied ({model})",
              worker[1], baseline=bare),
        _rate(values, "exactly_once.ingest", f"full worker under FS_PROCESSING_GUARANTEE=exactly_once ({model})",
              "exactly_once.ingest.events_per_s", baseline=worker),
        _rate(values, "monitor.ingest", f"full worker, `featurestream monitor` beside it ({model})",
              "monitor.ingest.events_per_s", baseline=worker),
        _rate(values, "cross_source.plain", "departures scored, flight_delay (nothing held; with arrivals, weather)",
              "cross_source.plain.scored_per_s", unit="departures/s",
              missing="no flight_delay in the registry (--train)"),
        _rate(values, "cross_source.held", "departures scored, flight_delay_xs (held for weather, arrivals)",
              "cross_source.held.scored_per_s", unit="departures/s",
              baseline=("flight_delay", "cross_source.plain.scored_per_s"),
              missing="no flight_delay_xs in the registry (--train)"),
        _latency(values, "cross_source.held_ms", "time a flight_delay_xs departure was held", "cross_source.held.held",
                 "max_ms", missing="no flight_delay_xs in the registry (--train)"),
        _rate(values, "worker.messages", "Kafka records written per departure (input excluded, changelogs included)",
              "worker.ingest.messages_per_departure", unit="records"),
    ]
    busy = config.ingest_rate
    for rate in config.read_rates:
        base = (f"bare Faust page at {rate}/s", f"baselines.faust_web.{rate}")
        rows.append(_latency(values, f"reads.bare_faust.{rate}", f"GET one table value, bare Faust, {rate} req/s",
                             f"baselines.faust_web.{rate}", "p999_ms"))
        rows.append(_latency(values, f"reads.idle.{rate}", f"GET /features, worker idle, {rate} req/s",
                             f"reads.idle.{rate}", "p999_ms", baseline=base))
    top = max(config.read_rates)
    rows.append(_latency(values, "reads.loaded", f"GET /features, worker ingesting {busy} ev/s, {top} req/s",
                         "reads.loaded.reads", "p999_ms", baseline=(f"bare Faust page at {top}/s",
                                                                    f"baselines.faust_web.{top}")))
    rows.append(_rate(values, "reads.quiet", f"ingest rate achieved, published at {busy}/s, no reads",
                      "reads.quiet.ingest_per_s"))
    rows.append(_rate(values, "reads.loaded_ingest", f"ingest rate achieved, published at {busy}/s, {top} req/s reads",
                      "reads.loaded.ingest_per_s", baseline=("no reads", "reads.quiet.ingest_per_s")))
    no_model = "no model deployed (train one: --train)" if "latency" not in config.skip else "skipped"
    for rate in config.latency_rates:
        rows.append(_latency(values, f"latency.prediction.{rate}", f"event to prediction (Kafka timestamps), {rate} ev/s",
                             f"latency.{rate}.event_to_prediction", "max_ms", missing=no_model))
        rows.append(_latency(values, f"latency.freshness.{rate}", f"freshness: event to GET /features showing it, {rate} ev/s",
                             f"latency.{rate}.freshness", "max_ms"))
    rows.append(_rate(values, "offline.replay", "replay of the topic (log_reader + tables.replay)",
                      "offline.replay.per_second", baseline=worker))
    rows.append(_rate(values, "offline.training_set", "training set, origin_traffic point-in-time (replay included)",
                      "offline.training_set.per_second", unit="rows/s", baseline=worker))
    return rows

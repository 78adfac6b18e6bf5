"""Replay equals online: a live worker over more than 20,000 real events (with
malformed, late and repeated records mixed in mid-stream), then
`featurestream replay` over the same log finds zero differences, compared as
exact values (type and value), and makes the same late/duplicate/invalid decisions."""
from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

import pytest

from dev_tooling import flights_data
from kafka_plumbing.producer import encode, produce, produce_raw
from app.row_files import read_rows
from tables.definitions import load as load_definitions
from tables.partitioning import key_partition
from tests.integration.conftest import Worker, consume_all, consume_until, decode
from tests.integration.noise import late_copies, malformed

LIMIT = 10_000


@pytest.fixture(scope="module")
def produced(worker: Worker) -> dict[str, Any]:
    settings = worker.settings
    definitions = load_definitions(settings.features_module)
    by_source = flights_data.load_events(limit=LIMIT, progress=False)
    interleaved = list(flights_data.iter_interleaved(by_source))
    half = len(interleaved) // 2
    asyncio.run(produce(settings, definitions.key_fields(), iter(interleaved[:half]), half, progress=False))

    # mid-stream noise, so later events are processed after it
    recent = [e for s, e in interleaved[:half] if s == "departures"][-15:]
    noise = [(k.encode(), payload) for k, payload, _ in malformed(recent[-1])]
    noise += [(e["origin"].encode(), encode(e)) for e in late_copies(recent[-1], 4, 3 * 3600_000)]
    noise += [(e["origin"].encode(), encode(e)) for e in recent]  # re-sent: duplicates
    # dated 2099: rejected by its Kafka timestamp; applied, it would make every later event of its partition late
    noise.append((recent[-1]["origin"].encode(),
                  encode({**recent[-1], "event_id": "far-future", "event_time": "2099-06-01T00:00:00.000Z"})))
    asyncio.run(produce_raw(settings, settings.topics.events("departures"), noise))
    # a valid departure in a partition its key does not hash to (another partitioner): rejected, not applied
    misplaced = {**recent[-1], "event_id": "wrong-partition"}
    home = key_partition(misplaced["origin"], settings.partitions)
    asyncio.run(produce_raw(settings, settings.topics.events("departures"),
                            [(misplaced["origin"].encode(), encode(misplaced))], partition=(home + 1) % settings.partitions))
    arrivals = [e for s, e in interleaved[:half] if s == "arrivals"][-5:]
    asyncio.run(produce_raw(settings, settings.topics.events("arrivals"), [(e["dest"].encode(), encode(e)) for e in arrivals]))

    rest = interleaved[half:]
    asyncio.run(produce(settings, definitions.key_fields(), iter(rest), len(rest), progress=False))
    sent = {name: len(events) for name, events in by_source.items()}
    sent["departures"] += len(noise) + 1  # and the misplaced one
    sent["arrivals"] += len(arrivals)
    for name, n in sent.items():
        worker.wait_for(name, n)
    # re-keyed logs get every applied event of their parent (no null keys in this data)
    for derived, parent in (("departures.by_tailnum", "departures"), ("arrivals.by_carrier", "arrivals")):
        worker.wait_for(derived, worker.counts(parent)["applied"])
    assert sum(len(v) for v in by_source.values()) >= 20_000
    return {"sent": sent, "definitions": definitions}


def run_replay(worker: Worker, source: str, out: Path) -> None:
    result = worker.cli("replay", "--source", source, "--from-topic", "--out", str(out))
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    "source", ["departures", "arrivals", "weather", "departures.by_tailnum", "arrivals.by_carrier"]
)
def test_replay_equals_online_exactly(worker: Worker, produced: dict[str, Any], source: str, tmp_path: Path) -> None:
    out = tmp_path / f"{source}.parquet"
    run_replay(worker, source, out)
    replayed = {row["event_id"]: row for row in read_rows(out)}
    counts = worker.counts(source)
    served = consume_until(worker.settings, worker.settings.topics.features(source),
                           lambda rs: len(rs) >= counts["applied"])
    assert len(served) == counts["applied"] == len(replayed)

    differences = []
    for record in served:
        row = replayed[record["event_id"]]
        if (row["partition"], row["offset"], row["event_time_ms"]) != (record["partition"], record["offset"], record["event_time_ms"]):
            differences.append((record["event_id"], "position"))
        for view, values in record["features"].items():
            for name, value in values.items():
                got = row[f"{view}.{name}"]
                if got != value or type(got) is not type(value):
                    differences.append((record["event_id"], f"{view}.{name}", value, got))
    assert differences == []
    if source == "departures":
        assert counts["late"] == 4 and counts["duplicate"] == 15 and counts["invalid"] >= 30


def test_a_record_in_the_wrong_partition_is_a_dead_letter_online_and_invalid_in_replay(
    worker: Worker, produced: dict[str, Any]
) -> None:
    letters = [r for r in decode(consume_all(worker.settings, worker.settings.topics.dlq))
               if r["reason"] == "wrong_partition"]
    assert len(letters) == 1, letters
    letter = letters[0]
    home = key_partition(json.loads(base64.b64decode(letter["original_b64"]))["origin"], worker.settings.partitions)
    assert letter["partition"] == (home + 1) % worker.settings.partitions
    assert f"belongs in partition {home}" in letter["detail"]


def test_replay_from_file_matches_topic_for_one_partition(worker: Worker, produced: dict[str, Any], tmp_path: Path) -> None:
    """The exported-file path: one partition's log as JSON Lines gives the same rows."""
    log = [m for m in consume_all(worker.settings, worker.settings.topics.events("weather"))]
    partition = log[0].partition
    events = tmp_path / "weather.jsonl"
    events.write_bytes(b"".join(m.value + b"\n" for m in log if m.partition == partition))
    out = tmp_path / "weather-file.jsonl"
    result = worker.cli("replay", "--source", "weather", "--events", str(events), "--out", str(out))
    assert result.returncode == 0, result.stderr
    from_file = read_rows(out)
    served = [r for r in decode(consume_all(worker.settings, worker.settings.topics.features("weather"))) if r["partition"] == partition]
    assert [r["event_id"] for r in from_file] == [r["event_id"] for r in sorted(served, key=lambda r: r["offset"])]
    by_id = {r["event_id"]: r for r in served}
    for row in from_file:
        for name, value in by_id[row["event_id"]]["features"]["origin_weather"].items():
            assert row[f"origin_weather.{name}"] == value


def test_training_set_counts_only_arrivals_before_each_departure(
    worker: Worker, produced: dict[str, Any], tmp_path: Path
) -> None:
    """Leakage: a departure's carrier 24 h arrival features see only arrivals that
    had happened; a naive same-day join sees the future and differs."""
    import pandas as pd

    from app.row_files import write_rows
    from tests import oracle

    events = flights_data.load_events(limit=LIMIT, progress=False)
    departures = pd.DataFrame(events["departures"])
    arrivals = pd.DataFrame(events["arrivals"])
    arrivals["time_ms"] = arrivals.event_time.map(flights_data.event_time_ms)
    labels = departures[["flight_id", "carrier", "event_time"]].rename(columns={"event_time": "time"})
    labels = labels.merge(arrivals[["flight_id", "arr_delayed_15"]], on="flight_id", how="left")
    labels = labels.rename(columns={"arr_delayed_15": "label"}).iloc[::7].reset_index(drop=True)
    labels_path = tmp_path / "labels.jsonl"
    write_rows(labels_path, labels.astype(object).where(labels.notna(), None).to_dict("records"), list(labels.columns))

    out = tmp_path / "training.parquet"
    result = worker.cli("training-set", "--labels", str(labels_path), "--views", "carrier_arrivals", "--out", str(out))
    assert result.returncode == 0, result.stderr
    rows = pd.read_parquet(out)
    assert len(rows) == len(labels)

    view = produced["definitions"].views["carrier_arrivals"]
    specs = oracle.specs_of(view)
    times = rows.time.map(flights_data.event_time_ms)
    future_seen_naive = 0
    differs = 0
    for i, at in enumerate(times):
        carrier = rows.carrier[i]
        want = oracle.as_of(arrivals, specs, "carrier", carrier, at)
        assert rows["carrier_arrivals.count_24h"][i] == want["count_24h"], (i, carrier)
        got_mean = rows["carrier_arrivals.mean_arr_delay_24h"][i]
        assert (pd.isna(got_mean) and want["mean_arr_delay_24h"] is None) or abs(got_mean - want["mean_arr_delay_24h"]) < 1e-9
        # nothing after the departure is counted
        mine = arrivals[arrivals.carrier == carrier]
        assert rows["carrier_arrivals.count_24h"][i] <= int((mine.time_ms <= at).sum())
        # the naive join: the carrier's arrivals of the same UTC day, whatever their time
        day = at // 86_400_000
        naive = mine[mine.time_ms // 86_400_000 == day]
        future_seen_naive += int((naive.time_ms > at).any())
        differs += int(len(naive) != rows["carrier_arrivals.count_24h"][i])
    assert future_seen_naive > len(rows) * 0.5  # the naive join leaks for most rows
    assert differs > len(rows) * 0.5

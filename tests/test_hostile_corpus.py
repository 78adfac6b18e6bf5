"""The hostile corpus, offline: its listing is current, and the engine (the
replay's path, no broker) gives every record the outcome the corpus expects.
The real worker on a real broker is checked in
tests/integration/test_hostile_corpus.py."""
from __future__ import annotations

import json
import time
from collections import Counter

from dev_tooling import flights_data
from tables.flights import departures as source
from tables.log_record import LogRecord
from tables.partitioning import key_partition
from tables.processor import SourceProcessor, Stores
from tables.replay import take
from tests.hostile_corpus import BEFORE, LISTING, PARTITIONS, Hostile, anchors, corpus

MAX_PAYLOAD = 64 * 1024


def outcome_of(processor: SourceProcessor, stores: Stores, record: LogRecord) -> str:
    checked, outcome, rejection = take(processor, stores, record, MAX_PAYLOAD)
    if outcome is None:
        return "marker"
    if rejection is not None:
        return rejection.reason
    return outcome.status


def test_every_record_gets_its_expected_outcome_from_the_engine() -> None:
    events = flights_data.load_events(limit=BEFORE, sources=("departures",), progress=False)["departures"]
    records = corpus(*anchors(events), PARTITIONS)
    assert len(records) >= 200
    processor = SourceProcessor(source, [])
    stores = Stores.in_memory([])
    offsets = [0] * PARTITIONS
    now = int(time.time() * 1000)

    def log(partition: int, value: bytes | None, headers: tuple = ()) -> LogRecord:
        offsets[partition] += 1
        return LogRecord.of(partition, offsets[partition] - 1, value, list(headers), now, PARTITIONS)

    for event in events:
        partition = key_partition(event["origin"], PARTITIONS)
        assert outcome_of(processor, stores, log(partition, json.dumps(event).encode())) == "applied"
    wrong: list[tuple[int, str, str, bytes]] = []
    for n, hostile in enumerate(records):
        got = outcome_of(processor, stores, log(hostile.partition, hostile.payload, hostile.headers))
        if got != hostile.expect:
            wrong.append((n, hostile.kind, f"expected {hostile.expect}, got {got}", (hostile.payload or b"")[:120]))
    assert wrong == []
    print(f"hostile corpus offline: {len(records)} records, {dict(Counter(r.expect for r in records))}")


def test_the_listing_is_current() -> None:
    """tests/data/hostile_departures.jsonl is what ``python -m tests.hostile_corpus`` writes."""
    events = flights_data.load_events(limit=BEFORE, sources=("departures",), progress=False)["departures"]
    records: list[Hostile] = corpus(*anchors(events), PARTITIONS)
    want = [r.listing(n) for n, r in enumerate(records)]
    got = [json.loads(line) for line in LISTING.read_text().splitlines()]
    assert got == want, "rewrite it: python -m tests.hostile_corpus"

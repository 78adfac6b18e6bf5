"""Schema validation of raw records: each rule, and what passes."""
from __future__ import annotations

import json

import pytest

from tables.validation import Rejection, Valid, parse_time_ms, validate
from tables.flights import departures

GOOD = {
    "event_id": "dep-1", "event_time": "2013-01-01T10:17:00.000Z", "flight_id": "f1",
    "origin": "EWR", "dest": "IAH", "carrier": "UA", "flight": 1545, "tailnum": "N14228",
    "dep_delay": 2.0, "distance": 1400.0,
}


def check(payload: bytes, limit: int = 64 * 1024) -> Valid | Rejection:
    return validate(departures, payload, limit)


def with_(**changes) -> bytes:
    return json.dumps({**GOOD, **changes}).encode()


def test_good_record_passes_with_its_time() -> None:
    result = check(json.dumps(GOOD).encode())
    assert isinstance(result, Valid)
    assert result.time_ms == 1357035420000
    assert result.record["origin"] == "EWR"


def test_integers_are_valid_floats_and_unknown_fields_are_kept() -> None:
    result = check(with_(dep_delay=3, extra="kept"))
    assert isinstance(result, Valid) and result.record["extra"] == "kept"


def test_optional_fields_may_be_null() -> None:
    assert isinstance(check(with_(tailnum=None, distance=None)), Valid)


@pytest.mark.parametrize(
    "payload, reason",
    [
        (b"{oops", "invalid_json"),
        (b"\xff\xfe", "invalid_json"),
        (None, "invalid_json"),
        (b"[1]", "not_an_object"),
        (with_(origin=None), "missing_field"),
        (json.dumps({k: v for k, v in GOOD.items() if k != "event_id"}).encode(), "missing_field"),
        (with_(dep_delay="7"), "wrong_type"),
        (with_(dep_delay=False), "wrong_type"),
        (with_(flight=2.5), "wrong_type"),
        (with_(carrier=3), "wrong_type"),
        (with_(dep_delay=float("nan")), "not_finite"),
        (with_(dep_delay=float("inf")), "not_finite"),
        (with_(event_time="soon"), "bad_timestamp"),
        (with_(event_time="2013-01-01T10:17:00"), "bad_timestamp"),
        (with_(event_time=[2013]), "bad_timestamp"),
        (with_(event_time="1900-01-01T00:00:00Z"), "absurd_timestamp"),
        (with_(event_time=1357035420), "absurd_timestamp"),
    ],
)
def test_rejections_have_stable_reasons(payload: bytes | None, reason: str) -> None:
    result = check(payload)
    assert isinstance(result, Rejection)
    assert result.reason == reason
    assert result.detail


def test_size_limit_is_checked_before_parsing() -> None:
    result = check(with_(pad="x" * 200), limit=100)
    assert isinstance(result, Rejection) and result.reason == "too_large"


def test_time_formats() -> None:
    assert parse_time_ms("2013-01-01T05:17:00-05:00") == parse_time_ms("2013-01-01T10:17:00Z")
    assert parse_time_ms(1357035420000) == 1357035420000
    with pytest.raises(ValueError):
        parse_time_ms(True)


@pytest.mark.parametrize("payload", [
    b"[" * 5000 + b"]" * 5000,  # deeper than the parser recurses
    b'{"a": ' * 3000 + b"1" + b"}" * 3000,
    b'{"n": ' + b"9" * 5000 + b"}",  # an integer past Python's digit limit
])
def test_hostile_json_is_invalid_not_an_error(payload: bytes) -> None:
    result = check(payload)
    assert isinstance(result, Rejection) and result.reason == "invalid_json", result


@pytest.mark.parametrize("header", [b"abc", b"-3", b"\xff"])
def test_a_forged_lane_header_is_rejected_online_and_in_the_replay_alike(header: bytes) -> None:
    from tables.log_record import LogRecord
    from tables.processor import SourceProcessor, Stores
    from tables.replay import take

    lane = LogRecord.of(0, 7, json.dumps(GOOD).encode(), [("fs-lane", header)]).lane
    result = validate(departures, json.dumps(GOOD).encode(), 64 * 1024, lane)
    assert isinstance(result, Rejection) and result.reason == "bad_lane_header"
    processor = SourceProcessor(departures, [])
    checked, outcome, _ = take(processor, Stores.in_memory([]), LogRecord.of(0, 7, json.dumps(GOOD).encode(),
                                                                         [("fs-lane", header)]), 64 * 1024)
    assert checked is None and outcome is not None and outcome.status == "invalid"
    by_tailnum = departures.keyed_by("tailnum")
    assert validate(by_tailnum, json.dumps(GOOD).encode(), 64 * 1024, 2).__class__ is Valid


def test_a_lane_header_on_a_sources_own_topic_is_rejected() -> None:
    """Found by the hostile corpus: a lane gave the record a clock and dedup ids of
    its own, so a late event or an exact re-send carrying ``fs-lane: 0`` was applied."""
    from tables.log_record import LogRecord
    from tables.processor import SourceProcessor, Stores
    from tables.replay import take

    result = validate(departures, json.dumps(GOOD).encode(), 64 * 1024, 0)
    assert isinstance(result, Rejection) and result.reason == "bad_lane_header"
    processor = SourceProcessor(departures, [])
    stores = Stores.in_memory([])
    good = json.dumps(GOOD).encode()
    assert take(processor, stores, LogRecord(0, 0, good), 64 * 1024).outcome.status == "applied"  # type: ignore[union-attr]
    resent = take(processor, stores, LogRecord.of(0, 1, good, [("fs-lane", b"0")]), 64 * 1024)
    assert resent.outcome is not None and resent.outcome.status == "invalid"
    assert resent.rejection is not None and resent.rejection.reason == "bad_lane_header"


def _nested(depth: int, inner: str = "1") -> bytes:
    """GOOD with an extra field nested so that the whole record is ``depth`` levels deep."""
    extra = "[" * (depth - 1) + inner + "]" * (depth - 1)
    return json.dumps({**GOOD, "extra": "X"}).encode().replace(b'"X"', extra.encode())


def _at_stack_depth(frames: int, call):  # type: ignore[no-untyped-def]
    return call() if frames == 0 else _at_stack_depth(frames - 1, call)


def test_nesting_is_judged_by_depth_not_by_the_callers_stack() -> None:
    """Found by the hostile corpus: 990 levels parsed at the top of a stack and failed
    deeper in one (the worker's), and 500 levels with an escaped emoji raised
    RecursionError from the surrogate check (the replay stopped; the worker
    neither counted the record nor said why)."""
    assert isinstance(check(_nested(100)), Valid)
    assert isinstance(check(_nested(100, '"\\ud83d\\ude00"')), Valid)
    for payload in (_nested(101), _nested(990), _nested(500, '"\\ud83d\\ude00"')):
        for frames in (0, 600):
            result = _at_stack_depth(frames, lambda: check(payload))
            assert isinstance(result, Rejection) and result.reason == "invalid_json", (len(payload), frames)
            assert "deeper than 100" in result.detail
    brackets_in_text = with_(extra="[" * 5000 + "{" * 5000)  # text, not nesting
    assert isinstance(check(brackets_in_text), Valid)


@pytest.mark.parametrize("payload", [
    b"\xef\xbb\xbf" + json.dumps(GOOD).encode(),  # a byte-order mark
    json.dumps(GOOD).encode("utf-16"),
    json.dumps(GOOD).encode("utf-16-le"),
    json.dumps(GOOD).encode("utf-32"),
    json.dumps({**GOOD, "dest": "X"}).encode().replace(b'"X"', b'"\xed\xa0\x80"'),  # a surrogate as raw bytes
    json.dumps({**GOOD, "origin": "X"}).encode().replace(b'"X"', b'"\xed\xb0\x80"'),
])
def test_only_utf8_json_is_json(payload: bytes) -> None:
    """Found by the hostile corpus: json.loads(bytes) took UTF-16/32 and a BOM, and
    let raw surrogate bytes through into keys that cannot be encoded again."""
    result = check(payload)
    assert isinstance(result, Rejection) and result.reason == "invalid_json", result


def test_numbers_past_their_types_range_are_rejected_not_raised() -> None:
    """Found by the hostile corpus: a 4,000-digit integer in a float field raised
    OverflowError out of validation (the replay stopped)."""
    result = check(with_(dep_delay=10**4000))
    assert isinstance(result, Rejection) and result.reason == "not_finite"
    assert check(with_(dep_delay=-(10**400))).reason == "not_finite"  # type: ignore[union-attr]
    assert isinstance(check(with_(dep_delay=10**300)), Valid)  # an integer float can hold
    assert isinstance(check(with_(flight=2**63 - 1)), Valid)
    assert isinstance(check(with_(flight=-(2**63))), Valid)
    for flight in (2**63, -(2**63) - 1, 10**4000):
        result = check(with_(flight=flight))
        assert isinstance(result, Rejection) and result.reason == "wrong_type" and "64-bit" in result.detail


def test_a_lone_surrogate_is_rejected_and_a_pair_is_an_ordinary_character() -> None:
    lone = json.dumps({**GOOD, "origin": "\ud800"}).encode()  # json.dumps writes it as \\ud800
    assert b"\\ud800" in lone
    result = check(lone)
    assert isinstance(result, Rejection) and result.reason == "invalid_unicode"
    nested = json.dumps({**GOOD, "extra": {"k": ["\udfff"]}}).encode()
    assert check(nested).reason == "invalid_unicode"  # type: ignore[union-attr]
    pair = with_(origin="\U0001F600")  # json.dumps writes the pair \\ud83d\\ude00
    assert isinstance(check(pair), Valid)


def test_an_event_far_after_its_kafka_timestamp_is_rejected_by_that_timestamp_not_the_clock() -> None:
    from tables.log_record import LogRecord
    from tables.processor import SourceProcessor, Stores
    from tables.replay import take

    published = 1357035420000 - 3600_000  # Kafka took it an hour before its event time: fine
    assert isinstance(validate(departures, json.dumps(GOOD).encode(), 64 * 1024, None, published), Valid)
    far = with_(event_time="2099-06-01T00:00:00Z")
    result = validate(departures, far, 64 * 1024, None, published)
    assert isinstance(result, Rejection) and result.reason == "future_event"
    assert isinstance(validate(departures, far, 64 * 1024), Valid)  # no timestamp (an exported file): not judged
    processor = SourceProcessor(departures, [])
    checked, outcome, _ = take(processor, Stores.in_memory([]), LogRecord(0, 3, far, timestamp_ms=published), 64 * 1024)
    assert checked is None and outcome is not None and outcome.status == "invalid"  # the replay decides the same


def test_an_event_in_another_partition_than_its_key_hashes_to_is_rejected() -> None:
    from tables.log_record import LogRecord
    from tables.partitioning import key_partition
    from tables.processor import SourceProcessor, Stores
    from tables.replay import take

    good = json.dumps(GOOD).encode()
    home = key_partition("EWR", 4)
    elsewhere = (home + 1) % 4
    assert isinstance(validate(departures, good, 64 * 1024, placed=(home, 4)), Valid)
    result = validate(departures, good, 64 * 1024, placed=(elsewhere, 4))
    assert isinstance(result, Rejection) and result.reason == "wrong_partition"
    assert f"belongs in partition {home} of 4" in result.detail and f"not {elsewhere}" in result.detail
    assert isinstance(validate(departures, good, 64 * 1024), Valid)  # an exported file: not judged
    processor = SourceProcessor(departures, [])
    taken = take(processor, Stores.in_memory([]), LogRecord(elsewhere, 0, good, partitions=4), 64 * 1024)
    assert taken.outcome is not None and taken.outcome.status == "invalid"  # the replay decides the same
    assert taken.rejection is not None and taken.rejection.reason == "wrong_partition"


def test_key_partition_is_kafkas_default_partitioner() -> None:
    import random

    from aiokafka.partitioner import murmur2 as kafka_murmur2

    from tables.partitioning import key_partition

    rng = random.Random(7)
    keys = ["", "a", "ab", "abc", "abcd", "EWR", "N14228", "ünïcödé", "\U0001F600"]
    keys += ["".join(chr(rng.randrange(32, 0x2FFF)) for _ in range(rng.randrange(0, 30))) for _ in range(2000)]
    for key in keys:
        for partitions in (1, 4, 12):
            expected = (kafka_murmur2(key.encode()) & 0x7FFFFFFF) % partitions
            assert key_partition(key, partitions) == expected, (key, partitions)

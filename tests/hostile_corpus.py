"""A hostile input corpus for the ``departures`` source, each record with the
outcome the product must give it.

Deterministic: built from real departures (the anchor is the last event
published before the corpus), so the same data gives the same bytes.  The
integration test (``tests/integration/test_hostile_corpus.py``) publishes it
between real departures; ``python -m tests.hostile_corpus`` writes the
inspectable listing ``tests/data/hostile_departures.jsonl`` (the test checks
that it is current).

Outcomes: a dead-letter reason (``tables/validation.py`` and ``late``),
``applied``, ``duplicate`` (counted, neither applied nor a dead letter) or
``marker`` (an ``fs-control`` header: not an event, skipped and not counted,
as docs/ingestion.md says).  Every rule an ``applied`` relies on is written
in docs/ingestion.md ("What is accepted").
"""
from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from tables.partitioning import key_partition, murmur2
from tests.integration.noise import iso, malformed

LISTING = Path(__file__).parent / "data" / "hostile_departures.jsonl"
BEFORE = 1500  # real departures published before the corpus (the anchor is the last)
PARTITIONS = 4  # the corpus places records for this many partitions (the integration tests' count)
# The events topic takes the broker's default max.message.bytes (about 1 MiB,
# kafka_plumbing/topics.py sets no other): a larger value gets in only inside
# a compressed batch, which is what the broker measures.
HUGE_BYTES = 1_500_000
BIG_BYTES = 900_000


@dataclass(frozen=True)
class Hostile:
    kind: str  # the class of bad input: one row of the table in docs/RELIABILITY.md
    payload: bytes | None  # None: a null value (a tombstone)
    expect: str  # a dead-letter reason, "applied", "duplicate" or "marker"
    key: bytes | None  # the Kafka key; None: a null key
    partition: int  # the partition it is produced to
    headers: tuple[tuple[str, bytes], ...] = ()
    compress: bool = False  # produced gzip-compressed (the only way past max.message.bytes)
    entity: str | None = None  # the origin of an applied record, read back over HTTP

    def listing(self, n: int) -> dict[str, Any]:
        """One line of the inspectable file: enough to see what it is, not the megabytes."""
        value = self.payload or b""
        line: dict[str, Any] = {
            "n": n, "kind": self.kind, "expect": self.expect, "partition": self.partition,
            "key_b64": None if self.key is None else base64.b64encode(self.key[:200]).decode(),
            "key_bytes": None if self.key is None else len(self.key),
            "headers": [[k, v.decode("latin-1")] for k, v in self.headers], "compress": self.compress,
            "payload_bytes": None if self.payload is None else len(value),
            "payload_sha256": hashlib.sha256(value).hexdigest(),
        }
        # readable (bytes that are not UTF-8 as \xNN); exact (base64) when small,
        # else rebuilt by corpus() and checked by its hash
        line["payload_text"] = value[:300].decode("utf-8", "backslashreplace")
        if len(value) <= 4096:
            line["payload_b64"] = base64.b64encode(value).decode()
        return line


def kafka_partition(key: bytes, partitions: int) -> int:
    """Where Kafka's default partitioner (murmur2) puts a non-null key."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def corpus(anchor: dict, old: dict, recent: list[dict], partitions: int) -> list[Hostile]:
    """``anchor``: the last departure published before the corpus; ``old``: an
    earlier one of the same origin, more than the lateness (1 h) before it;
    ``recent``: the last departures published (re-sent: duplicates)."""
    from dev_tooling.flights_data import event_time_ms

    t0 = event_time_ms(anchor)
    assert t0 - event_time_ms(old) > 3600_000 and old["origin"] == anchor["origin"]
    home = anchor["origin"]
    out: list[Hostile] = []

    def raw(kind: str, payload: bytes | None, expect: str, key: bytes | None = home.encode(),
            partition: int | None = None, **extra: Any) -> None:
        if partition is None:
            partition = kafka_partition(key, partitions) if key is not None else key_partition(home, partitions)
        out.append(Hostile(kind, payload, expect, key, partition, **extra))

    def event(**changes: Any) -> dict:
        """A valid departure at the anchor's time, with its own id."""
        return {**anchor, "event_id": f"hostile-{len(out)}", "event_time": iso(t0), **changes}

    def send(kind: str, record: dict, expect: str, **extra: Any) -> None:
        """A record keyed and placed by its origin, as every producer of the product does."""
        origin = record.get("origin")
        key = str(origin).encode("utf-8", "surrogatepass") if origin is not None else home.encode()
        entity = origin if expect == "applied" else None
        raw(kind, encode(record), expect, key, entity=entity, **extra)

    def spliced(record: dict, marker: str, text: bytes) -> bytes:
        """``record`` as JSON with the string ``marker`` replaced by raw ``text``."""
        return encode(record).replace(json.dumps(marker).encode(), text)

    # -- the shared list of malformed records (tests/integration/noise.py) ----
    for key, payload, reason in malformed(anchor):
        raw("malformed (noise.malformed)", payload, reason, key.encode())

    # -- not JSON, or not UTF-8 -----------------------------------------------
    good = encode(event())
    for payload in (good[: len(good) // 2], good + b" trailing", good + good, good.replace(b'"', b"'"),
                    good[:-1] + b",}", b"/* c */" + good, good + b"\x00", b" \n\t ", b"{}}", b"{" * 50):
        raw("invalid JSON", payload, "invalid_json")
    raw("invalid JSON", None, "invalid_json")  # a tombstone on the log
    raw("invalid JSON", b'{"n": ' + b"9" * 5000 + b"}", "invalid_json")  # past Python's 4,300 digits
    bad_utf8 = [b"\xe9", b"\xc0\xaf", b"\xe2\x82", b"\xf4\x90\x80\x80", b"\x80", b"\xff", b"\xed\xa0\x80",
                b"\xed\xbf\xbf", b"\xf0\x9f\x98"]
    for text in bad_utf8:
        raw("invalid UTF-8 (raw bytes)", spliced(event(dest="@"), "@", b'"' + text + b'"'), "invalid_json")
    raw("invalid UTF-8 (raw bytes)", spliced(event(origin="@"), "@", b'"\xed\xa0\x80"'), "invalid_json")
    raw("invalid UTF-8 (raw bytes)", b"\xef\xbb\xbf" + encode(event()), "invalid_json")  # a BOM
    for codec in ("utf-16", "utf-16-le", "utf-32"):
        raw("invalid UTF-8 (raw bytes)", encode(event()).decode().encode(codec), "invalid_json")
    for text in (b'"a\x01b"', b'"a\nb"', b'"a\tb"'):  # control characters must be escaped
        raw("invalid JSON", spliced(event(dest="@"), "@", text), "invalid_json")

    # -- wrong types, missing and extra fields ---------------------------------
    for name, value in (("event_id", 17), ("event_id", ["x"]), ("event_id", {"id": 1}), ("event_id", True),
                        ("origin", ["JFK"]), ("origin", {"code": "JFK"}), ("origin", 3.5), ("dest", 1),
                        ("carrier", False), ("dep_delay", "12"), ("dep_delay", {"v": 1}), ("dep_delay", [1.0]),
                        ("flight", "12"), ("flight", 12.0), ("month", True), ("tailnum", 7),
                        ("distance", "far"), ("sched_dep_time", 5.5)):
        send("wrong type", event(**{name: value}), "wrong_type")
    for name in ("event_id", "event_time", "origin", "flight_id", "dest", "carrier", "dep_delay"):
        record = event()
        record[name] = None
        send("missing field (null)", record, "missing_field")
    raw("missing field (null)", b"{}", "missing_field")
    send("extra fields (ignored)", event(extra="kept", nested={"a": [1, {"b": None}]}), "applied")
    send("extra fields (ignored)", event(**{f"x{i}": i for i in range(3000)}), "applied")
    send("extra fields (ignored)", event(**{"": "empty name", "dep_delay ": "spaced name"}), "applied")
    send("missing field (null)", event(dest="", carrier=""), "applied")  # empty is present: only null is missing
    # duplicate member names: the last one wins (Python's json, the one parser online and offline)
    doubled = encode(event(origin="LGA"))[:-1] + b',"origin":"EWR"}'
    raw("duplicate member names", doubled, "applied", b"EWR", kafka_partition(b"EWR", partitions), entity="EWR")
    doubled = encode(event(dep_delay=1.0))[:-1] + b',"dep_delay":"late"}'
    raw("duplicate member names", doubled, "wrong_type")

    # -- numbers -----------------------------------------------------------------
    for text in (b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-1e400", b"1" + b"0" * 400,
                 b"-" + b"9" * 4000):
        raw("NaN, infinity, past float range", spliced(event(dep_delay="@"), "@", text), "not_finite")
    raw("NaN, infinity, past float range", spliced(event(distance="@"), "@", b"1e999"), "not_finite")
    raw("NaN, infinity, past float range", spliced(event(flight="@"), "@", b"1e400"), "wrong_type")
    for text in (b"9223372036854775808", b"-9223372036854775809", b"9" * 4000):
        raw("integer past 64 bits", spliced(event(flight="@"), "@", text), "wrong_type")
    raw("NaN, infinity, past float range", spliced(event(extra="@"), "@", b"1e400"), "applied", entity=home)
    raw("NaN, infinity, past float range", spliced(event(extra="@"), "@", b"NaN"), "applied", entity=home)
    for value in (-0.0, 5e-324, 1e308, -1e308):
        send("extreme finite numbers", event(origin=f"NUM{value!r}", dep_delay=value), "applied")
    send("extreme finite numbers", event(flight=2**63 - 1, sched_dep_time=-(2**63)), "applied")
    for _ in range(2):  # each finite, their sum is not: the entity's sum overflows to infinity
        send("extreme finite numbers", event(origin="OVERFLOW", dep_delay=1.5e308), "applied")

    # -- size and nesting ------------------------------------------------------------
    limit = 64 * 1024
    sized = event(pad="")
    pad = limit - len(encode(sized))
    send("size", {**sized, "pad": "p" * pad}, "applied")  # exactly FS_MAX_PAYLOAD_BYTES
    send("size", {**sized, "pad": "p" * (pad + 1)}, "too_large")  # one byte more (the same id: never reaches dedup)
    assert len(out[-2].payload or b"") == limit and len(out[-1].payload or b"") == limit + 1
    send("size", event(pad="q" * 200_000), "too_large")
    send("size", event(pad="r" * BIG_BYTES), "too_large")  # inlined in the dead letter only up to 256 KiB
    send("size", event(pad="s" * HUGE_BYTES), "too_large", compress=True)
    send("size", event(event_id="i" * 60_000), "applied")  # a 60 kB id: kept in the dedup state
    raw("deep nesting", b"[" * 100_000 + b"]" * 100_000, "too_large")  # 100,000 levels: 200 kB
    raw("deep nesting", b'{"a":' * 100_000 + b"1" + b"}" * 100_000, "too_large")
    raw("deep nesting", b"[" * 30_000 + b"]" * 30_000, "invalid_json")  # under the size limit
    for depth in (101, 500, 990, 30_000):
        raw("deep nesting", spliced(event(extra="@"), "@", b"[" * (depth - 1) + b"]" * (depth - 1)), "invalid_json")
    escaped_pair = spliced(event(dest="@D", extra="@"), "@", b"[" * 499 + b"]" * 499)
    raw("deep nesting", escaped_pair.replace(b'"@D"', b'"\\ud83d\\ude00"'), "invalid_json")  # raised RecursionError
    raw("deep nesting", spliced(event(extra="@"), "@", b"[" * 99 + b"]" * 99), "applied", entity=home)  # 100 levels
    send("deep nesting", event(extra="[" * 20_000 + "{" * 20_000), "applied")  # brackets in a string are text

    # -- unicode in values and names -------------------------------------------------------
    for name in ("dest", "tailnum", "event_id", "carrier"):
        raw("lone surrogate (escaped)", spliced(event(**{name: "@"}), "@", b'"\\ud800"'), "invalid_unicode")
    raw("lone surrogate (escaped)", spliced(event(origin="@"), "@", b'"JFK\\udfff"'), "invalid_unicode")
    raw("lone surrogate (escaped)", spliced(event(extra="@"), "@", b'[{"k": ["\\udc00"]}]'), "invalid_unicode")
    raw("lone surrogate (escaped)", encode(event())[:-1] + b',"\\ud83d":1}', "invalid_unicode")  # in a name
    raw("lone surrogate (escaped)", spliced(event(dest="@"), "@", b'"\\ude00\\ud83d"'), "invalid_unicode")  # reversed
    raw("odd unicode in values", spliced(event(dest="@"), "@", b'"\\ud83d\\ude00"'), "applied", entity=home)
    for value in ("LAX\u0000", "\u200fLAX\u200e", "\U0001F6EB\u200d\U0001F525", "L\u0301\u0301\u0301AX",
                  "\ufeffLAX", "\uffff", "\u2028\u2029", "Z" * 60_000, "\u0410\u0412\u0421"):
        send("odd unicode in values", event(dest=value, tailnum=value[:100]), "applied")
    send("odd unicode in values", event(dest="\u00e9" * 40_000), "too_large")  # 80 kB as UTF-8

    # -- hostile entity keys (origin) ---------------------------------------------------------
    for origin in HOSTILE_KEYS:
        send("hostile entity keys", event(origin=origin), "applied")
    send("hostile entity keys", event(origin="K" * 60_000), "applied")  # too long for a URL
    for origin in ("\u00c5", "A\u030a"):  # NFC and NFD: two entities, no normalisation
        send("hostile entity keys", event(origin=origin), "applied")

    # -- event time ---------------------------------------------------------------------------
    for value, expect in (("1989-12-31T23:59:59Z", "absurd_timestamp"), ("2100-01-01T00:00:00Z", "absurd_timestamp"),
                          ("0001-01-01T00:00:00+00:00", "absurd_timestamp"), (-1, "absurd_timestamp"),
                          (t0 // 1000, "absurd_timestamp"), (t0 * 1000, "absurd_timestamp"),
                          (10**30, "absurd_timestamp"), (float(t0), "bad_timestamp"), ("", "bad_timestamp"),
                          ("2013-01-02T25:00:00Z", "bad_timestamp"), ("2013-01-02", "bad_timestamp"),
                          ("2013-01-02T12:00:00", "bad_timestamp"), ("2013-01-02T12:00:00+25:00", "bad_timestamp"),
                          (True, "bad_timestamp"), ({"t": t0}, "bad_timestamp"), ("2099-12-31T00:00:00Z", "future_event"),
                          ("2030-01-01T00:00:00Z", "future_event")):
        send("timestamps far past or future", event(event_time=value), expect)
    send("timestamps far past or future", event(event_time="1990-01-01T00:00:00Z"), "late")  # valid, but late
    send("timestamps far past or future", event(event_time=t0), "applied")  # epoch milliseconds
    east = datetime.fromtimestamp(t0 / 1000, tz=timezone(timedelta(hours=14))).isoformat()
    send("timestamps far past or future", event(event_time=east), "applied")  # the same instant, at +14:00
    send("timestamps far past or future", event(event_time=iso(t0).replace(".000Z", ".000000001Z")), "applied")
    send("late events", event(event_time=iso(t0 - 2 * 3600_000)), "late")
    send("late events", event(event_time=iso(t0 - 3600_000 - 60_000)), "late")
    send("late events", event(event_time=iso(t0 - 30 * 60_000)), "applied")  # inside the lateness

    # -- duplicates ---------------------------------------------------------------------------
    for record in recent:
        send("duplicate ids (exact re-sends)", record, "duplicate")
    send("duplicate ids (exact re-sends)", old, "late")  # a re-send older than the lateness
    same_minute = {**anchor, "event_time": iso(t0 + 30_000), "dep_delay": 999.0}
    send("duplicate ids (exact re-sends)", same_minute, "duplicate")  # the id again, in the same minute
    send("duplicate ids (exact re-sends)", {**anchor, "event_time": iso(t0 + 120_000)}, "applied")  # another minute
    twice = event(origin="TWICE")
    send("duplicate ids (exact re-sends)", twice, "applied")
    send("duplicate ids (exact re-sends)", twice, "duplicate")

    # -- placement: partitions, Kafka keys, headers --------------------------------------------
    valid = event()
    right = key_partition(home, partitions)
    for shift in range(1, partitions):
        raw("wrong partition", encode({**valid, "event_id": f"away-{shift}"}), "wrong_partition",
            partition=(right + shift) % partitions)
    raw("null Kafka key", encode(event()), "applied", None, right, entity=home)  # judged by origin
    raw("null Kafka key", encode(event()), "wrong_partition", None, (right + 1) % partitions)
    raw("null Kafka key", b"{nope", "invalid_json", None, right)
    raw("null Kafka key", b"", "invalid_json", None, right)  # (a null value needs a key: the client refuses)
    for key in (b"\xff\xfe", b"", b"x" * 10_000):  # the Kafka key is not judged, the origin is
        raw("odd Kafka keys", encode(event()), "applied", key, right, entity=home)
    other = next(o for o in ("EWR", "JFK", "LGA") if key_partition(o, partitions) != right)
    raw("odd Kafka keys", encode(event(origin=other)), "wrong_partition", home.encode(), right)
    for header in (b"0", b"3", b"x", b"-1"):  # a lane on a source's own topic is forged
        raw("forged headers", encode(event()), "bad_lane_header", headers=(("fs-lane", header),))
    raw("forged headers", encode({**old, "event_id": "lane-late"}), "bad_lane_header", headers=(("fs-lane", b"1"),))
    raw("forged headers", encode(event()), "marker", headers=(("fs-control", b"forged"),))
    raw("forged headers", encode(event()), "applied", headers=(("x-other", b"\x00\xff"),), entity=home)
    return out


# Entities (origins) a path, a shell or a URL could trip over.
HOSTILE_KEYS = [
    "a/b", "/", "//", "../../etc/passwd", "..", ".", "%2F", "%", "100%", "%00", "a b", " ", "", "a:b", "a|b",
    "a\\b", "a?b=c", "a#b", "a;b", "a,b", "a+b", "JFK\n", "\t", "\r\n", "<script>alert(1)</script>",
    "' OR 1=1 --", "CON", "~root", "*", "{}", "fs.dlq", "a\u0000b", "\u202eKFJ", "\U0001F6EB", "E\u0301WR",
    "\u0627\u0644\u0645\u0637\u0627\u0631", "\u6771\u4eac", "L" * 1000, "$(reboot)", "`id`", "${jndi:x}",
]


def encode(record: dict) -> bytes:
    """Compact JSON, non-ASCII as raw UTF-8 (as most producers write it; escapes are spliced in where wanted)."""
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def anchors(departures: list[dict], recent: int = 10) -> tuple[dict, dict, list[dict]]:
    """The corpus's anchor, an old event of its origin and the last ``recent`` events of ``departures``."""
    anchor = departures[-1]
    old = next(e for e in departures if e["origin"] == anchor["origin"])
    return anchor, old, departures[-recent:]


def write_listing(records: list[Hostile], path: Path = LISTING) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r.listing(n)) + "\n" for n, r in enumerate(records)))


def main() -> None:
    """``python -m tests.hostile_corpus``: rewrite the listing from the same departures the test publishes."""
    from dev_tooling import flights_data
    departures = flights_data.load_events(limit=BEFORE, sources=("departures",), progress=False)["departures"]
    records = corpus(*anchors(departures), PARTITIONS)
    write_listing(records)
    print(f"{len(records)} records -> {LISTING}")


if __name__ == "__main__":
    main()

"""The hold (agents.cross_hold) on a replica fed by hand: an event waits until
its inputs are final, is released then with complete inputs, or after the
maximum wait with what is known, marked incomplete."""
from __future__ import annotations

import json

from aiokafka import ConsumerRecord

from agents.cross_hold import Hold
from agents.cross_replica import CrossReplica
from agents.scoring import Provenance, ScoreRequest
from kafka_plumbing.settings import load as load_settings
from tables.definitions import load as load_definitions
from tables.log_record import LogRecord, watermark_headers
from tables.model_spec import input_views, model_specs
from tables.partitioning import key_partition

T = 1_357_041_600_000  # 2013-01-01T12:00Z
HOUR = 3_600_000


def held_departure(hold: Hold) -> None:
    record = {"event_id": "d1", "origin": "JFK", "carrier": "UA", "event_time": T}
    provenance = Provenance("d1", "departures", "t", 0, 0, T, T)
    message = ConsumerRecord("t", 0, 0, T, 0, b"JFK", b"{}", None, 3, 2, ())
    hold.add(message, ScoreRequest("departures", record, {}, provenance))


def weather(origin: str, at: int) -> bytes:
    return json.dumps({"event_id": f"w{at}", "event_time": at, "origin": origin, "temp": 40.0}).encode()


def test_held_until_final_then_released_complete() -> None:
    settings = load_settings()
    definitions = load_definitions("tables.flights")
    views = input_views(model_specs(definitions)["flight_delay_xs"], definitions)
    replica = CrossReplica(settings, definitions, views)
    hold = Hold(replica, views, max_wait_s=600)
    held_departure(hold)
    assert hold.release() == [] and len(hold) == 1
    weather_log, arrivals_log = replica.logs["weather"], replica.logs["arrivals"]
    p = key_partition("JFK", settings.partitions)
    weather_log.feed(LogRecord(p, 0, weather("JFK", T - HOUR)))
    weather_log.feed(LogRecord(p, 1, weather("JFK", T + 3 * HOUR)))  # watermark T + 1h: weather final
    assert hold.release() == []  # the carrier's arrivals are not
    for q in range(settings.partitions):
        arrivals_log.feed(LogRecord.of(q, 0, None, watermark_headers(T)))
    assert hold.release() == []  # an arrival at exactly T may still come, and it would count
    for q in range(settings.partitions):
        arrivals_log.feed(LogRecord.of(q, 1, None, watermark_headers(T + 1)))
    (_, request), = hold.release()
    assert request.cross is not None and request.cross.complete and len(hold) == 0
    assert request.cross.values["origin_weather"]["last_temp"] == 40.0


def test_released_incomplete_after_the_maximum_wait() -> None:
    settings = load_settings()
    definitions = load_definitions("tables.flights")
    views = input_views(model_specs(definitions)["flight_delay_xs"], definitions)
    hold = Hold(CrossReplica(settings, definitions, views), views, max_wait_s=0.0)
    held_departure(hold)
    assert hold.due()
    (_, request), = hold.release()
    assert request.cross is not None and not request.cross.complete and hold.released_incomplete == 1

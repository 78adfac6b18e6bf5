"""Live quality computed here, independently of ``models.quality``: flights
predictions joined with the arrivals log by ``flight_id`` (the arrival at or
after the departure and within the horizon, docs/monitoring.md), and AUC by
counting ordered pairs."""
from __future__ import annotations

import numpy as np

from kafka_plumbing.settings import Settings
from tables.validation import parse_time_ms
from tests.integration.conftest import consume_all, decode

HORIZON_MS = 86_400_000


def arrival_labels(settings: Settings) -> dict[str, tuple[int, int]]:
    """flight_id -> (arrival time, arr_delayed_15) of its first arrival in the log."""
    arrivals: dict[str, tuple[int, int]] = {}
    for record in decode(consume_all(settings, settings.topics.events("arrivals"))):
        arrivals.setdefault(str(record["flight_id"]), (parse_time_ms(record["event_time"]), int(record["arr_delayed_15"])))
    return arrivals


def labelled_p1(records: list[dict], arrivals: dict[str, tuple[int, int]]) -> dict[str, tuple[float, int]]:
    """event_id -> (p1, label) of the prediction records whose departure has a label within the horizon."""
    out: dict[str, tuple[float, int]] = {}
    for record in records:
        label = arrivals.get(str(record["join_key"]))
        if record["event_id"] in out or label is None or not 0 <= label[0] - record["event_time_ms"] <= HORIZON_MS:
            continue
        out[record["event_id"]] = (record["probabilities"][record["labels"].index("1")], label[1])
    return out


def pairwise_auc(p: np.ndarray, y: np.ndarray) -> float:
    diff = p[y == 1][:, None] - p[y == 0][None, :]
    return float(((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size)

"""The label rule of a model, in one place: the training set and live quality both use it.

A model's label is ``label_field`` of the ``label_source`` event that shares
``join_key`` with the scored event (for flights: an arrival is the label of
its departure, by ``flight_id``).  Training sees the whole log, so it only
needs ``label_of``.  Live quality joins two streams that the broker
interleaves in no fixed order, so it also needs ``verdict``: a rule on event
times only, which makes the join come out the same however the records were
consumed, as a replay of the logs would."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tables.model_spec import ModelSpec

POSITIVE = "1"  # the positive class level of the models' labels (models.train_config.LABEL_LEVELS)

MATCHED, EARLY, EXPIRED = "matched", "early", "expired"


@dataclass(frozen=True)
class Label:
    key: str  # the join key's value, as text (the same on both sides whatever their JSON types)
    value: str  # the class level: "0" or "1"


def label_of(spec: ModelSpec, record: dict[str, Any]) -> Label | None:
    """The label a label-source record carries, or None (no key or no label).

    Values are normalised to the class level (``1``, ``1.0``, ``"1"``, ``True``
    are ``"1"``), as training's 0/1 coercion (models.train_data) treats them alike."""
    key = record.get(spec.join_key)
    value = record.get(spec.label_field)
    if key is None or value is None:
        return None
    if isinstance(value, bool):
        return Label(str(key), POSITIVE if value else "0")
    if isinstance(value, str):
        text = value.strip().lower()
        return Label(str(key), {"true": POSITIVE, "false": "0"}.get(text, text)) if text else None
    if isinstance(value, float):
        if value != value:  # NaN: no label
            return None
        if value.is_integer():
            value = int(value)
    return Label(str(key), str(value))


def verdict(prediction_time_ms: int, label_time_ms: int, horizon_ms: int) -> str:
    """Whether a label counts for the prediction of its event, by event time only.

    ``matched``: the label happened at or after the scored event and within
    ``horizon_ms`` of it.  ``early``: before it (an arrival before its own
    departure is bad data, not an outcome of what was predicted).
    ``expired``: after the horizon (too late to say anything about a
    prediction made then)."""
    if label_time_ms < prediction_time_ms:
        return EARLY
    if label_time_ms - prediction_time_ms > horizon_ms:
        return EXPIRED
    return MATCHED

"""What the client returns: typed records built from the API's JSON, and its errors."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping


class FeatureStoreError(Exception):
    """A request the API refused, or one that still failed after the retries.

    ``status`` 0 means no HTTP answer at all (the worker could not be reached)."""

    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(f"{status} {error}: {detail}")
        self.status, self.error, self.detail = status, error, detail

    @classmethod
    def from_json(cls, status: int, body: Any) -> FeatureStoreError:
        if isinstance(body, Mapping):
            return cls(status, str(body.get("error", "http_error")), str(body.get("detail", "")))
        return cls(status, "http_error", str(body)[:300])


@dataclass(frozen=True)
class Rejected:
    """One event that failed validation: its index in the events given, and the DLQ's reason."""
    index: int
    reason: str
    detail: str


class PublishRejected(ValueError):
    """Events failed the source's validation; none of the batch was sent."""

    def __init__(self, source: str, rejected: list[Rejected]) -> None:
        first = rejected[0]
        super().__init__(f"{len(rejected)} event(s) of {source} fail validation, none sent; "
                         f"first: #{first.index} {first.reason}: {first.detail}")
        self.source, self.rejected = source, rejected


@dataclass(frozen=True)
class FeatureVector:
    """One view's values for one entity: the body of ``GET /features/{view}/{entity}``."""
    view: str
    version: int
    entity: str
    entity_field: str
    features: dict[str, Any]
    as_of: str | None
    as_of_ms: int | None
    last_event_time: str | None
    events_applied: int
    serving_version: int
    unavailable: Any = None  # as_of reads: what the T-based rule cannot answer exactly

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> FeatureVector:
        return cls(view=body["view"], version=body["version"], entity=body["entity"],
                   entity_field=body["entity_field"], features=dict(body["features"]), as_of=body.get("as_of"),
                   as_of_ms=body.get("as_of_ms"), last_event_time=body.get("last_event_time"),
                   events_applied=body["events_applied"], serving_version=body["serving_version"],
                   unavailable=body.get("unavailable"))


@dataclass(frozen=True)
class ReadError:
    """What a batch row could not answer for one view, with the status a single read would have had."""
    status: int
    error: str
    detail: str


@dataclass(frozen=True)
class BatchRow:
    """One entity row of a batch read, in request order."""
    row: Any  # as sent: an entity, or {entity field: entity}
    vectors: dict[str, FeatureVector]
    errors: dict[str, ReadError]

    @property
    def complete(self) -> bool:
        return not self.errors

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> BatchRow:
        return cls(row=body["row"],
                   vectors={view: FeatureVector.from_json(v) for view, v in body["views"].items()},
                   errors={view: ReadError(e["status"], e["error"], e["detail"]) for view, e in body["errors"].items()})


@dataclass(frozen=True)
class Prediction:
    """One model's prediction for a scored event, with its provenance (``raw``: the whole record)."""
    event_id: Any
    model: str
    model_version: int
    role: str
    label: str | None
    probabilities: list[float] | None
    labels: list[str] | None
    features: dict[str, Any]
    view_versions: dict[str, Any]
    score_latency_us: float
    raw: dict[str, Any] = field(repr=False)
    # False: the model reads other logs and scored before they had passed the event's time
    complete: bool = True

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> Prediction:
        return cls(event_id=body.get("event_id"), model=body["model"], model_version=body["model_version"],
                   role=body.get("role", "primary"), label=body.get("label"), probabilities=body.get("probabilities"),
                   labels=body.get("labels"), features=dict(body.get("features") or {}),
                   view_versions=dict(body.get("view_versions") or {}),
                   score_latency_us=float(body.get("score_latency_us") or 0.0), raw=dict(body),
                   complete=bool(body.get("complete", True)))


def predictions(body: Mapping[str, Any]) -> list[Prediction]:
    """``POST /score``'s answer as a list: one record for one model, ``{"predictions": [...]}`` for several."""
    if "model" in body:
        return [Prediction.from_json(body)]
    return [Prediction.from_json(p) for p in body.get("predictions", [])]


@dataclass(frozen=True)
class PublishReport:
    source: str
    sent: int
    seconds: float

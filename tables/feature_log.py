"""The record of ``fs.features.<source>``: what was served for one applied
event.  The online path writes it, the skew audit and the replay tests read
it back and compare it with the offline engine's row for the same position."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ServedRecord:
    """One record of the feature log: what was served for an applied event."""

    event_id: Any
    entity: str
    event_time_ms: int
    topic: str
    partition: int
    offset: int
    features: dict[str, dict[str, Any]]  # view ref -> values, before the event was applied
    versions: dict[str, int]  # view ref -> version

    def encode(self) -> bytes:
        # json, as the replay compares values: it keeps what msgspec would turn into null (inf, nan)
        return json.dumps(vars(self)).encode()

    @classmethod
    def decode(cls, raw: bytes) -> "ServedRecord":
        return cls(**json.loads(raw))

"""The requests the client makes and how their answers become records: one
description, sent by the sync and the async client alike."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Union
from urllib.parse import quote

import httpx

from app.client.records import BatchRow, FeatureStoreError

# A batch row: one entity for every view, or {entity field: entity}.
Row = Union[str, int, Mapping[str, Union[str, int]]]
AsOf = Union[str, datetime, None]
BATCH_ROWS = 1000  # the worker's default FS_HTTP_BATCH_MAX_ROWS: larger batches are sent in parts


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    params: dict[str, str] | None = None
    json: Any = None


def iso(as_of: AsOf) -> str | None:
    if isinstance(as_of, datetime):
        if as_of.tzinfo is None:
            raise ValueError("as_of needs a time zone: the API reads event time in UTC")
        return as_of.isoformat()
    return as_of


def features(view: str, entity: str, as_of: AsOf) -> Call:
    # Quoted whole: an entity with a slash is one path segment (%2F), as the route expects.
    at = iso(as_of)
    return Call("GET", f"/features/{quote(view, safe='')}/{quote(str(entity), safe='')}",
                params=None if at is None else {"as_of": at})


def batches(rows: Sequence[Row], views: Sequence[str], as_of: AsOf, size: int) -> list[Call]:
    at = iso(as_of)
    body: dict[str, Any] = {"views": list(views)}
    if at is not None:
        body["as_of"] = at
    parts = [rows[i:i + size] for i in range(0, len(rows), size)] or [rows]
    return [Call("POST", "/features", json={**body, "rows": [r if isinstance(r, (str, int)) else dict(r)
                                                               for r in part]}) for part in parts]


def batch_rows(bodies: Sequence[Mapping[str, Any]]) -> list[BatchRow]:
    return [BatchRow.from_json(row) for body in bodies for row in body["rows"]]


def score(event: Mapping[str, Any], source: str | None) -> Call:
    return Call("POST", "/score", params=None if source is None else {"source": source}, json=dict(event))


def body_of(response: httpx.Response) -> Any:
    """The JSON answer, or ``FeatureStoreError`` for a 4xx or 5xx."""
    try:
        body = response.json()
    except ValueError:
        body = {"error": "not_json", "detail": response.text[:300]}
    if response.status_code >= 400:
        raise FeatureStoreError.from_json(response.status_code, body)
    return body

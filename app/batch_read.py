"""``POST /features``: many entity rows and many views in one request.

Each (view, entity) pair is read by ``app.feature_read.read_features``, the
one implementation of ``GET /features/{view}/{entity}``, so a row's answer
for a view is byte for byte the single read's body (or its error).  Pairs
are read once however many rows name them.  Pairs another worker owns are
sent to it as one ``POST /features`` per (owner, view), all owners at once;
the owner answers them as its own (a request carrying ``FORWARDED_HEADER``
is never forwarded again: two workers whose routing maps disagree during a
rebalance would otherwise bounce it between them).

A well-formed request is a 200 whatever its reads answered: each row says
per view what it could not answer, with the status a single read would have
had.  The request itself is refused (4xx) only when it is malformed or over
the limits (``BatchLimits``).
"""
from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Union

from yarl import URL

from app.feature_read import Answer, Forward, ReadSide, read_features
from app.web_common import error_body
from kafka_plumbing.settings import Settings
from tables.validation import parse_time_ms

BATCH_PATH = "/features"
FORWARDED_HEADER = "X-Featurestream-Forwarded"

# A row: one entity for every view, or the entity of each view by its entity field.
Row = Union[str, dict[str, str]]
# (owner, body) -> (status, JSON body): the server's way to ask another worker.
Send = Callable[[URL, bytes], Awaitable[tuple[int, Any]]]
Pair = tuple[str, str]  # (view, entity)


@dataclass(frozen=True)
class BatchLimits:
    max_rows: int
    max_views: int

    @classmethod
    def from_settings(cls, settings: Settings) -> BatchLimits:
        return cls(settings.http_batch_max_rows, settings.http_batch_max_views)


@dataclass(frozen=True)
class BatchRequest:
    views: tuple[str, ...]
    rows: tuple[Row, ...]
    as_of: str | None


class BadBatch(ValueError):
    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(detail)
        self.answer = Answer(status, error_body(error, detail))


def parse(raw: bytes, limits: BatchLimits) -> BatchRequest:
    """The request, or ``BadBatch`` with its 4xx answer."""
    try:
        body = json.loads(raw or b"null")
    except (ValueError, RecursionError):
        raise BadBatch(400, "bad_request", "the body is not JSON") from None
    if not isinstance(body, dict):
        raise BadBatch(400, "bad_request", 'the body must be a JSON object {"views": [...], "rows": [...]}')
    views, rows, as_of = body.get("views"), body.get("rows"), body.get("as_of")
    if not isinstance(views, list) or not views or not all(isinstance(v, str) for v in views):
        raise BadBatch(400, "bad_request", "views must be a non-empty list of view names")
    if not isinstance(rows, list):
        raise BadBatch(400, "bad_request", "rows must be a list of entities or of {entity field: entity} objects")
    if len(rows) > limits.max_rows:
        raise BadBatch(413, "too_many_rows", f"{len(rows)} rows > {limits.max_rows} (FS_HTTP_BATCH_MAX_ROWS): "
                                             "split the request")
    if len(views) > limits.max_views:
        raise BadBatch(413, "too_many_views", f"{len(views)} views > {limits.max_views} (FS_HTTP_BATCH_MAX_VIEWS)")
    if as_of is not None:
        if not isinstance(as_of, str):
            raise BadBatch(400, "bad_as_of", "as_of must be an ISO-8601 string with a zone")
        try:
            parse_time_ms(as_of)
        except (ValueError, OverflowError) as exc:
            raise BadBatch(400, "bad_as_of", f"as_of must be ISO-8601 with a zone: {exc}") from None
    return BatchRequest(tuple(dict.fromkeys(views)), tuple(_row(i, row) for i, row in enumerate(rows)), as_of)


def _entity(value: Any) -> str | None:
    # Integers are entities as their text, as in a URL path; a bool is no entity.
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _row(index: int, row: Any) -> Row:
    if isinstance(row, dict):
        fields = {name: _entity(value) for name, value in row.items()}
        if all(value is not None for value in fields.values()):
            return {name: value for name, value in fields.items() if value is not None}
    else:
        entity = _entity(row)
        if entity is not None:
            return entity
    raise BadBatch(400, "bad_request", f"rows[{index}] must be an entity (string or integer) "
                                       "or an object of entity fields to strings or integers")


def _missing(view: str, field: str) -> Answer:
    return Answer(400, error_body("missing_entity", f"the row has no {field!r}, the entity of {view}"))


async def read_batch(side: ReadSide, request: BatchRequest, visible: Callable[[str], bool],
                     send: Send | None) -> Answer:
    """``send`` None: the request was forwarded here, and pairs owned elsewhere are
    answered ``not_owner`` (503: the owner changed; a retry is routed afresh)."""
    query = {} if request.as_of is None else {"as_of": request.as_of}
    wanted = [{view: _pair_of(side, view, row, visible) for view in request.views} for row in request.rows]
    answers: dict[Pair, Answer] = {}
    remote: dict[tuple[URL, str], list[str]] = {}
    for pair in dict.fromkeys(p for row in wanted for p in row.values() if not isinstance(p, Answer)):
        answer = read_features(side, pair[0], pair[1], query, visible)
        if not isinstance(answer, Forward):
            answers[pair] = answer
        elif send is None:
            answers[pair] = Answer(503, error_body("not_owner", f"this worker no longer owns {pair[1]!r} of "
                                                                f"{pair[0]}; retry: the request is routed afresh"))
        else:
            remote.setdefault((answer.url, pair[0]), []).append(pair[1])
    if remote:
        asked = await asyncio.gather(*(_ask(send, url, view, entities, request.as_of)
                                       for (url, view), entities in remote.items()))
        for answered in asked:
            answers.update(answered)
    rows = [_row_body(row, {view: p if isinstance(p, Answer) else answers[p] for view, p in pairs.items()})
            for row, pairs in zip(request.rows, wanted)]
    failed = sum(1 for row in rows if row["errors"])
    return Answer(200, {"views": list(request.views), "as_of": request.as_of, "rows": rows,
                        "rows_with_errors": failed})


def _pair_of(side: ReadSide, view: str, row: Row, visible: Callable[[str], bool]) -> Pair | Answer:
    if isinstance(row, str):
        return view, row
    if view not in side.definitions.names or not visible(view):
        return view, ""  # read_features answers it: the same 404 as GET, which names nothing hidden
    field = side.control().serving(view).entity
    return (view, row[field]) if field in row else _missing(view, field)


async def _ask(send: Send, url: URL, view: str, entities: list[str], as_of: str | None) -> dict[Pair, Answer]:
    """The owner's answers to ``view`` of ``entities``, each as its own read would be."""
    payload = json.dumps({"views": [view], "rows": entities, "as_of": as_of}).encode()
    status, body = await send(url, payload)
    rows = body.get("rows") if status == 200 and isinstance(body, dict) else None
    if not isinstance(rows, list) or len(rows) != len(entities):
        error = body if isinstance(body, dict) and "error" in body else error_body(
            "owner_unreachable", f"the worker owning these keys ({url}) answered {status} without their rows")
        failed = Answer(status if status >= 400 else 503, error_body(str(error.get("error")), str(error.get("detail"))))
        return {(view, entity): failed for entity in entities}
    return {(view, entity): _owner_answer(row, view) for entity, row in zip(entities, rows)}


def _owner_answer(row: Mapping[str, Any], view: str) -> Answer:
    if view in row.get("views", {}):
        return Answer(200, row["views"][view])
    error = dict(row.get("errors", {}).get(view) or {"status": 503, **error_body("owner_unreachable", "no answer")})
    return Answer(int(error.pop("status", 503)), error)


def _row_body(row: Row, answers: dict[str, Answer]) -> dict[str, Any]:
    return {
        "row": row,
        "views": {view: a.body for view, a in answers.items() if a.status == 200},
        "errors": {view: {"status": a.status, **a.body} for view, a in answers.items() if a.status != 200},
    }


async def answer_batch(side: ReadSide, raw: bytes, limits: BatchLimits, visible: Callable[[str], bool],
                       send: Send | None) -> Answer:
    """The answer to one ``POST /features`` body, whichever server received it."""
    try:
        request = parse(raw, limits)
    except BadBatch as bad:
        return bad.answer
    return await read_batch(side, request, visible, send)

"""The HTTP server's limits and JSON errors (``app.web_server``) on a plain
aiohttp app served by ``HardenedRunner`` on a real socket: no Faust, no
broker.  ``tests/integration/test_http_hardening.py`` tries the same against
a real worker."""
from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.http_exceptions import BadStatusLine, LineTooLong

from app import web_server
from app.web_common import FEATURES_PATH
from app.openapi import event_schema, openapi
from tables.dsl import Source

LIMITS = web_server.HttpLimits(max_body_bytes=1000, idle_timeout_s=0.5, body_timeout_s=0.5)


async def echo(request: web.Request) -> web.Response:
    return web.json_response({"bytes": len(await request.read())})


async def broken(request: web.Request) -> web.Response:
    raise RuntimeError("secret internals")


async def entity_of(request: web.Request) -> web.Response:
    return web.json_response({"view": request.match_info["view"], "entity": request.match_info["entity"]})


@pytest.fixture
async def server() -> AsyncIterator[tuple[int, list[int]]]:
    counted: list[int] = []
    app = web.Application(client_max_size=LIMITS.max_body_bytes,
                          middlewares=[web_server.json_errors(LIMITS, counted.append)])
    app.router.add_post("/echo", echo)
    app.router.add_get("/broken", broken)
    app.router.add_get(FEATURES_PATH, entity_of)
    # lingering_time: how long aiohttp drains a refused body before closing (10 s by default).
    runner = web_server.HardenedRunner(app, access_log=None, keepalive_timeout=LIMITS.idle_timeout_s,
                                       lingering_time=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield port, counted
    finally:
        await runner.cleanup()


async def exchange(port: int, data: bytes, wait: float = 3.0) -> tuple[bytes, float]:
    """Send ``data`` raw; (everything the server sent until it closed, seconds until then)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    start = time.monotonic()
    writer.write(data)
    await writer.drain()
    try:
        received = await asyncio.wait_for(reader.read(), wait)
    finally:
        writer.close()
    return received, time.monotonic() - start


def status_and_json(raw: bytes) -> tuple[int, dict]:
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"content-type: application/json" in head.lower(), raw
    return int(head.split()[1]), json.loads(body)


def test_parser_errors_map_to_json_codes_without_internals() -> None:
    assert web_server.parser_error(400, LineTooLong(b"GET /aaaa", 8190))[:2] == (400, "line_too_long")
    status, error, detail = web_server.parser_error(400, BadStatusLine("GARBAGE"))
    assert (status, error) == (400, "bad_request") and "GARBAGE" in detail
    assert web_server.parser_error(500, RuntimeError("secret")) == (
        500, "internal_error", "the server failed to answer this request")
    assert web_server.clip("x" * 5000).endswith("...") and len(web_server.clip("x" * 5000)) < 400


def test_openapi_documents_the_limits_on_every_operation_and_the_event_fields() -> None:
    source = Source(name="s", key="k", fields={"event_id": "str", "event_time": "time", "k": "str", "v": "float"},
                    required=("v",))
    spec = openapi(["view"], {"s": source})
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            assert {"400", "408", "413"} <= set(operation["responses"]), (path, method)
    schema = event_schema(source)
    assert schema["properties"]["v"]["type"] == "number"
    assert schema["properties"]["event_time"]["format"] == "date-time"
    assert set(schema["required"]) == set(source.required_fields)


async def test_a_request_aiohttp_cannot_parse_gets_a_json_400(server: tuple[int, list[int]]) -> None:
    port, _ = server
    for bad in (b"GARBAGE\r\n\r\n", b"GET / HTTP/1.1\r\nBad Header\r\n\r\n", b"GET /\x00 HTTP/1.1\r\n\r\n",
                b"GET /" + b"a" * 10_000 + b" HTTP/1.1\r\n\r\n"):
        raw, _ = await exchange(port, bad)
        status, body = status_and_json(raw)
        assert status == 400 and set(body) == {"error", "detail"}, (bad[:30], body)


async def test_router_errors_and_a_view_that_raises_are_json(server: tuple[int, list[int]]) -> None:
    port, counted = server
    status, body = status_and_json((await exchange(port, b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))[0])
    assert (status, body["error"]) == (404, "not_found")
    status, body = status_and_json((await exchange(port, b"PUT /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))[0])
    assert (status, body["error"]) == (405, "method_not_allowed")
    status, body = status_and_json((await exchange(port, b"GET /broken HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))[0])
    assert body == {"error": "internal_error", "detail": "RuntimeError"} and status == 500
    assert counted == [404, 405, 500]


async def test_an_entity_name_with_any_character_reaches_the_features_route(server: tuple[int, list[int]]) -> None:
    """Found by the hostile corpus: aiohttp's default pattern refuses braces, so the
    applied entities ``{}`` and ``${jndi:x}`` answered the router's 404."""
    from urllib.parse import quote

    port, _ = server
    for entity in ("{}", "${jndi:x}", "a/b", "..", "%", "a\x00b", "\u202eKFJ", "\U0001F6EB", "a b"):
        path = f"/features/origin_traffic/{quote(entity, safe='')}".encode()
        raw, _ = await exchange(port, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        status, body = status_and_json(raw)
        assert (status, body) == (200, {"view": "origin_traffic", "entity": entity}), (entity, status, body)


async def test_bodies_over_the_limit_are_413_whether_declared_or_chunked(server: tuple[int, list[int]]) -> None:
    port, _ = server
    declared = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n" + b"x" * 5000
    status, body = status_and_json((await exchange(port, declared))[0])
    assert (status, body["error"]) == (413, "payload_too_large")
    chunk = b"x" * 600
    chunked = (b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               + (b"258\r\n" + chunk + b"\r\n") * 3 + b"0\r\n\r\n")
    status, body = status_and_json((await exchange(port, chunked))[0])
    assert (status, body["error"]) == (413, "payload_too_large")
    gzip_lie = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Encoding: gzip\r\nContent-Length: 4\r\n\r\nnope"
    status, body = status_and_json((await exchange(port, gzip_lie))[0])
    assert (status, body["error"]) == (400, "bad_body")
    fits = b"POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 10\r\n\r\n0123456789"
    assert status_and_json((await exchange(port, fits))[0]) == (200, {"bytes": 10})


async def test_a_slow_head_is_closed_at_the_idle_timeout_and_a_slow_body_is_408(
        server: tuple[int, list[int]]) -> None:
    port, _ = server
    raw, took = await exchange(port, b"GET /echo HTTP/1.1\r\nHo")
    assert raw == b"" and LIMITS.idle_timeout_s <= took < LIMITS.idle_timeout_s + 1.5
    raw, took = await exchange(port, b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{", wait=15)
    status, body = status_and_json(raw)
    assert (status, body["error"]) == (408, "request_timeout")

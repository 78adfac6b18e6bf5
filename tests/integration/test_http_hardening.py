"""Hostile HTTP against a real worker: oversized bodies, slow and idle
clients, path tricks, requests aiohttp cannot parse.  Every answer is a JSON
``{"error", "detail"}`` with a 4xx code (or a correct 200/404), never a 5xx
nor a text page, and the worker keeps answering.  Requests are sent on raw
sockets so that no client library normalises them first."""
from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit

import aiohttp
import pytest

from kafka_plumbing.settings import Settings
from tests.conftest import SUMMARY_LINES
from tests.integration.conftest import Worker, running_worker

IDLE_S, BODY_S, MAX_BODY = 2.0, 2.0, 256 * 1024
LIMITS_ENV = {"FS_HTTP_IDLE_TIMEOUT": str(IDLE_S), "FS_HTTP_BODY_TIMEOUT": str(BODY_S),
              "FS_HTTP_MAX_BODY_BYTES": str(MAX_BODY)}
IDLE_SOCKETS = 200


@pytest.fixture(scope="module")
def worker(isolated: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    """This module's worker, with short limits so the tests wait seconds, not minutes."""
    from kafka_plumbing.topics import ensure_topics_sync
    from tables.definitions import load as load_definitions

    ensure_topics_sync(isolated, list(load_definitions(isolated.features_module).sources))
    yield from running_worker(isolated, tmp_path_factory.mktemp("worker"), env=LIMITS_ENV)


def address(worker: Worker) -> tuple[str, int]:
    url = urlsplit(worker.url)
    assert url.hostname and url.port
    return url.hostname, url.port


async def exchange(worker: Worker, data: bytes, wait: float = 20.0) -> tuple[bytes, float]:
    """Send ``data`` on a new connection; (all it got back until the server closed, seconds to the answer)."""
    reader, writer = await asyncio.open_connection(*address(worker))
    start = time.monotonic()
    received, answered = b"", 0.0
    try:
        writer.write(data)
        await writer.drain()
        async with asyncio.timeout(wait):
            while chunk := await reader.read(65536):
                answered = answered or time.monotonic() - start
                received += chunk
    except ConnectionError:
        pass
    finally:
        writer.close()
    return received, answered


def parse(raw: bytes) -> tuple[int, str, Any]:
    """(status, content type, JSON body) of the first response in ``raw``."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", len(body)))
    return int(lines[0].split()[1]), headers.get("content-type", ""), json.loads(body[:length])


def assert_clean(raw: bytes, what: object, allowed: tuple[int, ...] = (200, 400, 404, 405, 408, 413)) -> int:
    """A JSON answer with an allowed status; errors as {"error", "detail"}."""
    assert raw, f"{what!r}: no answer"
    status, content_type, body = parse(raw)
    assert status in allowed and content_type.startswith("application/json"), (what, status, content_type, body)
    if status >= 400:
        assert set(body) == {"error", "detail"} and "Traceback" not in body["detail"], (what, body)
    return status


def get(path: bytes) -> bytes:
    return b"GET " + path + b" HTTP/1.1\r\nHost: worker\r\nConnection: close\r\n\r\n"


def post_score(body: bytes, extra: bytes = b"") -> bytes:
    return (b"POST /score HTTP/1.1\r\nHost: worker\r\nConnection: close\r\nContent-Type: application/json\r\n"
            + extra + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


def still_serving(worker: Worker) -> None:
    status, body = worker.get("/healthz")
    assert status == 200 and body["ready"], body


def no_tracebacks(worker: Worker) -> None:
    log = Path(worker.handle.log_path).read_text(errors="replace")
    assert "unhandled error serving" not in log, "a view raised: see " + str(worker.handle.log_path)


async def test_oversized_bodies_get_a_json_413_declared_or_chunked(worker: Worker) -> None:
    five_mb = b"x" * (5 * 1024 * 1024)
    raw, _ = await exchange(worker, post_score(five_mb))
    assert parse(raw)[0] == 413 and parse(raw)[2]["error"] == "payload_too_large"
    # through a client library too, with the body streamed in chunks (no Content-Length to check first)
    async def chunks() -> Any:
        for _ in range(40):
            yield b"y" * 64 * 1024
    async with aiohttp.ClientSession() as session:
        async with session.post(worker.url + "/score", data=chunks()) as response:
            assert response.status == 413 and (await response.json())["error"] == "payload_too_large"
        # over the event limit (FS_MAX_PAYLOAD_BYTES, 64 KiB) but under the body limit: the DLQ's reason
        async with session.post(worker.url + "/score", data=b"z" * (100 * 1024)) as response:
            assert response.status == 400 and (await response.json())["error"] == "too_large"
    still_serving(worker)
    SUMMARY_LINES.append("HTTP hardening: a 5 MiB and a chunked 2.5 MiB POST /score got JSON 413 "
                         f"(limit {MAX_BODY} bytes); a 100 KiB event 400 too_large")


async def test_slow_and_idle_clients_are_closed_and_do_not_starve_the_server(worker: Worker) -> None:
    host, port = address(worker)
    idle = [await asyncio.open_connection(host, port) for _ in range(IDLE_SOCKETS)]
    opened = time.monotonic()
    for _, writer in idle:  # a request line that never ends
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: wo")
    await asyncio.gather(*(writer.drain() for _, writer in idle))

    # a client sending its head one byte every 0.25 s: it never completes within the idle timeout
    async def byte_by_byte() -> tuple[bytes, float]:
        reader, writer = await asyncio.open_connection(host, port)
        start = time.monotonic()
        try:
            for byte in b"GET /healthz HTTP/1.1\r\nHost: worker\r\nX-Slow: " + b"a" * 100:
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(0.25)
        except ConnectionError:
            pass
        try:
            rest = await asyncio.wait_for(reader.read(), 10)
        except ConnectionError:
            rest = b""
        writer.close()
        return rest, time.monotonic() - start

    trickle = asyncio.create_task(byte_by_byte())
    async with aiohttp.ClientSession() as session:
        started = time.monotonic()
        async with session.get(worker.url + "/healthz") as response:
            assert response.status == 200
        answered_s = time.monotonic() - started
    # the normal request was answered while every slow connection was still open
    assert answered_s < IDLE_S, answered_s

    async def closed_after(reader: asyncio.StreamReader) -> float:
        try:
            data = await asyncio.wait_for(reader.read(), IDLE_S + 10)
        except ConnectionError:
            data = b""
        assert data == b"", data[:200]  # closed without an answer: there was no request to answer
        return time.monotonic() - opened

    closed = await asyncio.gather(*(closed_after(reader) for reader, _ in idle))
    for _, writer in idle:
        writer.close()
    rest, trickle_s = await trickle
    assert max(closed) < IDLE_S + 5, max(closed)
    assert trickle_s < IDLE_S + 5 and b"200 OK" not in rest, (trickle_s, rest[:200])

    slow_body, body_s = await exchange(worker, b"POST /score HTTP/1.1\r\nHost: worker\r\n"
                                               b"Content-Length: 1000\r\n\r\n{\"event_id\": ")
    assert parse(slow_body)[0] == 408 and parse(slow_body)[2]["error"] == "request_timeout"
    assert BODY_S <= body_s < BODY_S + 5, body_s
    still_serving(worker)
    SUMMARY_LINES.append(
        f"HTTP hardening: {IDLE_SOCKETS} sockets holding a partial request line, closed "
        f"{min(closed):.1f}-{max(closed):.1f} s after opening (FS_HTTP_IDLE_TIMEOUT={IDLE_S:g}); a normal "
        f"GET /healthz meanwhile answered in {answered_s * 1000:.0f} ms; a byte-every-250 ms head cut at "
        f"{trickle_s:.1f} s; a body stalled after 13 bytes: JSON 408 at {body_s:.1f} s "
        f"(FS_HTTP_BODY_TIMEOUT={BODY_S:g})")


LONG = b"A" * 10_000
PATHS: tuple[tuple[bytes, tuple[int, ...]], ...] = (
    (b"/features/origin_traffic/..", (404,)),
    (b"/features/origin_traffic/../../../etc/passwd", (404,)),
    (b"/features/..%2F..%2Fetc/passwd", (404,)),
    (b"/%2e%2e/%2e%2e/etc/passwd", (404,)),
    (b"/features/origin_traffic/a%2Fb", (404,)),
    (b"/features/origin_traffic/%2F", (404,)),
    (b"/features/origin_traffic/%00", (404,)),
    (b"/features/origin_traffic/a%00b%0d%0aX-Injected:%201", (404,)),
    (b"/features/origin_traffic/%ED%A0%80", (404,)),  # a lone surrogate, UTF-8 encoded
    (b"/features/origin_traffic/%FF%FE", (404,)),  # not UTF-8
    (b"/features/origin_traffic/%F0%9F%98%80%E2%80%AE%EF%BB%BF", (404,)),  # emoji, RTL override, BOM
    (b"/features/origin_traffic/" + "é".encode() * 50, (400, 404)),  # raw non-ASCII bytes in the line
    (b"/features/origin_traffic/" + LONG, (400,)),  # over aiohttp's 8190-byte line
    (b"/features/origin_traffic/" + b"%41" * 2000, (404,)),  # 6 kB on the wire, 2 kB decoded
    (b"/features/nope/JFK", (404,)),
    (b"/features/origin_traffic", (404,)),
    (b"/features/origin_traffic/JFK/extra", (404,)),
    (b"//healthz", (200, 404)),
    (b"/healthz/..", (200, 404)),
    (b"/score/..%2fhealthz", (404,)),
    (b"/features/origin_traffic/JFK?as_of=%00", (400, 404)),
    (b"/features/origin_traffic/JFK?as_of=" + b"9" * 5000, (400, 404)),
    (b"/features/origin_traffic/JFK?as_of=99999-01-01T00:00:00Z", (400, 404)),
    (b"/features/origin_traffic/JFK?version=99999999999999999999999", (404,)),
    (b"/features/origin_traffic/JFK?version=-1&version=%00", (404,)),
    (b"/features/origin_traffic/JFK?%FF=%FE&&&=", (404,)),
    (b"/healthz?" + b"a=" * 3000, (200,)),
)


async def test_path_tricks_get_clean_json_answers(worker: Worker) -> None:
    statuses: dict[int, int] = {}
    for path, expected in PATHS:
        raw, _ = await exchange(worker, get(path))
        status = assert_clean(raw, path[:80], allowed=expected)
        statuses[status] = statuses.get(status, 0) + 1
    # a percent-encoded slash is part of an entity name, not a path separator
    raw, _ = await exchange(worker, get(b"/features/origin_traffic/a%2Fb"))
    assert parse(raw)[2]["error"] == "unknown_entity" and "'a/b'" in parse(raw)[2]["detail"]
    raw, _ = await exchange(worker, get(b"/features/origin_traffic/" + LONG))
    assert parse(raw)[2]["error"] == "line_too_long"
    still_serving(worker)
    no_tracebacks(worker)
    SUMMARY_LINES.append(f"HTTP hardening: {len(PATHS)} path tricks (.., %2F, NUL, CRLF, lone surrogates, "
                         f"non-UTF-8, 10 kB names, odd queries): JSON answers by status {dict(sorted(statuses.items()))}")


MALFORMED: tuple[bytes, ...] = (
    b"GARBAGE\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40,  # a TLS ClientHello on the HTTP port
    b"GET\r\n\r\n",
    b"GET / HTTP/9.9\r\nHost: worker\r\n\r\n",
    b"get /healthz HTTP/1.1\r\nHost: worker\r\n\r\n",
    b"GET /\x00 HTTP/1.1\r\nHost: worker\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nBad Header\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: worker\r\nX-Big: " + b"b" * 10_000 + b"\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: worker\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(300)) + b"\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: worker\r\nX-Nul: a\x00b\r\n\r\n",
    b"POST /score HTTP/1.1\r\nHost: worker\r\nContent-Length: abc\r\n\r\n",
    b"POST /score HTTP/1.1\r\nHost: worker\r\nContent-Length: -5\r\n\r\n",
    b"POST /score HTTP/1.1\r\nHost: worker\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
    b"POST /score HTTP/1.1\r\nHost: worker\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
    b"POST /score HTTP/1.1\r\nHost: worker\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"POST /score HTTP/1.1\r\nHost: worker\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    b"POST /score HTTP/1.1\r\nHost: worker\r\nContent-Encoding: gzip\r\nContent-Length: 4\r\n\r\nnope",
    b"DELETE /score HTTP/1.1\r\nHost: worker\r\nConnection: close\r\n\r\n",
    b"PUT /features/origin_traffic/JFK HTTP/1.1\r\nHost: worker\r\nConnection: close\r\n\r\n",
    b"GET /nope HTTP/1.1\r\nHost: worker\r\nConnection: close\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: worker\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
)


async def test_requests_aiohttp_cannot_parse_get_json_where_it_can_answer(worker: Worker) -> None:
    statuses: dict[int, int] = {}
    for data in MALFORMED:
        raw, _ = await exchange(worker, data)
        status = assert_clean(raw, data[:80], allowed=(200, 400, 404, 405, 413))
        statuses[status] = statuses.get(status, 0) + 1
    raw, _ = await exchange(worker, post_score(b"{}", extra=b"Content-Encoding: gzip\r\n"))
    assert parse(raw)[0] == 400
    still_serving(worker)
    no_tracebacks(worker)
    SUMMARY_LINES.append(f"HTTP hardening: {len(MALFORMED)} malformed requests (bad request lines, headers, "
                         f"lengths, encodings, methods): JSON answers by status {dict(sorted(statuses.items()))}")

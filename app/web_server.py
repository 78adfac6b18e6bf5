"""The HTTP server around the views: size and time limits, and JSON for every error.

Two kinds of request never reach a view.  Those aiohttp cannot parse (a bad
request line, a line longer than 8190 bytes, a malformed header) are answered
by its connection handler with a text/plain page; ``JsonErrorHandler`` makes
that page the API's JSON error.  Those the router refuses (404, 405) and those
over a limit are answered by the one middleware, ``json_errors``, which also
turns anything a view raises into a JSON 500 without a traceback.

Limits (``kafka_plumbing.settings``): a body over ``FS_HTTP_MAX_BODY_BYTES``
is a 413 before a view runs; a body that takes longer than
``FS_HTTP_BODY_TIMEOUT`` to arrive is a 408; a connection without a whole
request head for ``FS_HTTP_IDLE_TIMEOUT`` (from connect, or from its last
response) is closed.  aiohttp's own deadline for that is an hour, so without
it a client sending its head a byte at a time holds a connection forever.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web as aioweb
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_server import Server

from app.web_common import error_body
from kafka_plumbing.settings import Settings

log = logging.getLogger(__name__)

# The error code of a status when nothing more specific is known.
ERROR_CODES: dict[int, str] = {
    400: "bad_request", 404: "not_found", 405: "method_not_allowed", 408: "request_timeout",
    413: "payload_too_large", 414: "uri_too_long", 431: "headers_too_large", 500: "internal_error",
}
DETAIL_CHARS = 300  # a path or parser message echoed in a detail is cut here: no 8 kB error bodies


@dataclass(frozen=True)
class HttpLimits:
    max_body_bytes: int
    idle_timeout_s: float
    body_timeout_s: float

    @classmethod
    def from_settings(cls, settings: Settings) -> HttpLimits:
        return cls(settings.http_max_body_bytes, settings.http_idle_timeout_s, settings.http_body_timeout_s)


def error_code(status: int) -> str:
    return ERROR_CODES.get(status, "http_error")


def clip(text: str) -> str:
    return text if len(text) <= DETAIL_CHARS else text[:DETAIL_CHARS] + "..."


def json_error(status: int, error: str, detail: str) -> aioweb.Response:
    return aioweb.json_response(error_body(error, clip(detail)), status=status)


def parser_error(status: int, exc: BaseException | None) -> tuple[int, str, str]:
    """(status, error, detail) of a request aiohttp could not parse or serve."""
    if status >= 500:  # never a traceback, nor an exception's text
        return 500, "internal_error", "the server failed to answer this request"
    if isinstance(exc, LineTooLong):
        return status, "line_too_long", "the request line or a header is longer than the server reads (8190 bytes)"
    if isinstance(exc, HttpProcessingError) and exc.message:
        return status, error_code(status), f"malformed request: {exc.message}"
    return status, error_code(status), "malformed request"


class JsonErrorHandler(RequestHandler):
    """aiohttp's connection handler, answering what it cannot parse in JSON."""

    def handle_error(self, request: Any, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> aioweb.StreamResponse:
        # aiohttp's own does the logging, and raises when a response was already begun.
        super().handle_error(request, status, exc, message)
        code, error, detail = parser_error(status, exc)
        response = json_error(code, error, detail)
        response.force_close()  # the parser's state is unknown after an error: as aiohttp does
        return response


class JsonErrorServer(Server):
    def __call__(self) -> RequestHandler:
        return JsonErrorHandler(self, loop=self._loop, **self._kwargs)


class HardenedRunner(aioweb.AppRunner):
    """An AppRunner whose connections are ``JsonErrorHandler`` s."""

    async def _make_server(self) -> Server:
        server = await super()._make_server()
        # aiohttp builds its Server inside the Application; the subclass only
        # changes which handler each connection gets, and holds no state.
        server.__class__ = JsonErrorServer
        return server


def install(web: Any, limits: HttpLimits) -> None:
    """Serve Faust's web app through ``HardenedRunner`` with the idle timeout.

    Faust's aiohttp driver builds its runner with aiohttp's defaults when the
    web app is created and only sets it up when the server starts, so it is
    replaced here, before that (``faust/web/drivers/aiohttp.py``)."""
    web._runner = HardenedRunner(web.web_app, access_log=None, keepalive_timeout=limits.idle_timeout_s)


class Refused(Exception):
    """A request over a limit, refused before a view runs."""

    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.error, self.detail = status, error, detail


async def read_body(request: aioweb.Request, limits: HttpLimits) -> None:
    """Read the body now, within the size and time limits: a view then reads
    it from memory, and no view waits on a slow client."""
    too_large = f"the body is larger than {limits.max_body_bytes} bytes (FS_HTTP_MAX_BODY_BYTES)"
    if request.content_length is not None and request.content_length > limits.max_body_bytes:
        raise Refused(413, "payload_too_large", too_large)
    if not request.body_exists:
        return
    try:
        async with asyncio.timeout(limits.body_timeout_s):
            await request.read()  # cached on the request; over client_max_size raises 413
    except aioweb.HTTPRequestEntityTooLarge:
        raise Refused(413, "payload_too_large", too_large) from None
    except aioweb.RequestPayloadError as exc:  # a body that does not decode as it says (gzip, chunks)
        raise Refused(400, "bad_body", f"the body cannot be read: {exc}") from None
    except TimeoutError:
        raise Refused(408, "request_timeout",
                      f"the body did not arrive within {limits.body_timeout_s:g} s (FS_HTTP_BODY_TIMEOUT)") from None


Handler = Callable[[aioweb.Request], Awaitable[aioweb.StreamResponse]]


def json_errors(limits: HttpLimits, count_error: Callable[[int], None]) -> Any:
    """The one middleware: limits first, then every error of the router or a view as JSON."""

    @aioweb.middleware
    async def middleware(request: aioweb.Request, handler: Handler) -> aioweb.StreamResponse:
        try:
            await read_body(request, limits)
            response = await handler(request)
        except Refused as refused:
            count_error(refused.status)
            response = json_error(refused.status, refused.error, refused.detail)
            if refused.status == 408:
                response.force_close()  # the rest of the body may never come
            return response
        except aioweb.HTTPException as exc:
            if exc.status < 400:
                raise
            count_error(exc.status)
            return json_error(exc.status, error_code(exc.status), f"{request.method} {request.path}: {exc.reason}")
        except Exception as exc:  # no traceback ever reaches a client
            log.exception("unhandled error serving %s", clip(request.path))
            count_error(500)
            return json_error(500, "internal_error", type(exc).__name__)
        if response.status >= 400:
            count_error(response.status)
        return response

    return middleware

"""Forwarding a read to the key's owner: a dead owner is a 503 JSON error, never a 500."""
from __future__ import annotations

import asyncio
import socket
from types import SimpleNamespace

import aiohttp
from yarl import URL

from app.routing import forward


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again on exit: nothing listens there


def test_an_unreachable_owner_is_a_503_with_a_reason() -> None:
    async def run() -> tuple[int, dict]:
        async with aiohttp.ClientSession() as session:
            request = SimpleNamespace(url=URL("http://127.0.0.1:6066/features/origin_traffic/JFK"),
                                      method="GET", headers={})
            return await forward(session, URL(f"http://127.0.0.1:{closed_port()}"), request)

    status, body = asyncio.run(run())
    assert status == 503 and body["error"] == "owner_unreachable" and "ClientConnectorError" in body["detail"]


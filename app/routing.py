"""Which worker owns a key, and forwarding a request to it.

A view's state is kept by the worker consuming the partition of its
source's log that the key falls in.  The partition comes from the key itself
(Kafka's default partitioner, the one the event producers use; Faust's own
router asks the producer, which only knows topics it has written to) and the
owner from the ingest group's assignment, which every member receives
(``agents.placement``)."""
from __future__ import annotations

import asyncio
from typing import Any, Protocol

import aiohttp
from yarl import URL

from app.web_common import error_body
from tables.partitioning import key_partition

FORWARD_TIMEOUT_S = 10.0


class NoOwner(LookupError):
    """No worker is assigned the key's partition yet (joining or rebalancing)."""


class Owners(Protocol):
    """Who owns which partition (``agents.placement.Placement``, or a read process's snapshot of it)."""

    url: str  # this worker's

    def owner(self, topic: str, partition: int) -> str | None: ...


def owner(placement: Owners, topic: str, key: str, partitions: int) -> URL | None:
    """The URL of the worker consuming ``key``'s partition of ``topic``, or None when it is this worker."""
    partition = key_partition(key, partitions)
    host = placement.owner(topic, partition)
    if host is None:
        raise NoOwner(f"no worker owns partition {partition} of {topic} yet")
    url, own = URL(host), URL(placement.url)
    return None if (url.host, url.port) == (own.host, own.port) else url


async def forward(client: aiohttp.ClientSession, url: URL, request: Any, body: bytes | None = None,
                  extra_headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """Send the same request (method, path, query, body) to ``url``; (status, JSON body)."""
    target = request.url.with_host(url.host).with_port(url.port)
    headers = {"Content-Type": "application/json", **(extra_headers or {})}
    if "Authorization" in request.headers:
        headers["Authorization"] = request.headers["Authorization"]
    try:
        async with client.request(request.method, target, data=body, headers=headers,
                                           timeout=aiohttp.ClientTimeout(total=FORWARD_TIMEOUT_S)) as response:
            return response.status, await response.json(content_type=None)
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
        # The owner died or is going away: the group moves its partitions
        # within a session timeout, so this is a retry-later, not a 500.
        return 503, error_body("owner_unreachable", f"the worker owning this key ({url}) did not answer: "
                                                    f"{type(exc).__name__}: {exc}; retry once the group has rebalanced")

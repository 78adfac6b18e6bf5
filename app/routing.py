"""Which worker owns a key, and forwarding a request to it.

Faust's own router asks the producer which partition a key of a changelog
topic falls in, and the producer only knows topics it has written to: a
worker that owns no key of a table cannot route reads for it.  Here the
partition comes from the key itself (Kafka's default partitioner, the one the
event producers use) and the owner from the assignor's table metadata."""
from __future__ import annotations

from typing import Any

from aiokafka.partitioner import murmur2
from yarl import URL


class NoOwner(LookupError):
    """No worker is assigned the key's partition yet (joining or rebalancing)."""


def key_partition(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner puts ``key`` in."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


def owner(app: Any, table_name: str, key: str, partitions: int) -> URL | None:
    """The owning worker's URL, or None when it is this worker."""
    partition = key_partition(key, partitions)
    for host, topics in app.router.table_metadata(table_name).items():
        if any(partition in parts for parts in topics.values()):
            url = URL(host)
            own = app.conf.canonical_url
            return None if (url.host, url.port) == (own.host, own.port) else url
    raise NoOwner(f"no worker owns partition {partition} of {table_name} yet")


async def forward(app: Any, url: URL, request: Any, body: bytes | None = None) -> tuple[int, Any]:
    """Send the same request (method, path, query, body) to ``url``; (status, JSON body)."""
    target = request.url.with_host(url.host).with_port(url.port)
    headers = {"Content-Type": "application/json"}
    if "Authorization" in request.headers:
        headers["Authorization"] = request.headers["Authorization"]
    async with app.http_client.request(request.method, target, data=body, headers=headers) as response:
        return response.status, await response.json(content_type=None)

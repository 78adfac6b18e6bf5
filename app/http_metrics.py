"""HTTP latency per route, for the worker's server and the read process's.

The read process answers ``GET /features`` itself and proxies the rest to
the worker, so it is the one that serves the public ``/metrics``: it asks
the worker for its exposition and merges its own histogram's samples into
the worker's ``featurestream_http_request_seconds`` family (label
``server="reader"``).  One family, one scrape target per worker, and a
promtool-valid page, without the two processes sharing memory; routes the
read process only proxies are timed by the worker alone, so no request is
counted twice."""
from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from aiohttp import web as aioweb
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from agents.metrics import LATENCY_BUCKETS

FAMILY = "featurestream_http_request_seconds"
Handler = Callable[[aioweb.Request], Awaitable[aioweb.StreamResponse]]


def route_of(request: aioweb.Request) -> str:
    """The route's template (``/features/{view}/{entity}``), never the raw path: one series per route."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


def timing(histogram: Histogram, server: str, routes: frozenset[str] | None = None) -> Any:
    """Middleware observing each request's latency; ``routes``: only these templates (None: all)."""

    @aioweb.middleware
    async def middleware(request: aioweb.Request, handler: Handler) -> aioweb.StreamResponse:
        started = time.perf_counter()
        try:
            return await handler(request)
        finally:
            route = route_of(request)
            if routes is None or route in routes:
                histogram.labels(route, request.method, server).observe(time.perf_counter() - started)

    return middleware


def reader_histogram(registry: CollectorRegistry) -> Histogram:
    """The read process's own, with the worker's name, labels and buckets (``agents.metrics``)."""
    return Histogram(FAMILY, "HTTP request latency", ["route", "method", "server"], buckets=LATENCY_BUCKETS,
                     registry=registry)


class Merged(Collector):
    """The worker's exposition (text) with the read process's HTTP samples in its family."""

    def __init__(self, worker_text: str, own: CollectorRegistry) -> None:
        self.worker_text, self.own = worker_text, own

    def collect(self) -> Iterator[Metric]:
        own = {family.name: family for family in self.own.collect()}
        for family in text_string_to_metric_families(self.worker_text):
            extra = own.pop(family.name, None)
            if extra is not None:
                family.samples.extend(s for s in extra.samples if not s.name.endswith("_created"))
            yield family
        yield from own.values()


def merged_exposition(worker_text: str, own: CollectorRegistry) -> bytes:
    return generate_latest(Merged(worker_text, own))

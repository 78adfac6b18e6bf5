"""The sync and async clients of a featurestream worker.

Any worker answers for every key (reads are routed to the key's owner), so
one URL is enough; ``publish`` needs the Kafka settings and the feature
module instead (``kafka_plumbing.settings``: the ``FS_*`` variables by default).
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from app.client import calls
from app.client.calls import BATCH_ROWS, AsOf, Call, Row
from app.client.publish import publish, watermark
from app.client.records import BatchRow, FeatureStoreError, FeatureVector, Prediction, PublishReport, predictions
from app.client.retry import RETRYABLE_ERRORS, Backoff, retryable_status
from kafka_plumbing.settings import Settings
from kafka_plumbing.settings import load as load_settings
from tables.definitions import Definitions
from tables.definitions import load as load_definitions


class _Common:
    def __init__(self, url: str, token: str | None, timeout_s: float, backoff: Backoff | None,
                 settings: Settings | None, features: str | None) -> None:
        self.url = url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.timeout_s = timeout_s
        self.backoff = backoff or Backoff()
        self._settings = settings
        self._features = features
        self._definitions: Definitions | None = None

    def publishing(self) -> tuple[Definitions, Settings]:
        """Loaded on the first ``publish``: reads need neither."""
        if self._settings is None:
            self._settings = load_settings()
        if self._definitions is None:
            self._definitions = load_definitions(self._features or self._settings.features_module)
        return self._definitions, self._settings

    def outcome(self, attempt: int, response: httpx.Response | None, error: Exception | None) -> tuple[Any, FeatureStoreError | None]:
        """(body, None) when answered; (None, error) to retry; raises when it must not be retried."""
        if response is None:
            return None, FeatureStoreError(0, "unreachable", f"{self.url}: {type(error).__name__}: {error}")
        try:
            return calls.body_of(response), None
        except FeatureStoreError as failed:
            if not retryable_status(failed.status) or attempt + 1 >= self.backoff.attempts:
                raise
            return None, failed


class Client(_Common):
    """Blocking client; use as a context manager (or ``close()``) to release its connections."""

    def __init__(self, url: str = "http://127.0.0.1:6066", *, token: str | None = None, timeout_s: float = 15.0,
                 backoff: Backoff | None = None, settings: Settings | None = None, features: str | None = None) -> None:
        super().__init__(url, token, timeout_s, backoff, settings, features)
        self.http = httpx.Client(base_url=self.url, headers=self.headers, timeout=timeout_s)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def send(self, call: Call) -> Any:
        for attempt in range(self.backoff.attempts):
            response, error = None, None
            try:
                response = self.http.request(call.method, call.path, params=call.params, json=call.json)
            except RETRYABLE_ERRORS as exc:
                error = exc
            body, failed = self.outcome(attempt, response, error)
            if failed is None:
                return body
            if attempt + 1 >= self.backoff.attempts:
                raise failed
            time.sleep(self.backoff.delay(attempt))
        raise AssertionError("unreachable: attempts >= 1")

    def get_features(self, view: str, entity: str, as_of: AsOf = None) -> FeatureVector:
        return FeatureVector.from_json(self.send(calls.features(view, entity, as_of)))

    def get_features_batch(self, rows: Sequence[Row], views: Sequence[str], as_of: AsOf = None,
                           batch_rows: int = BATCH_ROWS) -> list[BatchRow]:
        return calls.batch_rows([self.send(c) for c in calls.batches(rows, views, as_of, batch_rows)])

    def score(self, event: Mapping[str, Any], source: str | None = None) -> list[Prediction]:
        return predictions(self.send(calls.score(event, source)))

    def publish(self, source: str, events: Sequence[Mapping[str, Any]]) -> PublishReport:
        """Raises ``PublishRejected`` (nothing sent) when any event fails validation."""
        definitions, settings = self.publishing()
        return asyncio.run(publish(definitions, settings, source, events))

    def watermark(self, source: str, time_ms: int, partitions: Sequence[int] | None = None) -> None:
        """Promise that no event of ``source`` older than ``time_ms`` follows (``app.client.publish.watermark``)."""
        definitions, settings = self.publishing()
        asyncio.run(watermark(definitions, settings, source, time_ms, partitions))


class AsyncClient(_Common):
    """The same calls for asyncio; ``async with`` (or ``await aclose()``)."""

    def __init__(self, url: str = "http://127.0.0.1:6066", *, token: str | None = None, timeout_s: float = 15.0,
                 backoff: Backoff | None = None, settings: Settings | None = None, features: str | None = None) -> None:
        super().__init__(url, token, timeout_s, backoff, settings, features)
        self.http = httpx.AsyncClient(base_url=self.url, headers=self.headers, timeout=timeout_s)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.http.aclose()

    async def send(self, call: Call) -> Any:
        for attempt in range(self.backoff.attempts):
            response, error = None, None
            try:
                response = await self.http.request(call.method, call.path, params=call.params, json=call.json)
            except RETRYABLE_ERRORS as exc:
                error = exc
            body, failed = self.outcome(attempt, response, error)
            if failed is None:
                return body
            if attempt + 1 >= self.backoff.attempts:
                raise failed
            await asyncio.sleep(self.backoff.delay(attempt))
        raise AssertionError("unreachable: attempts >= 1")

    async def get_features(self, view: str, entity: str, as_of: AsOf = None) -> FeatureVector:
        return FeatureVector.from_json(await self.send(calls.features(view, entity, as_of)))

    async def get_features_batch(self, rows: Sequence[Row], views: Sequence[str], as_of: AsOf = None,
                                 batch_rows: int = BATCH_ROWS) -> list[BatchRow]:
        parts = calls.batches(rows, views, as_of, batch_rows)
        return calls.batch_rows(await asyncio.gather(*(self.send(c) for c in parts)))

    async def score(self, event: Mapping[str, Any], source: str | None = None) -> list[Prediction]:
        return predictions(await self.send(calls.score(event, source)))

    async def publish(self, source: str, events: Sequence[Mapping[str, Any]]) -> PublishReport:
        """Raises ``PublishRejected`` (nothing sent) when any event fails validation."""
        definitions, settings = self.publishing()
        return await publish(definitions, settings, source, events)

    async def watermark(self, source: str, time_ms: int, partitions: Sequence[int] | None = None) -> None:
        """Promise that no event of ``source`` older than ``time_ms`` follows (``app.client.publish.watermark``)."""
        definitions, settings = self.publishing()
        await watermark(definitions, settings, source, time_ms, partitions)

"""A Python client of featurestream: reads, batch reads, scoring over HTTP
(sync ``Client`` and asyncio ``AsyncClient``, httpx underneath, retried with
backoff), and ``publish``: events validated as the worker validates them,
then produced to their source's log.  See README.md, "Python client"."""
from app.client.http import AsyncClient, Client
from app.client.records import (
    BatchRow, FeatureStoreError, FeatureVector, Prediction, PublishRejected, PublishReport, ReadError, Rejected,
)
from app.client.retry import Backoff

__all__ = ["AsyncClient", "Backoff", "BatchRow", "Client", "FeatureStoreError", "FeatureVector", "Prediction",
           "PublishRejected", "PublishReport", "ReadError", "Rejected"]

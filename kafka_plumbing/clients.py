"""The one place Kafka clients are built: every consumer, producer and admin
client of the project, with the brokers and the SASL/SSL settings of
``Settings`` (``FS_KAFKA_*``). The Faust app gets the same security from
``security(settings)`` as its broker credentials (app/faust_app.py).

Clients are returned unstarted; callers pass what is particular to them
(acks, idempotence, linger, offsets reset) as keyword overrides.
"""
from __future__ import annotations

import asyncio
import socket
import ssl
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.client import AIOKafkaClient
from aiokafka.helpers import create_ssl_context

from kafka_plumbing.settings import Settings


class KafkaSecurityError(ValueError):
    """The security settings cannot make a working client (a missing CA file,
    SASL without a username): said before any connection is tried."""


@dataclass(frozen=True)
class Security:
    """How to talk to the brokers: aiokafka's arguments, typed."""

    protocol: str
    ssl_context: ssl.SSLContext | None
    sasl_mechanism: str | None
    sasl_username: str | None
    sasl_password: str | None

    @property
    def uses_ssl(self) -> bool:
        return self.ssl_context is not None

    @property
    def uses_sasl(self) -> bool:
        return self.sasl_mechanism is not None

    def client_args(self) -> dict[str, Any]:
        args: dict[str, Any] = {"security_protocol": self.protocol}
        if self.ssl_context is not None:
            args["ssl_context"] = self.ssl_context
        if self.sasl_mechanism is not None:
            args["sasl_mechanism"] = self.sasl_mechanism
            args["sasl_plain_username"] = self.sasl_username
            args["sasl_plain_password"] = self.sasl_password
        return args


def security(settings: Settings) -> Security:
    protocol = settings.kafka_security_protocol
    context = _ssl_context(settings) if protocol in ("SSL", "SASL_SSL") else None
    if protocol not in ("SASL_PLAINTEXT", "SASL_SSL"):
        return Security(protocol, context, None, None, None)
    if not settings.kafka_sasl_username:
        raise KafkaSecurityError(f"FS_KAFKA_SECURITY_PROTOCOL={protocol} needs FS_KAFKA_SASL_USERNAME")
    return Security(protocol, context, settings.kafka_sasl_mechanism,
                    settings.kafka_sasl_username, settings.kafka_sasl_password)


def _ssl_context(settings: Settings) -> ssl.SSLContext:
    for name, path in (("FS_KAFKA_SSL_CAFILE", settings.kafka_ssl_cafile),
                       ("FS_KAFKA_SSL_CERTFILE", settings.kafka_ssl_certfile),
                       ("FS_KAFKA_SSL_KEYFILE", settings.kafka_ssl_keyfile)):
        if path is not None and not path.is_file():
            raise KafkaSecurityError(f"{name}={path} is not a file")
    if settings.kafka_ssl_keyfile is not None and settings.kafka_ssl_certfile is None:
        raise KafkaSecurityError("FS_KAFKA_SSL_KEYFILE needs FS_KAFKA_SSL_CERTFILE")
    try:
        return create_ssl_context(
            cafile=settings.kafka_ssl_cafile,
            certfile=settings.kafka_ssl_certfile,
            keyfile=settings.kafka_ssl_keyfile,
            password=settings.kafka_ssl_key_password or None,
        )
    except ssl.SSLError as exc:
        raise KafkaSecurityError(f"cannot load the Kafka SSL files: {exc}") from exc


def unreachable_hint(settings: Settings, timeout: float = 5.0) -> str:
    """What to do when no broker answered: aiokafka says only that it could
    not bootstrap, so a TLS failure is found by one handshake of our own."""
    if settings.kafka_security_protocol in ("SSL", "SASL_SSL"):
        failure = _tls_failure(settings, timeout)
        if failure:
            return (f"the TLS handshake failed ({failure}); check FS_KAFKA_SSL_CAFILE="
                    f"{settings.kafka_ssl_cafile or '(system CAs)'} against the broker's certificate")
    hint = "start the local broker with `featurestream kafka start`, or set FS_KAFKA_BOOTSTRAP to your cluster"
    if settings.kafka_security_protocol != "PLAINTEXT":
        hint += f" (security protocol {settings.kafka_security_protocol})"
    return hint


def _tls_failure(settings: Settings, timeout: float) -> str | None:
    host, _, port = settings.bootstrap.split(",")[0].strip().rpartition(":")
    context = _ssl_context(settings)
    try:
        with socket.create_connection((host, int(port)), timeout=timeout) as raw:
            with context.wrap_socket(raw, server_hostname=host):
                return None
    except ssl.SSLCertVerificationError as exc:
        return exc.verify_message or str(exc)
    except ssl.SSLError as exc:
        return exc.reason or str(exc)
    except (OSError, ValueError):
        return None  # not a TLS problem: the broker is not there at all


def consumer(settings: Settings, *topics: str, **overrides: Any) -> AIOKafkaConsumer:
    """A consumer that commits nothing unless asked (the project tracks its
    own positions); subscribed to ``topics`` if any are given.  It reads
    committed records only: under exactly once, a flush's outputs, state and
    re-keyed forwards exist for readers once its transaction commits (the
    same as read_uncommitted for logs written without transactions)."""
    args: dict[str, Any] = {"bootstrap_servers": settings.bootstrap, "enable_auto_commit": False,
                            "isolation_level": "read_committed", **security(settings).client_args(), **overrides}
    return AIOKafkaConsumer(*topics, **args)


def producer(settings: Settings, **overrides: Any) -> AIOKafkaProducer:
    """A producer that waits for every in-sync replica (acks=all) unless told otherwise."""
    args: dict[str, Any] = {"bootstrap_servers": settings.bootstrap, "acks": "all",
                            **security(settings).client_args(), **overrides}
    return AIOKafkaProducer(**args)


def admin(settings: Settings, **overrides: Any) -> AIOKafkaAdminClient:
    args: dict[str, Any] = {"bootstrap_servers": settings.bootstrap,
                            **security(settings).client_args(), **overrides}
    return AIOKafkaAdminClient(**args)


def metadata_client(bootstrap: str, security: Security | None = None, **overrides: Any) -> AIOKafkaClient:
    """A bare client for metadata requests (readiness probes), to ``bootstrap``
    rather than the settings' brokers; no ``security`` means PLAINTEXT."""
    args: dict[str, Any] = {"bootstrap_servers": bootstrap,
                            **(security.client_args() if security else {}), **overrides}
    return AIOKafkaClient(**args)


async def start_consumer(consumer: AIOKafkaConsumer) -> None:
    """Start, or close what the failed start opened (aiokafka leaves it open)."""
    try:
        await consumer.start()
    except Exception:
        await stop_consumer(consumer)
        raise


async def stop_consumer(consumer: AIOKafkaConsumer) -> None:
    """Stop, tolerating aiokafka's internal task cancelled before it ever ran
    (a consumer started and stopped within one loop turn raises CancelledError)."""
    try:
        await consumer.stop()
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise

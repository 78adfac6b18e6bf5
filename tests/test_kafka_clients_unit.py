"""Unit tests for the Kafka client factory and the security settings (no broker:
clients are built, not started)."""
from __future__ import annotations

import ssl
from dataclasses import replace
from pathlib import Path

import certifi
import pytest

from kafka_plumbing import clients
from kafka_plumbing.settings import Settings


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name in ("FS_KAFKA_BOOTSTRAP", "FS_KAFKA_SECURITY_PROTOCOL", "FS_KAFKA_SASL_MECHANISM",
                 "FS_KAFKA_SASL_USERNAME", "FS_KAFKA_SASL_PASSWORD", "FS_KAFKA_SSL_CAFILE",
                 "FS_KAFKA_SSL_CERTFILE", "FS_KAFKA_SSL_KEYFILE", "FS_KAFKA_SSL_KEY_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    return Settings()


def test_plaintext_by_default(settings: Settings) -> None:
    assert settings.kafka_security_protocol == "PLAINTEXT"
    assert clients.security(settings).client_args() == {"security_protocol": "PLAINTEXT"}
    assert settings.as_env()["FS_KAFKA_SECURITY_PROTOCOL"] == "PLAINTEXT"
    assert "FS_KAFKA_SSL_CAFILE" not in settings.as_env()


def test_settings_come_from_the_environment_and_go_to_children(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FS_KAFKA_SECURITY_PROTOCOL", "sasl_ssl")
    monkeypatch.setenv("FS_KAFKA_SASL_MECHANISM", "scram-sha-256")
    monkeypatch.setenv("FS_KAFKA_SASL_USERNAME", "alice")
    monkeypatch.setenv("FS_KAFKA_SASL_PASSWORD", "s3cret")
    monkeypatch.setenv("FS_KAFKA_SSL_CAFILE", certifi.where())
    settings = Settings()
    assert settings.kafka_security_protocol == "SASL_SSL"
    assert settings.kafka_ssl_cafile == Path(certifi.where()).resolve()
    env = settings.as_env()
    for name in ("FS_KAFKA_SECURITY_PROTOCOL", "FS_KAFKA_SASL_MECHANISM", "FS_KAFKA_SASL_USERNAME",
                 "FS_KAFKA_SASL_PASSWORD", "FS_KAFKA_SSL_CAFILE"):
        monkeypatch.setenv(name, "")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert Settings() == settings
    args = clients.security(settings).client_args()
    assert args["security_protocol"] == "SASL_SSL" and isinstance(args["ssl_context"], ssl.SSLContext)
    assert (args["sasl_mechanism"], args["sasl_plain_username"], args["sasl_plain_password"]) == (
        "SCRAM-SHA-256", "alice", "s3cret")
    assert "ssl_cafile" not in args  # aiokafka 0.14 has no such argument


def test_unknown_protocol_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FS_KAFKA_SECURITY_PROTOCOL", "TLS")
    with pytest.raises(ValueError, match="FS_KAFKA_SECURITY_PROTOCOL"):
        Settings()


def test_ssl_files_are_checked_before_connecting(settings: Settings, tmp_path: Path) -> None:
    missing = replace(settings, kafka_security_protocol="SSL", kafka_ssl_cafile=tmp_path / "ca.pem")
    with pytest.raises(clients.KafkaSecurityError, match="FS_KAFKA_SSL_CAFILE"):
        clients.consumer(missing)
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    with pytest.raises(clients.KafkaSecurityError, match="cannot load"):
        clients.producer(replace(settings, kafka_security_protocol="SSL", kafka_ssl_cafile=garbage))
    key_only = replace(settings, kafka_security_protocol="SSL", kafka_ssl_keyfile=garbage)
    with pytest.raises(clients.KafkaSecurityError, match="CERTFILE"):
        clients.admin(key_only)
    # Not asked for SSL: the CA file is not looked at.
    assert clients.security(replace(missing, kafka_security_protocol="PLAINTEXT")).ssl_context is None


def test_sasl_needs_a_username(settings: Settings) -> None:
    with pytest.raises(clients.KafkaSecurityError, match="USERNAME"):
        clients.security(replace(settings, kafka_security_protocol="SASL_PLAINTEXT"))
    sasl = clients.security(replace(settings, kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_username="u"))
    assert sasl.uses_sasl and not sasl.uses_ssl and sasl.sasl_mechanism == "PLAIN"


async def test_clients_carry_bootstrap_security_and_overrides(settings: Settings) -> None:
    secure = replace(settings, kafka_bootstrap="b1:9093,b2:9093", kafka_security_protocol="SSL",
                     kafka_ssl_cafile=Path(certifi.where()))
    consumer = clients.consumer(secure, "t1", "t2", auto_offset_reset="latest")
    assert consumer._client._bootstrap_servers == "b1:9093,b2:9093"
    assert consumer._client._security_protocol == "SSL" and consumer._client._ssl_context is not None
    assert consumer._subscription.subscription.topics == {"t1", "t2"}
    assert consumer._enable_auto_commit is False
    producer = clients.producer(secure, linger_ms=20, enable_idempotence=True)
    assert producer.client._security_protocol == "SSL" and producer._txn_manager is not None
    admin = clients.admin(secure)
    assert admin._client._security_protocol == "SSL"
    await consumer.stop()
    await producer.stop()
    await admin.close()

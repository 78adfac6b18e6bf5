"""Everything over TLS: a broker of its own with an SSL listener (a self-signed
CA and a server certificate for 127.0.0.1 made here with ``cryptography``),
and with FS_KAFKA_SECURITY_PROTOCOL=SSL and FS_KAFKA_SSL_CAFILE a real worker,
``featurestream produce``, ``replay --from-topic``, ``train`` and
``models deploy`` (through the control agent and the audit topic) work against
its SSL port. With a CA that did not sign the broker's certificate the same
commands fail with a clear message."""
from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import secrets
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator

import pytest
from aiokafka.errors import KafkaConnectionError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from dev_tooling import flights_data, kafka_local
from kafka_plumbing import clients
from kafka_plumbing.log_reader import topic_size
from kafka_plumbing.settings import Settings, load
from kafka_plumbing.topics import ensure_topics_sync
from tables.definitions import load as load_definitions
from tests.integration.conftest import Worker, consume_all, consume_until, decode, running_worker

DEPARTURES = 3_000
MORE_DEPARTURES = 300
KEYSTORE_PASSWORD = "changeit"


@dataclass(frozen=True)
class Certificates:
    ca: Path
    keystore: Path
    other_ca: Path  # signed nothing the broker holds


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(subject: str, key: rsa.RSAPrivateKey, issuer: str, signer: rsa.RSAPrivateKey,
                 ca: bool) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject)).issuer_name(_name(issuer)).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), critical=False)
    )
    if ca:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
            key_encipherment=False, data_encipherment=False, key_agreement=False,
            encipher_only=False, decipher_only=False), critical=True)
    else:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    return builder.sign(signer, hashes.SHA256())


def _pem(path: Path, cert: x509.Certificate) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def make_certificates(work: Path) -> Certificates:
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca = _certificate("featurestream test CA", ca_key, "featurestream test CA", ca_key, ca=True)
    server_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    server = _certificate("127.0.0.1", server_key, "featurestream test CA", ca_key, ca=False)
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other = _certificate("some other CA", other_key, "some other CA", other_key, ca=True)
    # Java 17 reads PKCS12 protected the classic way (3DES, SHA-1 MAC).
    encryption = (
        serialization.PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(50_000).key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC)
        .hmac_hash(hashes.SHA1()).build(KEYSTORE_PASSWORD.encode())
    )
    keystore = work / "broker.p12"
    keystore.write_bytes(pkcs12.serialize_key_and_certificates(b"broker", server_key, server, [ca], encryption))
    return Certificates(_pem(work / "ca.pem", ca), keystore, _pem(work / "other-ca.pem", other))


@dataclass(frozen=True)
class Tls:
    secure: Settings  # SSL to the SSL listener, trusting the test CA
    certificates: Certificates


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tls]:
    base = load()
    if base.kafka_bootstrap:
        pytest.skip("FS_KAFKA_BOOTSTRAP names an external cluster; this test needs its own local broker")
    work = tmp_path_factory.mktemp("tls")
    certificates = make_certificates(work)
    # a cluster named by FS_KAFKA_BOOTSTRAP has no dev-mode key: the test brings its own
    plain = replace(base, home=work / "home", kafka_port=kafka_local.free_port(), topic_prefix="tls",
                    app_id="fs-tls", registry_dir=work / "registry", control_key=secrets.token_urlsafe(32))
    ssl_port = kafka_local.free_port()
    while ssl_port in (plain.kafka_port, plain.kafka_port + 1):  # port+1 is the controller's if free
        ssl_port = kafka_local.free_port()
    data_dir = work / "kafka"
    info = kafka_local.start(plain, data_dir=data_dir, port=plain.kafka_port,
                             ssl=kafka_local.SslListener(ssl_port, certificates.keystore, KEYSTORE_PASSWORD))
    try:
        assert info.ssl_bootstrap == f"127.0.0.1:{ssl_port}", info
        secure = replace(plain, kafka_bootstrap=info.ssl_bootstrap, kafka_security_protocol="SSL",
                         kafka_ssl_cafile=certificates.ca)
        yield Tls(secure, certificates)
    finally:
        kafka_local.stop(plain, data_dir=data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def worker(tls: Tls, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    settings = tls.secure
    ensure_topics_sync(settings, list(load_definitions(settings.features_module).sources))
    yield from running_worker(settings, tmp_path_factory.mktemp("tls-worker"))


def test_worker_applies_what_produce_sends_over_ssl(worker: Worker) -> None:
    expected = flights_data.load_events(limit=DEPARTURES, progress=False)
    result = worker.cli("produce", "flights", "--limit", str(DEPARTURES))
    assert result.returncode == 0, result.stdout + result.stderr
    for source, events in expected.items():
        counts = worker.wait_for(source, len(events))
        assert counts["applied"] + counts["late"] + counts["duplicate"] == len(events), counts
    sizes = asyncio.run(topic_size(worker.settings, worker.settings.topics.events("departures")))
    assert sum(end - first for first, end in sizes.values()) == len(expected["departures"])


def test_replay_from_topic_over_ssl(worker: Worker, tmp_path: Path) -> None:
    out = tmp_path / "replay.jsonl"
    result = worker.cli("replay", "--source", "departures", "--from-topic", "--out", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == DEPARTURES
    sizes = asyncio.run(topic_size(worker.settings, worker.settings.topics.events("departures")))
    assert {row["partition"] for row in rows} == {p for p, (first, end) in sizes.items() if end > first}


def test_train_and_deploy_over_ssl_then_the_stream_scores(worker: Worker) -> None:
    trained = worker.cli("train", "--name", "flight_delay", "--ntrees", "5")
    assert trained.returncode == 0, trained.stdout + trained.stderr
    deployed = worker.cli("models", "deploy", "flight_delay", "1")
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    assert "applied" in deployed.stderr
    audit = [r for r in decode(consume_all(worker.settings, worker.settings.topics.audit)) if r.get("type") == "command"]
    assert [(r["result"], r["command"].get("primary")) for r in audit] == [("applied", 1)]

    more = flights_data.load_events(limit=MORE_DEPARTURES, skip=DEPARTURES, sources=("departures",), progress=False)
    sent = worker.cli("produce", "flights", "--skip", str(DEPARTURES), "--limit", str(MORE_DEPARTURES),
                      "--sources", "departures")
    assert sent.returncode == 0, sent.stdout + sent.stderr
    scored = consume_until(worker.settings, worker.settings.topics.predictions,
                           lambda records: len(records) >= len(more["departures"]), timeout=240)
    assert len(scored) == len(more["departures"]) and {p["model_version"] for p in scored} == {1}


def test_a_ca_that_did_not_sign_the_broker_fails_clearly(worker: Worker, tls: Tls) -> None:
    wrong = replace(worker.settings, kafka_ssl_cafile=tls.certificates.other_ca)
    result = Worker(wrong, worker.handle).cli("produce", "flights", "--limit", "10")
    assert result.returncode == 3, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    message = " ".join(result.stderr.split())
    assert "cannot reach Kafka at " + wrong.bootstrap in message
    assert "certificate verify failed" in message and "FS_KAFKA_SSL_CAFILE" in message
    with pytest.raises(KafkaConnectionError):
        asyncio.run(topic_size(wrong, wrong.topics.events("departures")))
    # The right CA still works against the same listener.
    assert asyncio.run(topic_size(worker.settings, worker.settings.topics.events("departures")))


def test_a_missing_ca_file_is_refused_before_connecting(worker: Worker, tmp_path: Path) -> None:
    missing = replace(worker.settings, kafka_ssl_cafile=tmp_path / "nowhere.pem")
    with pytest.raises(clients.KafkaSecurityError, match="FS_KAFKA_SSL_CAFILE"):
        clients.producer(missing)
    result = Worker(missing, worker.handle).cli("replay", "--source", "departures", "--out", str(tmp_path / "x.jsonl"))
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "is not a file" in " ".join(result.stderr.split())  # rich wraps long paths

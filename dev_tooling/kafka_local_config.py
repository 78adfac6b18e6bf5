"""What a local broker is on disk and how it is configured: the layout of its
data directory, the ``server.properties`` and log4j config rendered for one
laptop-sized KRaft node (optionally with an SSL listener), and parsing them
back."""
from __future__ import annotations

import base64
import os
import re
from dataclasses import dataclass
from pathlib import Path

from kafka_plumbing.settings import Settings

_VERSION_RE = re.compile(r"Kafka version: (\S+)")
HOST = "127.0.0.1"


@dataclass(frozen=True)
class SslListener:
    """An extra SSL listener next to PLAINTEXT, for clients that must use TLS.

    The keystore is a PKCS12 file holding the server's key and certificate
    (for 127.0.0.1); clients are not asked for a certificate."""

    port: int
    keystore: Path
    password: str


@dataclass(frozen=True)
class BrokerPaths:
    data_dir: Path

    @property
    def log_dir(self) -> Path:
        """Kafka's ``log.dirs``: the partitions and the KRaft metadata log."""
        return self.data_dir / "data"

    @property
    def properties(self) -> Path:
        return self.data_dir / "server.properties"

    @property
    def log4j(self) -> Path:
        return self.data_dir / "log4j.properties"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "broker.pid"

    @property
    def server_log(self) -> Path:
        """Written by log4j; holds the version and readiness lines."""
        return self.data_dir / "server.log"

    @property
    def console_log(self) -> Path:
        """stdout/stderr of the JVM: crashes before log4j is up land here."""
        return self.data_dir / "console.log"

    @property
    def lock_file(self) -> Path:
        return self.data_dir / ".lock"

    @property
    def meta_properties(self) -> Path:
        return self.log_dir / "meta.properties"

    def owned_names(self) -> set[str]:
        return {
            p.name
            for p in (self.log_dir, self.properties, self.log4j, self.pid_file,
                      self.server_log, self.console_log, self.lock_file)
        }


def broker_paths(settings: Settings, data_dir: Path | None = None) -> BrokerPaths:
    return BrokerPaths(Path(data_dir or settings.home / "kafka").resolve())


def new_cluster_id() -> str:
    """A KRaft cluster id: URL-safe base64 of 16 random bytes, no padding.

    Kafka's own Uuid.randomUuid() rejects ids starting with '-' because the
    CLI would read them as a flag; we do the same.
    """
    while True:
        cid = base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode("ascii")
        if not cid.startswith("-"):
            return cid


def _prop_value(value: str | Path) -> str:
    # java.util.Properties treats backslash as an escape character.
    return str(value).replace("\\", "\\\\")


def _render(props: dict[str, str | int | Path]) -> str:
    return "".join(f"{k}={_prop_value(v)}\n" for k, v in props.items())


def server_properties(paths: BrokerPaths, port: int, controller_port: int,
                      ssl: SslListener | None = None) -> dict[str, str | int | Path]:
    """Broker config tuned for one laptop-sized node: few threads, few partitions."""
    listeners = [f"PLAINTEXT://{HOST}:{port}"] + ([f"SSL://{HOST}:{ssl.port}"] if ssl else [])
    protocols = ["PLAINTEXT:PLAINTEXT", "CONTROLLER:PLAINTEXT"] + (["SSL:SSL"] if ssl else [])
    return {
        "process.roles": "broker,controller",
        "node.id": 1,
        "controller.quorum.voters": f"1@{HOST}:{controller_port}",
        "listeners": ",".join([*listeners, f"CONTROLLER://{HOST}:{controller_port}"]),
        "advertised.listeners": ",".join(listeners),
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": ",".join(protocols),
        **(ssl_properties(ssl) if ssl else {}),
        "log.dirs": paths.log_dir,
        "num.partitions": 4,
        "default.replication.factor": 1,
        "min.insync.replicas": 1,
        # A single node cannot host the default RF-3 internal topics.
        "offsets.topic.replication.factor": 1,
        "offsets.topic.num.partitions": 4,
        "transaction.state.log.replication.factor": 1,
        "transaction.state.log.min.isr": 1,
        "transaction.state.log.num.partitions": 4,
        # Tests start consumers one by one; don't make each join wait 3 s.
        "group.initial.rebalance.delay.ms": 0,
        # The 128 MiB default dedupe buffer is allocated at start-up. KafkaConfig
        # requires strictly more than 1 MiB per cleaner thread, so 1 MiB is rejected.
        "log.cleaner.dedupe.buffer.size": 2 * 1024 * 1024,
        "log.cleaner.threads": 1,
        "num.network.threads": 2,
        "num.io.threads": 2,
        "num.recovery.threads.per.data.dir": 1,
        "num.replica.fetchers": 1,
        "background.threads": 2,
        "auto.create.topics.enable": "true",
        "delete.topic.enable": "true",
        "log.retention.check.interval.ms": 300000,
    }


def ssl_properties(ssl: SslListener) -> dict[str, str | int | Path]:
    """The SSL listener's keystore (listener-prefixed, so PLAINTEXT is untouched)."""
    prefix = "listener.name.ssl."
    return {
        f"{prefix}ssl.keystore.type": "PKCS12",
        f"{prefix}ssl.keystore.location": ssl.keystore,
        f"{prefix}ssl.keystore.password": ssl.password,
        f"{prefix}ssl.key.password": ssl.password,
        f"{prefix}ssl.client.auth": "none",
    }


def render_server_properties(paths: BrokerPaths, port: int, controller_port: int,
                             ssl: SslListener | None = None) -> str:
    return "# Written by featurestream kafka start; rewritten on every start.\n" + _render(
        server_properties(paths, port, controller_port, ssl)
    )


def render_log4j(paths: BrokerPaths) -> str:
    """Broker INFO (version, readiness) to server.log; the chatty parts at WARN."""
    props: dict[str, str | int | Path] = {
        "log4j.rootLogger": "WARN, file",
        "log4j.appender.file": "org.apache.log4j.RollingFileAppender",
        "log4j.appender.file.File": paths.server_log,
        "log4j.appender.file.MaxFileSize": "10MB",
        "log4j.appender.file.MaxBackupIndex": 2,
        "log4j.appender.file.layout": "org.apache.log4j.PatternLayout",
        "log4j.appender.file.layout.ConversionPattern": "[%d] %p %m (%c)%n",
        "log4j.logger.kafka": "INFO",
        "log4j.logger.org.apache.kafka": "WARN",
        # Prints "Kafka version: x.y.z".
        "log4j.logger.org.apache.kafka.common.utils.AppInfoParser": "INFO",
        "log4j.logger.kafka.request.logger": "WARN",
        "log4j.logger.state.change.logger": "WARN",
        "log4j.logger.kafka.authorizer.logger": "WARN",
        "log4j.logger.kafka.server.KafkaConfig": "WARN",
        # Per-partition load/recovery lines: several per partition per start.
        "log4j.logger.kafka.log": "WARN",
        "log4j.logger.kafka.coordinator": "WARN",
        "log4j.logger.kafka.cluster.Partition": "WARN",
        "log4j.logger.kafka.server.ReplicaFetcherManager": "WARN",
        "log4j.logger.kafka.server.metadata": "WARN",
    }
    return _render(props)


def parse_version(text: str) -> str | None:
    """The last ``Kafka version: x.y.z`` in a log, i.e. the current run's."""
    found = _VERSION_RE.findall(text)
    return found[-1] if found else None


def parse_properties(text: str) -> dict[str, str]:
    """Enough of java.util.Properties for the files we write ourselves."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#!" or "=" not in line:
            continue
        key, value = line.split("=", 1)
        out[key.strip()] = value.strip().replace("\\\\", "\\")
    return out


def parse_bootstrap(properties_text: str, listener: str = "PLAINTEXT") -> str | None:
    """host:port of the listener (PLAINTEXT or SSL) clients should use."""
    listeners = parse_properties(properties_text).get("advertised.listeners", "")
    for entry in listeners.split(","):
        name, _, address = entry.partition("://")
        if name.strip() == listener and address:
            return address
    return None

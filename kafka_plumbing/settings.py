"""Runtime settings, read once from environment variables.

Every knob a deployment needs is an ``FS_*`` variable so a container can be
configured without flags; CLI flags override them per command.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from kafka_plumbing.catalogue import Topics


def _env(name: str, default: str) -> str:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


@dataclass(frozen=True)
class Settings:
    topic_prefix: str = field(default_factory=lambda: _env("FS_TOPIC_PREFIX", "fs"))
    # Set to use an existing cluster; empty means the local broker started by
    # `featurestream kafka start`.
    kafka_bootstrap: str = field(default_factory=lambda: _env("FS_KAFKA_BOOTSTRAP", ""))
    kafka_port: int = field(default_factory=lambda: int(_env("FS_KAFKA_PORT", "9092")))
    # Working state of this checkout: broker data, worker stores, registry.
    home: Path = field(default_factory=lambda: Path(_env("FS_HOME", ".featurestream")).resolve())
    # Downloaded Kafka jars are shared by every checkout on the machine.
    cache_dir: Path = field(
        default_factory=lambda: Path(
            _env("FS_CACHE_DIR", str(Path.home() / ".cache" / "featurestream"))
        )
    )
    registry_dir: Path = field(default_factory=lambda: Path(_env("FS_REGISTRY", ".featurestream/registry")).resolve())
    # Bearer token for write routes (deploy); empty disables them.
    admin_token: str = field(default_factory=lambda: _env("FS_ADMIN_TOKEN", ""))
    web_port: int = field(default_factory=lambda: int(_env("FS_WEB_PORT", "6066")))
    features_module: str = field(default_factory=lambda: _env("FS_FEATURES", "tables.flights"))
    app_id: str = field(default_factory=lambda: _env("FS_APP_ID", "featurestream"))
    partitions: int = field(default_factory=lambda: int(_env("FS_PARTITIONS", "4")))
    replication: int = field(default_factory=lambda: int(_env("FS_REPLICATION", "1")))
    # URL other workers use to reach this one (routing of web requests).
    canonical_url: str = field(default_factory=lambda: _env("FS_CANONICAL_URL", ""))
    max_payload_bytes: int = field(
        default_factory=lambda: int(_env("FS_MAX_PAYLOAD_BYTES", str(64 * 1024)))
    )

    @property
    def bootstrap(self) -> str:
        return self.kafka_bootstrap or f"127.0.0.1:{self.kafka_port}"

    @property
    def topics(self) -> Topics:
        return Topics(self.topic_prefix)

    def as_env(self) -> dict[str, str]:
        """The variables that give a child process (a worker) these settings."""
        env = {
            "FS_TOPIC_PREFIX": self.topic_prefix,
            "FS_APP_ID": self.app_id,
            "FS_HOME": str(self.home),
            "FS_PARTITIONS": str(self.partitions),
            "FS_REGISTRY": str(self.registry_dir),
            "FS_FEATURES": self.features_module,
        }
        if self.kafka_bootstrap:
            env["FS_KAFKA_BOOTSTRAP"] = self.kafka_bootstrap
        else:
            env["FS_KAFKA_PORT"] = str(self.kafka_port)
        return env

    def kafka_security(self) -> dict[str, str]:
        """SASL/SSL settings passed straight through to the Kafka clients."""
        keys = {
            "FS_KAFKA_SECURITY_PROTOCOL": "security_protocol",
            "FS_KAFKA_SASL_MECHANISM": "sasl_mechanism",
            "FS_KAFKA_SASL_USERNAME": "sasl_plain_username",
            "FS_KAFKA_SASL_PASSWORD": "sasl_plain_password",
            "FS_KAFKA_SSL_CAFILE": "ssl_cafile",
        }
        return {arg: os.environ[var] for var, arg in keys.items() if os.environ.get(var)}


def load() -> Settings:
    return Settings()
